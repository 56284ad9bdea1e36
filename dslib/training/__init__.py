"""The training loop's components, one module each (the loop itself is :mod:`dslib.train`).

- :mod:`~dslib.training.schedule`: the learning-rate schedule (DeepSeek-Coder §3.4; cosine for §3.7);
- :mod:`~dslib.training.batches`: a stage's own data source, and the loss of token and labelled batches (§3.7);
- :mod:`~dslib.training.checkpoint`: atomic, verified training-state checkpoints that resume a run exactly;
- :mod:`~dslib.training.metrics`: the per-step metrics log, MFU, loss plots;
- :mod:`~dslib.training.parallel`: rank and world size, the process group, DDP / FSDP2, compile;
- :mod:`~dslib.training.synthetic`: a fixed token stream for the golden curve and the benchmarks.
"""
