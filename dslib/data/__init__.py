"""Repository-level data construction (DeepSeek-Coder §2, Figure 2), one module per stage.

``sources`` (crawl) → ``languages`` → ``filters`` (§2.1) → ``deps`` (§2.2, Algorithm 1) → ``dedup`` (§2.3)
→ ``quality`` and ``decontam`` (§2.4), run end to end by ``pipeline.build_corpus``; other stages read the
result with ``pipeline.load_corpus(scale, split)``; ``report`` turns its manifest into the tables and figures
of ``notebooks/01_data``.
"""
