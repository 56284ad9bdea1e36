"""Repository-level data construction (DeepSeek-Coder §2, Figure 2), one module per stage.

``sources`` (crawl) → ``languages`` → ``filters`` (§2.1) → ``deps`` (§2.2, Algorithm 1) → ``dedup`` (§2.3)
→ ``quality`` (with ``quality_model``) and ``decontam`` (§2.4), run end to end by ``pipeline.build_corpus``, with
``mix`` for §2's data mix (the English source, the weights packing samples by); other stages read the
result with ``pipeline.load_corpus(scale, split)``; ``report`` turns its manifest into the tables and figures
of ``notebooks/01_data``.
"""
