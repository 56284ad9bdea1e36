"""Evaluation (DeepSeek-Coder §4): the paper's benchmarks, the sandbox that runs model code, and the reports.

``execution`` (the sandbox, with its server ``sandbox``), ``metrics`` (pass@k, exact match), ``tasks`` (the
suite of Tables 3, 5 and 8: ``get_task(name)``, ``TASKS``), ``humaneval`` (HumanEval-Python, also the
``humaneval-python`` task), ``infilling`` (single-line infilling, Table 6), ``generation`` (batched completion of
any checkpoint folder), ``suite`` (generate, save, re-score, table), ``report`` (``python -m dslib.eval``),
``data`` (the shipped benchmark files) and ``adversarial`` (the attacks the sandbox refuses).
"""
