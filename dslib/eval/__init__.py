"""Evaluation (DeepSeek-Coder §4): HumanEval pass@k, single-line infilling, and the sandbox that runs them.

``execution`` (the sandbox), ``metrics`` (pass@k, exact match), ``humaneval`` and ``infilling``.
"""
