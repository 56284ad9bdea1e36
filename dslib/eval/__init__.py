"""Evaluation (DeepSeek-Coder §4): HumanEval pass@k, single-line infilling, and the sandbox that runs them.

``execution`` (the sandbox, with its server ``sandbox``), ``metrics`` (pass@k, exact match), ``humaneval``,
``infilling``, ``generation`` (batched completion of any checkpoint folder), ``report`` (a checkpoint beside
the paper's tables; ``python -m dslib.eval``) and ``adversarial`` (the attacks the sandbox refuses).
"""
