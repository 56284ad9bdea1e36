"""Paired findings: two settings compared on the same items at their last evaluation, a difference called
clear only beyond its noise band, and each of the paper's claims judged on the numbers: agrees, disagrees, too
small to tell, or not run.

The noise band of a gain is ``Z`` times the root of two variances added: the evaluation items' (the paired
standard error of the per-item gain, each item's value averaged over a setting's seeds) and the seeds' (the
spread of a run's mean between seeds of one setting, pooled over every setting run with more than one seed,
over the seeds each side has); and never below the metric's floor. When a gain is inside its band but above the
floor and the items' part, :func:`seeds_needed` says how many seeds per setting would make it clear.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dslib.ablation.grid import Experiment, Metric

Z = 2.0  # a difference is clear when it exceeds Z paired standard errors (about 95%) and the metric's floor
AGREES, DISAGREES, TOO_SMALL, NOT_RUN = "agrees", "disagrees", "too small to tell", "not run"

# A test of one claim on one metric: (results, metric) → (verdict, the evidence in numbers).
Test = Callable[[Mapping, str], tuple[str, str]]


@dataclass(frozen=True)
class Comparison:
    """How one claim is tested: the ``settings`` it needs, the ``metrics`` it may be decided on, in order (the
    first that is clear decides; a family name such as ``infill_em`` stands for all its members), and ``test``."""

    settings: tuple[str, ...]
    metrics: tuple[str, ...]
    test: Test
    # The metric that decides the claim at each scale, named before the run (scale name → metric or family);
    # the other metrics are reported beside it. A scale not named here falls back to the first clear metric.
    primary: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Effect:
    """The effect every claim presupposes (FIM training teaches infilling at all): until ``test`` says it is
    clear, every claim is too small to tell."""

    name: str
    settings: tuple[str, ...]
    test: Callable[[Mapping], tuple[bool, str]]


def final(results: Mapping, setting: str) -> dict | None:
    """The last evaluation of ``setting``, or ``None`` when it was not run."""
    run = results["settings"].get(setting)
    return run["evals"][-1] if run and run["evals"] else None


def items(results: Mapping, setting: str, metric: str) -> list[float] | None:
    """The per-item values of ``metric`` at the last evaluation of ``setting`` (``None`` when missing)."""
    last = final(results, setting)
    return last["items"].get(metric) if last else None


def final_table(experiment: Experiment, results: Mapping) -> list[dict]:
    """One row per setting: the step of its last evaluation and every metric there."""
    rows = []
    for name in results["settings"]:
        last = final(results, name)
        row = {"setting": name, "step": last and last["step"]}
        rows.append(row | {m: last.get(m) for m in experiment.metrics if last and m in last})
    return rows


def seed_gap(experiment: Experiment, results: Mapping, metric: str) -> float:
    """How far ``metric`` moved between a setting and its reseeded control (the largest such gap; 0 without
    a control run)."""
    gaps = [0.0]
    for name, setting in experiment.settings.items():
        a, b = final(results, setting.control_of) if setting.control_of else None, final(results, name)
        if a is not None and b is not None and metric in a and metric in b:
            gaps.append(abs(a[metric] - b[metric]))
    return max(gaps)


def compare(a: Sequence[float], b: Sequence[float], metric: Metric, noise: float = 0.0, seed_se: float = 0.0) -> dict:
    """``a`` against ``b`` on the same items of ``metric``: the ``gain`` of ``a`` (positive = better), its paired
    standard error ``se``, its noise ``band``, the ``threshold`` a clear gain must exceed, and ``sign``: +1 or -1
    when the gain is clear, 0 when it is too small to tell.

    The band is the larger of ``noise`` and ``Z`` times the root of ``se``² + ``seed_se``² (the evaluation set's
    sampling noise and the seeds'); the threshold is the larger of the band and the metric's floor (relative to
    ``b``'s mean where ``metric.relative``).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(
            f"{metric.description}: compare needs the same non-empty items for both runs, got {a.shape} and {b.shape}"
        )
    gain = (a - b) if metric.higher_is_better else (b - a)
    se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.inf
    floor = metric.floor * abs(float(b.mean())) if metric.relative else metric.floor
    band = max(Z * math.hypot(se, seed_se), noise)
    threshold = max(band, floor)
    mean = float(gain.mean())
    return {
        "gain": mean,
        "se": se,
        "band": band,
        "floor": floor,
        "threshold": threshold,
        "sign": int(np.sign(mean)) if abs(mean) > threshold else 0,
    }


def replicas(experiment: Experiment, results: Mapping, setting: str, metric: str) -> list[str]:
    """``setting`` and its reseeded runs (settings with ``control_of`` = ``setting``) that evaluated ``metric``."""
    names = [setting] + [n for n, s in experiment.settings.items() if s.control_of == setting]
    return [n for n in names if items(results, n, metric) is not None]


def seed_sd(experiment: Experiment, results: Mapping, metric: str) -> float | None:
    """The standard deviation of a run's ``metric`` between seeds of one setting, pooled over every setting with
    more than one seed run (``None`` when none has)."""
    squares, dof = 0.0, 0
    for name, setting in experiment.settings.items():
        if setting.control_of is None:
            means = [final(results, n)[metric] for n in replicas(experiment, results, name, metric)]
            if len(means) > 1:
                squares += float(np.sum((np.asarray(means) - np.mean(means)) ** 2))
                dof += len(means) - 1
    return math.sqrt(squares / dof) if dof else None


def seeds_needed(c: Mapping, sd: float | None) -> int | None:
    """The seeds per setting that would make the gain of :func:`compare` clear, if the gain and the spreads stay
    as measured: ``n`` with ``Z·√(se² + 2·sd²/n)`` below the gain. ``None`` when seeds cannot decide it (no seed
    spread measured, or the gain is within the floor or the items' own noise: more items, or no effect)."""
    gain = abs(c["gain"])
    if sd is None or sd == 0 or gain <= c["floor"] or gain <= Z * c["se"]:
        return None
    return max(2, math.ceil(2 * sd**2 / ((gain / Z) ** 2 - c["se"] ** 2)))


def compare_settings(
    experiment: Experiment, results: Mapping, a: str, b: str, metric: str, metric_b: str | None = None
) -> tuple[dict, str]:
    """:func:`compare` of settings ``a`` and ``b`` at their last evaluation (``b`` on ``metric_b`` when given: one
    format's prompt against another's), each item averaged over the setting's seeds, with the seeds' spread in
    the band; and a line of text with the numbers. The dict adds ``seeds`` (each side's) and ``seeds_needed``."""
    metric_b = metric_b or metric
    runs_a, runs_b = replicas(experiment, results, a, metric), replicas(experiment, results, b, metric_b)
    sd = seed_sd(experiment, results, metric)
    seed_se = sd * math.sqrt(1 / len(runs_a) + 1 / len(runs_b)) if sd is not None else 0.0
    pooled = [
        np.mean([items(results, n, m) for n in runs], axis=0) for runs, m in ((runs_a, metric), (runs_b, metric_b))
    ]
    c = compare(*pooled, experiment.metrics[metric], seed_se=seed_se)
    c |= {"seeds": (len(runs_a), len(runs_b)), "seeds_needed": None if c["sign"] else seeds_needed(c, sd)}
    va, vb = float(np.mean(pooled[0])), float(np.mean(pooled[1]))
    label_b = b if metric_b == metric else f"{b} ({metric_b})"
    text = f"{a} {va:.3f} vs {label_b} {vb:.3f} (gain {c['gain']:+.3f}, band ±{c['threshold']:.3f}"
    text += f", seeds {len(runs_a)}/{len(runs_b)}"
    if c["seeds_needed"]:
        text += f"; ~{c['seeds_needed']} seeds per setting would decide it"
    elif not c["sign"] and sd is not None:
        text += "; more seeds cannot decide it: the gain is within the floor or the items' noise"
    return c, text + ")"


def directional(
    experiment: Experiment, results: Mapping, metric: str, pairs: Sequence[tuple[str, str]], expected: int
) -> tuple[str, str]:
    """Agrees when every ``(a, b)`` clearly goes the ``expected`` way (+1: ``a`` is better), disagrees when one
    clearly goes the other way, too small to tell otherwise."""
    compared = [compare_settings(experiment, results, a, b, metric) for a, b in pairs]
    signs = [c["sign"] for c, _ in compared]
    if any(s == -expected for s in signs):
        verdict = DISAGREES
    elif all(s == expected for s in signs):
        verdict = AGREES
    else:
        verdict = TOO_SMALL
    return verdict, "; ".join(text for _, text in compared)


def judge(
    experiment: Experiment,
    results: Mapping,
    claims: Sequence,
    comparisons: Mapping[str, Comparison],
    effect: Effect | None = None,
) -> list[dict]:
    """For each claim (with ``key``, ``claim``, ``source``, as :class:`dslib.paper.Finding`): ``verdict``, the
    ``basis`` metric that decided it (every metric tried, joined by " / ", when none did), the ``evidence`` in
    numbers, and ``by_metric``, the verdict on each metric tried; ``comparisons[claim.key]`` says how."""
    needed_for_effect = effect.settings if effect else ()
    ready = effect is not None and all(final(results, s) is not None for s in effect.settings)
    learned, shown = effect.test(results) if ready else (effect is None, "")
    rows = []
    for claim in claims:
        comparison = comparisons[claim.key]
        row = {"key": claim.key, "claim": claim.claim, "source": claim.source, "by_metric": {}}
        needed = list(dict.fromkeys([*comparison.settings, *needed_for_effect]))
        missing = [s for s in needed if final(results, s) is None]
        tried = {}
        for metric in comparison.metrics if not missing else ():
            names = experiment.members(metric)
            if all(items(results, s, n) is not None for s in comparison.settings for n in names):
                tried[metric] = comparison.test(results, metric)
        if missing or not tried:
            why = f"needs {', '.join(missing)}" if missing else "none of its metrics was evaluated"
            rows.append(row | {"verdict": NOT_RUN, "basis": None, "evidence": why})
            continue
        primary = comparison.primary.get(results.get("scale"))
        if primary is not None and primary not in tried:
            rows.append(row | {"verdict": NOT_RUN, "basis": primary, "evidence": f"{primary} was not evaluated"})
            continue
        basis = primary or next((m for m, (v, _) in tried.items() if v != TOO_SMALL), None)
        if basis is not None:
            verdict, evidence = tried[basis]
        else:  # no metric decides: the reader sees every comparison that was tried, not just the first
            basis = " / ".join(tried)
            verdict, evidence = TOO_SMALL, "; ".join(f"{m}: {text}" for m, (_, text) in tried.items())
        if not learned:
            verdict, evidence = TOO_SMALL, f"no clear {effect.name} yet ({shown}); {evidence}"
        by_metric = {m: v for m, (v, _) in tried.items()}
        rows.append(row | {"verdict": verdict, "basis": basis, "evidence": evidence, "by_metric": by_metric})
    return rows


def finding_rows(findings: Sequence[Mapping]) -> list[dict]:
    """Rows for :func:`dslib.results.record`: each finding's verdict beside the paper's claim."""
    return [
        {
            "metric": f"finding: {f['claim']}",
            "ours": f["verdict"],
            "paper": "holds",
            "source": f["source"],
            "note": f"{f['basis']}: {f['evidence']}",
        }
        for f in findings
    ]
