"""Controlled experiments: a grid of named settings trained alike but for a few config values, evaluated
along the way, and compared with noise bands from reseeded runs (the FIM ablation of DeepSeek-Coder §3.1.2 is
:mod:`dslib.ablation.fim`; the repository-level ablation of §2.2 and Table 7 is :mod:`dslib.ablation.repo_level`).

An experiment is an :class:`Experiment` with four parts, and nothing else to write:

1. **The grid**: ``settings``, name → :class:`Setting` (``stage.field`` overrides of the scale, a seed offset;
   ``control_of`` marks a reseeded twin, whose gap is the noise band; ``paper`` the paper's own settings)::

       GRID = {"dependency": Setting({"data.repo_level": "dependency"}, paper=True),
               "file": Setting({"data.repo_level": "file"}),
               "dependency_seed1": Setting({"data.repo_level": "dependency"}, seed=1, control_of="dependency")}

2. **The metrics**: name → :class:`Metric` (what it is, whether higher is better, the floor below which a
   difference is never clear).
3. **The evaluation hook**: a subclass of :class:`Evaluation`, built once from the base scale: ``tokenizer``,
   ``spec`` (what the numbers depend on besides training; a change redoes the runs), ``evaluate(model)`` →
   per-item values of each metric, and optionally ``describe`` / ``inspect`` / ``summary`` for run and result
   records. ``REPO = Experiment("repo_ablation", "repository-level ablation", GRID, METRICS, CrossFileEvaluation)``.
4. **The comparisons**: claim key → :class:`Comparison` (the settings, the metrics to try in order, a test such
   as ``lambda r, m: directional(REPO, r, m, [("dependency", "file")], +1)``), judged by :func:`judge` against
   claims with ``key``, ``claim``, ``source`` (:class:`dslib.paper.Finding`), optionally gated by an
   :class:`Effect`; ``primary`` names the metric that decides each claim at each scale, before the run.
   Reseeded runs (``control_of``) of a setting are pooled: the seeds' spread enters every noise band.

Then :func:`run_grid` trains every setting (``AblationConfig.steps`` steps, evaluated at ``AblationConfig.evals``
steps; override them as ``ablation.steps=1600``) in ``artifacts/<scale>/<name>/<setting>/``, reuses finished
runs, resumes interrupted ones and redoes those whose fingerprint changed; :func:`load_results` reads its
``results.json``; :func:`final_table`, :func:`judge`, :func:`finding_rows` (rows for :func:`dslib.results.record`)
and :func:`plot_curves` turn it into tables, verdicts and a figure.

Modules: :mod:`~dslib.ablation.grid` (settings, metrics, the hook), :mod:`~dslib.ablation.runs` (training and
reuse), :mod:`~dslib.ablation.findings` (paired comparisons, verdicts, rows), :mod:`~dslib.ablation.figures`.
"""

from dslib.ablation.figures import plot_curves
from dslib.ablation.findings import (
    AGREES,
    DISAGREES,
    NOT_RUN,
    TOO_SMALL,
    Comparison,
    Effect,
    compare,
    directional,
    final,
    final_table,
    finding_rows,
    judge,
    replicas,
    seed_gap,
    seed_sd,
    seeds_needed,
)
from dslib.ablation.grid import Evaluation, Experiment, Metric, Setting, eval_steps, setting_scale, setting_scales
from dslib.ablation.runs import RESULTS_FILE, RUN_FILE, load_results, run_grid, run_setting

__all__ = [
    "AGREES",
    "DISAGREES",
    "NOT_RUN",
    "RESULTS_FILE",
    "RUN_FILE",
    "TOO_SMALL",
    "Comparison",
    "Effect",
    "Evaluation",
    "Experiment",
    "Metric",
    "Setting",
    "compare",
    "directional",
    "eval_steps",
    "final",
    "final_table",
    "finding_rows",
    "judge",
    "load_results",
    "plot_curves",
    "run_grid",
    "run_setting",
    "replicas",
    "seed_gap",
    "seed_sd",
    "seeds_needed",
    "setting_scale",
    "setting_scales",
]
