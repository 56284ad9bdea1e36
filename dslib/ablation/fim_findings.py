"""The FIM ablation's findings: each claim of :data:`dslib.paper.FIM_FINDINGS` (DeepSeek-Coder §3.1.2; Bavarian
et al. 2022) tested on the runs of :data:`dslib.ablation.fim.FIM`, and a few lines of prose with the numbers.

Each claim has one primary metric per scale, fixed here before any run (:data:`PRIMARY`): at ``smoke`` and
``cpu`` scale the losses, which move where exact match stays at 0 (the middle loss on the 1033 HumanEval
single-line tasks for infilling, the held-out left-to-right loss for completion); at ``gpu`` and ``paper`` scale
HumanEval-FIM pass@1 (Figure 3's metric: the infilled program run against its tests) and HumanEval pass@1. The
other metrics are reported beside it. The rule (:mod:`dslib.ablation.findings`): two settings are compared on the
same items at their last evaluation, each item averaged over the setting's seeds; a difference is clear when it
exceeds its noise band (two standard errors of the items' and the seeds' noise together) and the metric's floor
(2 points of exact match or pass@1, 1% of a loss). "No left-to-right cost" means a rise clearly below
``L2R_TOLERANCE`` (1%). Every finding is too small to tell until the runs show a clear FIM effect
(:func:`fim_effect`). When a finding is too small to tell, its evidence gives the seeds a decision would need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dslib.ablation.fim import CONTROL, FIM, FIM_GRID, PAPER_SETTINGS
from dslib.ablation.findings import (
    AGREES,
    DISAGREES,
    TOO_SMALL,
    Comparison,
    Effect,
    compare_settings,
    directional,
    final_table,
    items,
    judge,
    seed_sd,
)
from dslib.paper import FIM_FINDINGS

L2R_TOLERANCE = 0.01  # "no left-to-right cost": the loss rises by less than 1% of the FIM-0% model's
INFILL = ("infill_pass_psm", "infill_em_psm", "middle_loss_psm", "heldout_middle_loss_psm")
FIM_EFFECT = ("psm_0.5", "fim_0")  # the effect every finding presupposes: FIM training teaches infilling


def _by_scale(small: str, large: str) -> dict[str, str]:
    return {"smoke": small, "cpu": small, "gpu": large, "paper": large}


# The primary metric of each finding at each scale (a family such as "middle_loss" means both prompt formats).
PRIMARY: dict[str, dict[str, str]] = {
    "fim100_best_infilling": _by_scale("middle_loss_psm", "infill_pass_psm"),
    "fim100_worst_completion": _by_scale("l2r_loss", "humaneval_pass@1"),
    "psm50_beats_msp50": _by_scale("middle_loss_psm", "infill_pass_psm"),
    "no_l2r_cost_to_90": _by_scale("l2r_loss", "l2r_loss"),
    "spm_at_least_psm": _by_scale("middle_loss", "infill_pass"),
    "joint_transfer": _by_scale("middle_loss", "infill_pass"),
    "psm_only_transfers_to_spm": _by_scale("middle_loss_spm", "infill_pass_spm"),
    "spm_only_fails_psm": _by_scale("middle_loss_psm", "infill_pass_psm"),
}


def _directional(results: Mapping, metric: str, pairs: Sequence[tuple[str, str]], expected: int) -> tuple[str, str]:
    return directional(FIM, results, metric, pairs, expected)


def _l2r_cost(results: Mapping, metric: str = "l2r_loss") -> tuple[str, str]:
    """Bavarian et al. §4.2: at rates up to 90% the held-out loss rises by clearly less than ``L2R_TOLERANCE``
    of FIM 0%'s (no cost), while at 100% it rises by clearly more. The rates below 100% are those of the sweep
    that were run (50% always; a grid without 25% and 90% tests the claim at 50%)."""
    states, parts, tolerance = {}, [], None
    low_rates = [n for n in ("psm_0.25", "psm_0.5", "psm_0.9") if items(results, n, metric) is not None]
    for name in (*low_rates, "psm_1.0"):
        c, _ = compare_settings(FIM, results, name, "fim_0", metric)
        tolerance = L2R_TOLERANCE * c["floor"] / FIM.metrics[metric].floor  # 1% of fim_0's mean loss
        cost, band = -c["gain"], c["band"]
        states[name] = +1 if cost - band > tolerance else -1 if cost + band < tolerance else 0  # +1 costs, -1 free
        parts.append(f"{name} {cost:+.4f} ± {band:.4f}")
    low, full = [states[n] for n in low_rates], states["psm_1.0"]
    if any(s == +1 for s in low) or full == -1:
        verdict = DISAGREES
    elif all(s == -1 for s in low) and full == +1:
        verdict = AGREES
    else:
        verdict = TOO_SMALL
    return verdict, f"loss rise over fim_0 (tolerance {tolerance:.4f}): " + ", ".join(parts)


def _both_formats(results: Mapping, family: str, a: str, b: str) -> tuple[str, str]:
    """``a`` clearly beats ``b`` in both prompt formats (PSM and SPM) on ``family``."""
    verdicts = [_directional(results, f"{family}_{mode}", [(a, b)], +1) for mode in ("psm", "spm")]
    found = [v for v, _ in verdicts]
    verdict = DISAGREES if DISAGREES in found else AGREES if all(v == AGREES for v in found) else TOO_SMALL
    return verdict, "; ".join(f"{m.upper()}: {text}" for m, (_, text) in zip(("psm", "spm"), verdicts, strict=True))


def _spm_at_least_psm(results: Mapping, family: str) -> tuple[str, str]:
    """Bavarian et al. Table 1: SPM prompts score at least as well as PSM prompts. 50% SPM prompted in SPM against
    50% PSM prompted in PSM, on the same tasks: disagrees only when PSM is clearly better."""
    c, text = compare_settings(FIM, results, "spm_0.5", "psm_0.5", f"{family}_spm", f"{family}_psm")
    return (DISAGREES if c["sign"] < 0 else AGREES if c["sign"] > 0 else TOO_SMALL), text


def _versus_others(expected: int):
    return lambda r, m: _directional(r, m, [("psm_1.0", o) for o in ("fim_0", "psm_0.5", "msp_0.5")], expected)


# Each finding: the settings it compares, the metrics it reports (the primary one decides), and its test.
_COMPARISONS: dict[str, tuple] = {
    "fim100_best_infilling": (PAPER_SETTINGS, INFILL, _versus_others(+1)),
    "fim100_worst_completion": (PAPER_SETTINGS, ("humaneval_pass@1", "l2r_loss"), _versus_others(-1)),
    "psm50_beats_msp50": (
        ("psm_0.5", "msp_0.5"), INFILL, lambda r, m: _directional(r, m, [("psm_0.5", "msp_0.5")], +1)
    ),
    "no_l2r_cost_to_90": (("fim_0", "psm_0.5", "psm_1.0"), ("l2r_loss",), _l2r_cost),
    "spm_at_least_psm": (("spm_0.5", "psm_0.5"), ("infill_pass", "infill_em", "middle_loss"), _spm_at_least_psm),
    "joint_transfer": (
        ("joint_0.5", "fim_0"), ("infill_pass", "infill_em", "middle_loss"),
        lambda r, m: _both_formats(r, m, "joint_0.5", "fim_0"),
    ),
    "psm_only_transfers_to_spm": (
        ("psm_0.5", "fim_0"), ("infill_pass_spm", "infill_em_spm", "middle_loss_spm", "heldout_middle_loss_spm"),
        lambda r, m: _directional(r, m, [("psm_0.5", "fim_0")], +1),
    ),
    "spm_only_fails_psm": (
        ("spm_0.5", "psm_0.5"), INFILL, lambda r, m: _directional(r, m, [("spm_0.5", "psm_0.5")], -1)
    ),
}  # fmt: skip
COMPARISONS: dict[str, Comparison] = {
    key: Comparison(settings, metrics, test, PRIMARY[key]) for key, (settings, metrics, test) in _COMPARISONS.items()
}


def fim_effect(results: Mapping) -> tuple[bool, str]:
    """Whether the runs learned FIM at all: 50% PSM clearly beats FIM 0% on infilling (exact match, else the
    middle loss), and the numbers that say so."""
    texts = []
    evaluated = [m for m in INFILL if all(items(results, s, m) is not None for s in FIM_EFFECT)]
    for metric in evaluated:
        verdict, text = _directional(results, metric, [FIM_EFFECT], +1)
        if verdict == AGREES:
            return True, f"{metric}: {text}"
        texts.append(f"{metric}: {text}")
    return False, "; ".join(texts)


def fim_findings(results: Mapping) -> list[dict]:
    """For each of :data:`dslib.paper.FIM_FINDINGS`: ``verdict`` (agrees / disagrees / too small to tell / not
    run), the ``basis`` metric that decided it, the ``evidence`` in numbers and ``by_metric``
    (:func:`dslib.ablation.findings.judge`; ``infill_em`` and ``middle_loss`` stand for both prompt formats)."""
    return judge(FIM, results, FIM_FINDINGS, COMPARISONS, Effect("FIM effect", FIM_EFFECT, fim_effect))


def summarize(results: Mapping, findings: Sequence[Mapping]) -> str:
    """A few lines of prose with the run's own numbers: the FIM effect, the best infilling setting, the
    left-to-right cost of 100% FIM, the seed-to-seed gap, and each finding's verdict."""
    table = {row["setting"]: row for row in final_table(FIM, results)}
    learned, effect = fim_effect(results) if all(s in table for s in FIM_EFFECT) else (False, "not run")
    lines = [f"FIM effect (psm_0.5 vs fim_0): {'clear' if learned else 'not clear'}: {effect}."]
    grid_rows = [row for name, row in table.items() if name in FIM_GRID]  # seed 0 of each setting
    best_em = max(grid_rows, key=lambda r: r["infill_em_psm"])
    best_loss = min(grid_rows, key=lambda r: r["middle_loss_psm"])
    if best_em["infill_em_psm"] == min(r["infill_em_psm"] for r in grid_rows):
        by_em = f"exact match is {best_em['infill_em_psm']:.3f} for every setting"
    else:
        by_em = f"{best_em['setting']} by exact match ({best_em['infill_em_psm']:.3f})"
    lines.append(
        f"Best PSM infilling: {by_em}; {best_loss['setting']} by middle loss "
        f"({best_loss['middle_loss_psm']:.3f} nats/token)."
    )
    if "fim_0" in table and "psm_1.0" in table:
        base, full = table["fim_0"]["l2r_loss"], table["psm_1.0"]["l2r_loss"]
        lines.append(
            f"Held-out left-to-right loss: fim_0 {base:.4f}, psm_1.0 {full:.4f} ({100 * (full / base - 1):+.2f}%)."
        )
    if CONTROL in table or any(n.endswith("_seed1") for n in table):
        spreads = ", ".join(
            f"{m} {sd:.4f}"
            for m in ("middle_loss_psm", "l2r_loss", "infill_pass_psm")
            if (sd := seed_sd(FIM, results, m)) is not None
        )
        lines.append(f"Seed-to-seed spread of a run (standard deviation): {spreads}.")
    for f in findings:
        basis = f" (on {f['basis']})" if f["basis"] else ""
        lines.append(f"- {f['claim']} → {f['verdict']}{basis}")
    return "\n".join(lines)
