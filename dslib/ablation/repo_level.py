"""The repository-level ablation (DeepSeek-Coder §2.2 and Table 7's "w/o repo pre-training" row): does training
on whole repositories, files in Algorithm 1's dependency order, help completion across files?

One model per value of ``data.repo_level`` (:mod:`dslib.data.repo_level`): ``dependency`` (the paper),
``random`` (the same samples, files shuffled: does the order matter, or only the concatenation?) and ``file``
(each file its own document). Every run has the scale's model, tokenizer (one for all three,
:func:`dslib.tokenizer.ensure_tokenizer`), seed and token budget; only the assembly of the training documents
differs, and the settings are paired: the same seed, so the same initial weights. ``<value>_seed1`` repeats each
value with the next seed (its own initial weights and data order): each comparison averages two seeds a side, and
the gaps between seeds, pooled, are the noise band of every comparison.

Each run is evaluated at ``AblationConfig.evals`` steps on the held-out cross-file benchmark
(:mod:`dslib.eval.crossfile`: lines that use a name imported from another file of a held-out repository), each
point without and with BM25 retrieval, cut to the training window (``TrainConfig.seq_len``; a quarter of it for
retrieved context, as the paper's 512 of 2048): the mean loss of the ground-truth line in nats/token (the metric
that moves at small scale), first-line exact match, edit similarity and identifier exact match.
``AblationConfig.tasks`` points (evenly spread) per evaluation. The findings (:data:`dslib.paper.REPO_FINDINGS`)
are judged by :func:`dslib.ablation.judge` as the FIM ablation's are: agrees / disagrees / too small to tell.
:func:`retrieval_budgets` rescores the finished models with more of the window given to retrieved context.

Sizing (:data:`SIZING`, applied under the user's overrides by :func:`ablation_scale`):

- ``smoke``: the preset's 12 steps and 8 points (a plumbing check, numbers meaningless).
- ``cpu``: 900 steps of the cpu preset's batch (16 × 256 tokens, 3.7M tokens per run), evaluated at steps 300, 600
  and 900 on 300 points; two runs at a time (``AblationConfig.workers = 2``), one thread each. Measured
  (2026-12-01, ``python -m dslib.ablation.repo_level --scale cpu``, ``results.json`` ``timings``): a pair of runs
  took 31.5 min of wall time on two free cores, training at 1.93–1.94 s/step each and evaluating in 47–57 s per
  evaluation step (300 points × 2 contexts, up to 32 new tokens); evaluation was 7.8% of the first four runs.
  The six runs are three such pairs, about 1 h 35 min, plus the three corpora (``random``, ``file``,
  ``dependency``: about 10 s each to build and as much to pack; the 2026-12-01 cpu data manifest: 9.1 s).
- ``gpu`` (a projection, not run): the gpu preset's model and batch, 600 steps per run as the FIM ablation
  (2.0 s/step measured on an H200 for that ablation, benchmarks/RESULTS.md): about 20 min of training per run,
  2 h for the six, plus the data builds and 4 evaluations of 400 points, exact match included.

Held-out data: on the default corpus the drawn held-out repositories give one usable repository (httpcore, 542
points). At ``cpu`` the sizing also holds out ``urllib3``, ``attrs`` and ``typer`` by name
(``data.heldout_repos``: multi-file packages that import across their files, about 1.1 MB of the 200 MB), so the
benchmark spans four repositories (with parso, drawn by the hash): 1,291 points, of which 300 are scored.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dslib.ablation.figures import plot_curves
from dslib.ablation.findings import (
    AGREES,
    DISAGREES,
    TOO_SMALL,
    Comparison,
    compare_settings,
    directional,
    final,
    final_table,
    finding_rows,
    judge,
    replicas,
)
from dslib.ablation.grid import Evaluation, Experiment, Metric, Setting
from dslib.ablation.runs import load_results as _load_results
from dslib.ablation.runs import run_grid
from dslib.artifacts import artifact_dir, figure_path, fingerprint
from dslib.config import CrossFileConfig, Scale, get_scale
from dslib.eval import crossfile
from dslib.eval.generation import load_hf_model, subset
from dslib.paper import REPO_FINDINGS, TABLE7
from dslib.tokenizer import encode_text, ensure_tokenizer

log = logging.getLogger(__name__)

LEVELS = ("dependency", "random", "file")
SETTINGS: dict[str, Setting] = {
    # Each value's corpus and packed streams have folders of their own (dslib.data.pipeline.corpus_label), so
    # the runs may go in any order, or side by side (AblationConfig.workers).
    "random": Setting({"data.repo_level": "random"}),
    "file": Setting({"data.repo_level": "file"}, paper=True),
    "dependency": Setting({"data.repo_level": "dependency"}, paper=True),
    # Every value again with the next seed: each comparison averages two seeds a side, and the three gaps
    # between seeds are the noise band.
    **{f"{level}_seed1": Setting({"data.repo_level": level}, seed=1, control_of=level) for level in LEVELS},
}
CONTEXTS = (("none", False), ("retrieval", True))
_SCORES = (("loss", "loss"), ("em", "exact_match"), ("es", "edit_similarity"), ("id_em", "identifier_em"))
_DESCRIPTIONS = {
    "loss": ("ground-truth line loss (nats/token)", False, 0.01, True),
    "em": ("first-line exact match (%)", True, 2.0, False),
    "es": ("first-line edit similarity (0-100)", True, 2.0, False),
    "id_em": ("identifier exact match (%)", True, 2.0, False),
}
METRICS: dict[str, Metric] = {
    f"{name}_{context}": Metric(f"{desc}, {'BM25 retrieval' if retrieve else 'in-file context'}", hib, floor, rel)
    for name, (desc, hib, floor, rel) in _DESCRIPTIONS.items()
    for context, retrieve in CONTEXTS
}
FORMAT_VERSION = 1  # bump when what an evaluation records changes, so old run.json files are redone
HELDOUT_REPOS = ("urllib3", "attrs", "typer")
SIZING: dict[str, dict[str, Any]] = {
    "cpu": {
        "ablation.steps": 900,
        "ablation.evals": 3,
        "ablation.tasks": 300,
        "data.heldout_repos": HELDOUT_REPOS,
    },
    "gpu": {"ablation.steps": 600, "ablation.evals": 4, "ablation.tasks": 400},
}


Overrides = Mapping[str, Any] | Sequence[str]


def ablation_scale(scale: Scale | str | None = None, overrides: Overrides | None = None) -> Scale:
    """The scale the ablation runs at: a preset name (default ``$DSLIB_SCALE``) with :data:`SIZING` for it, then
    ``overrides`` (default ``$DSLIB_OVERRIDES``); a :class:`~dslib.config.Scale` is taken as it is."""
    if isinstance(scale, Scale):
        return scale.override(overrides) if overrides else scale
    name = get_scale(scale).name
    if overrides is None:
        overrides = [a for a in os.environ.get("DSLIB_OVERRIDES", "").split(";") if a.strip()]
    sized = get_scale(name, dict(SIZING.get(name, {})))
    return sized.override(overrides) if overrides else sized


def window_config(scale: Scale) -> CrossFileConfig:
    """The benchmark's prompt budget cut to the training window: the models never saw longer sequences."""
    config = scale.crossfile
    window = min(scale.train.seq_len, config.max_input_tokens)
    return replace(
        config,
        max_input_tokens=window,
        crossfile_tokens=min(config.crossfile_tokens, window // 4),
        max_new_tokens=min(config.max_new_tokens, window // 8),
    )


class CrossFileEvaluation(Evaluation):
    """Every metric of :data:`METRICS` on the held-out cross-file benchmark, without and with retrieval."""

    def __init__(self, scale: Scale):
        self.scale = scale
        self.tokenizer = ensure_tokenizer(scale)
        self.config = window_config(scale)
        records = subset(crossfile.ensure_benchmark(scale), scale.ablation.tasks)
        lengths = [len(ids) for ids in encode_text(self.tokenizer, [r["groundtruth"] for r in records])]
        self.records = [r for r, n in zip(records, lengths, strict=True) if n]
        self.skipped = len(records) - len(self.records)
        if not self.records:
            raise ValueError(f"no cross-file completion point at scale {scale.name!r}; hold out more repositories")
        self.spec = {
            "records": fingerprint([(r["prompt"], r["groundtruth"], r["crossfile_context"]) for r in self.records]),
            "crossfile": self.config,
            "tokenizer": fingerprint(self.tokenizer.to_str()),
            "version": FORMAT_VERSION,
        }

    def evaluate(self, model) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for context, retrieval in CONTEXTS:
            scored = crossfile.score(
                model, self.tokenizer, self.records, self.config, retrieval, self.scale.eval.batch_size, progress=False
            )
            for name, key in _SCORES:
                out[f"{name}_{context}"] = [float(v) for v in scored["items"][key]]
        return out

    def describe(self, scale: Scale) -> dict:
        return {"repo_level": scale.data.repo_level}

    def summary(self) -> dict:
        return {
            "points": len(self.records),
            "skipped_points": self.skipped,
            "window": self.config.max_input_tokens,
            "crossfile_tokens": self.config.crossfile_tokens,
            "repositories": sorted({r["metadata"]["repository"] for r in self.records}),
        }


REPO = Experiment("repo_level_ablation", "repository-level ablation", SETTINGS, METRICS, CrossFileEvaluation)


# ----------------------------------------------------------------------------------------------------------
# Findings


def _versus(other: str):
    return lambda results, metric: directional(REPO, results, metric, [("dependency", other)], +1)


def _retrieval_helps(results: Mapping, family: str) -> tuple[str, str]:
    """Retrieval against in-file context alone, on the same points, for every repo-level setting that ran (each
    point averaged over the setting's seeds, as every comparison here): agrees when each is clearly better with
    retrieval, disagrees when one is clearly worse."""
    with_, without = f"{family}_retrieval", f"{family}_none"
    compared = [
        compare_settings(REPO, results, name, name, with_, without)
        for name in LEVELS
        if final(results, name) is not None
    ]
    signs = [c["sign"] for c, _ in compared]
    verdict = DISAGREES if -1 in signs else AGREES if all(s == 1 for s in signs) else TOO_SMALL
    return verdict, "; ".join(text for _, text in compared)


PAIRED = ("loss_retrieval", "em_retrieval", "es_retrieval")  # Table 7 compares with retrieval; loss first
COMPARISONS: dict[str, Comparison] = {
    "repo_beats_file": Comparison(("dependency", "file"), PAIRED, _versus("file")),
    "order_matters": Comparison(("dependency", "random"), PAIRED, _versus("random")),
    "retrieval_helps": Comparison(("dependency",), ("loss", "em", "es"), _retrieval_helps),
}


def findings(results: Mapping) -> list[dict]:
    """Each claim of :data:`dslib.paper.REPO_FINDINGS` judged on ``results`` (:func:`dslib.ablation.judge`)."""
    return judge(REPO, results, REPO_FINDINGS, COMPARISONS)


# ----------------------------------------------------------------------------------------------------------
# Running, tables, figure


def repo_level_ablation(
    scale: Scale | str | None = None,
    settings: Iterable[str] | None = None,
    directory: str | Path | None = None,
    progress: bool = True,
    overrides: Overrides | None = None,
) -> Path:
    """Run the grid (:data:`SETTINGS` by default) at :func:`ablation_scale`; the path of ``results.json``
    (:func:`dslib.ablation.run_grid`, which reuses finished runs and resumes interrupted ones; default folder
    ``artifacts/<scale>/repo_level_ablation/``)."""
    return run_grid(REPO, ablation_scale(scale, overrides), settings, directory, progress)


def load_results(source: str | Path | Scale | None = None) -> dict:
    """The ablation's ``results.json`` at ``source``: a path, or a scale."""
    return _load_results(REPO, source)


def table(results: Mapping) -> list[dict]:
    """One row per setting: its ``repo_level`` and the main metrics at its last evaluation."""
    keep = ("loss_none", "loss_retrieval", "em_none", "em_retrieval", "es_none", "es_retrieval")
    rows = []
    for row in final_table(REPO, results):
        level = results["settings"][row["setting"]]["repo_level"]
        rows.append({"setting": row["setting"], "repo_level": level, "step": row["step"], **{k: row[k] for k in keep}})
    return rows


# Our settings beside Table 7's DeepSeek-Coder-Base 6.7B Python rows (the paper has no random-order row).
_PAPER_ROWS = {
    ("dependency", "none"): "DeepSeek-Coder-Base 6.7B",
    ("dependency", "retrieval"): "DeepSeek-Coder-Base 6.7B + Retrieval",
    ("file", "retrieval"): "DeepSeek-Coder-Base 6.7B + Retrieval w/o repo pretraining",
}


def result_rows(results: Mapping, judged: Sequence[Mapping]) -> list[dict]:
    """Rows for :func:`dslib.results.record`: each setting's final EM, ES and loss (the mean over its seeds),
    without and with retrieval, beside Table 7's row where it has one, and each finding's verdict."""
    rows = []
    for name in LEVELS:
        runs = [final(results, n) for n in replicas(REPO, results, name, "loss_none")]
        if not runs:
            continue
        seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
        note = (
            f"step {runs[0]['step']}, {results['points']} held-out points, {seeds}; a model of a few million parameters"
        )
        for context, _ in CONTEXTS:
            paper_row = _PAPER_ROWS.get((name, context))
            label_setting = f"{name} + retrieval" if context == "retrieval" else name
            for metric, column in (("em", "Python EM"), ("es", "Python ES"), ("loss", None)):
                paper = TABLE7.get(paper_row, column) if paper_row and column else None
                label = column or "ground-truth line loss (nats/token)"
                rows.append(
                    {
                        "metric": f"repo-level ablation {label_setting}: {label}",
                        "ours": round(float(np.mean([r[f"{metric}_{context}"] for r in runs])), 4),
                        "paper": paper,
                        "source": TABLE7.source if paper is not None else "ours",
                        "note": note,
                    }
                )
    return rows + finding_rows(judged)


def _line_losses(model, tok, records, config: CrossFileConfig, retrieval: bool, batch_size: int) -> np.ndarray:
    prompts = crossfile.fit_prompts(tok, records, config, retrieval)
    return np.array(crossfile.line_losses(model, tok, records, prompts, batch_size))


def retrieval_budgets(
    scale: Scale | str | None = None,
    budgets: Sequence[int] | None = None,
    directory: str | Path | None = None,
    overrides: Overrides | None = None,
) -> list[dict]:
    """Retrieval given more of the window, for the finished models of the grid (a check beside the "retrieval
    helps" finding: the paper's quarter of a short window holds only a few retrieved lines).

    Each model's ground-truth line loss on the benchmark's points with BM25 context of up to each of ``budgets``
    tokens (default: a quarter, a half and three quarters of the window), the in-file prefix taking what is left,
    against in-file context alone. One row per setting and budget: both mean losses, the mean paired gain
    (positive: retrieval lowers the loss) and its 95% interval over the points, which is point sampling only (the
    seeds' spread is the grid's ``<value>_seed1`` runs)."""
    scale = ablation_scale(scale, overrides)
    evaluation = CrossFileEvaluation(scale)
    records = evaluation.records
    budgets = budgets or tuple(evaluation.config.max_input_tokens * k // 4 for k in (1, 2, 3))
    directory = Path(directory) if directory is not None else artifact_dir(scale.name, REPO.name)
    batch = scale.eval.batch_size
    rows = []
    for name in (n for n in SETTINGS if (directory / n / "hf" / "config.json").exists()):
        model, tok = load_hf_model(directory / name / "hf")
        none = _line_losses(model, tok, records, evaluation.config, False, batch)
        for budget in budgets:
            retrieved = _line_losses(
                model, tok, records, replace(evaluation.config, crossfile_tokens=budget), True, batch
            )
            gain = none - retrieved
            rows.append(
                {
                    "setting": name,
                    "crossfile_tokens": budget,
                    "loss_none": float(none.mean()),
                    "loss_retrieval": float(retrieved.mean()),
                    "gain": float(gain.mean()),
                    "ci95": float(1.96 * gain.std(ddof=1) / np.sqrt(len(gain))),
                }
            )
    if not rows:
        raise FileNotFoundError(f"no finished run of the repository-level ablation in {directory}: run the grid first")
    return rows


def plot_repo_level_ablation(results: Mapping, path: str | Path | None = None):
    """Loss, exact match and edit similarity (without and with retrieval) against training steps, one line per
    setting; saved to ``path`` (default ``figures/<scale>/repo_level_ablation.png``); returns the figure."""
    title = f"Repository-level ablation at scale {results['scale']} (DeepSeek-Coder §2.2, Table 7)"
    return plot_curves(REPO, results, path or figure_path(results["scale"], "repo_level_ablation.png"), title)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dslib.ablation.repo_level", description="Run the repository-level ablation and judge it."
    )
    parser.add_argument("--scale", default=None, help="smoke, cpu, gpu or paper (default $DSLIB_SCALE)")
    parser.add_argument("--settings", default=None, help=f"comma-separated, of: {', '.join(SETTINGS)}")
    parser.add_argument(
        "--retrieval-budgets", action="store_true", help="then score the finished models with more retrieved context"
    )
    parser.add_argument("overrides", nargs="*", help="stage.field=value, over the ablation's sizing")
    args = parser.parse_args(argv)
    settings = args.settings.split(",") if args.settings else None
    overrides = args.overrides or None
    results = load_results(repo_level_ablation(args.scale, settings, overrides=overrides))
    for row in table(results):
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    for finding in findings(results):
        print(f"{finding['verdict']}: {finding['claim']} ({finding['basis']}: {finding['evidence']})")
    print("figure:", figure_path(results["scale"], "repo_level_ablation.png"))
    plot_repo_level_ablation(results)
    if args.retrieval_budgets:
        for row in retrieval_budgets(args.scale, overrides=overrides):
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})


if __name__ == "__main__":
    main()
