"""The FIM ablation (DeepSeek-Coder §3.1.2, Figure 3), extended with SPM, joint PSM+SPM and a FIM-rate sweep.

The paper trains its 1.3B model on a Python subset four times, changing only the FIM setting (0% FIM, 50% PSM,
100% PSM, 50% MSP), and plots HumanEval-FIM, HumanEval and MBPP against training steps (Figure 3). We run the
same controlled experiment at each scale and add what the paper left out: 50% SPM, 50% joint PSM+SPM
(Bavarian et al. 2022, Table 1) and the PSM rate sweep 0.25 / 0.5 / 0.9 (Bavarian et al. §4.2). Every run has
the scale's model, data and token budget (``AblationConfig.steps`` steps of ``TrainConfig``'s batch); only
``fim.fim_rate``, ``fim.mode`` and the seed differ. :func:`grid` picks the runs: ``AblationConfig.settings``,
each with ``AblationConfig.seeds`` seeds, whose spread is the noise band of every finding; with one seed, one
control run, FIM 0% with the next seed (:data:`CONTROL`), measures it. ``AblationConfig.languages`` trains on
a language subset (the paper's: Python). :func:`fim_level_check` measures whether document-level FIM, the
paper's, can work at a scale's window, and :func:`grid_hours` projects a grid's time from measured costs.

:data:`FIM` is the experiment for :mod:`dslib.ablation`, which trains and reuses the runs. Each is evaluated at
``AblationConfig.evals`` evenly spaced steps on:

- the *middle loss* (:mod:`dslib.eval.likelihood`): mean token loss of the true line given the PSM (or SPM)
  prompt, a smooth infilling metric that separates the settings while exact match is near zero for small models,
  on every HumanEval single-line task (``AblationConfig.tasks``) and on single-line tasks cut from the held-out
  repositories' Python files (``AblationConfig.heldout_lines``; :func:`dslib.eval.infilling.heldout_line_tasks`);
- on ``AblationConfig.generation_tasks`` of the tasks, greedy infilling: exact match (Fried et al. 2022; Table 6's
  metric) and HumanEval-FIM pass@1, the infilled program run against its tests in the sandbox (Figure 3's metric);
- the held-out left-to-right loss (the packed held-out split without FIM): the completion cost of FIM;
- HumanEval pass@1, greedy (``AblationConfig.humaneval``; on at ``gpu`` and ``paper`` scale only).

Infilling tasks are cut to the model's training window (``TrainConfig.seq_len``): the prefix from the left and
the suffix from the right, at token boundaries, until the prompt and the true middle fit. At ``gpu`` and ``paper``
scale the window holds every HumanEval task whole; at ``smoke`` and ``cpu`` it does not, so those numbers are
this miniature's, not Table 6's. :mod:`dslib.ablation.fim_findings` states, for each of the paper's claims
(:data:`dslib.paper.FIM_FINDINGS`), whether the numbers agree, disagree, or are too small to tell.
:func:`first_token_losses` splits each finished
run's middle loss into the middle's first token and the rest, which shows why exact match lags the middle loss.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dslib.ablation.figures import plot_curves
from dslib.ablation.findings import final_table as _final_table
from dslib.ablation.findings import finding_rows
from dslib.ablation.grid import Evaluation, Experiment, Metric, Setting, eval_steps
from dslib.ablation.runs import finished, run_grid
from dslib.ablation.runs import load_results as _load_results
from dslib.artifacts import artifact_dir, figure_path, fingerprint
from dslib.config import Scale, resolve
from dslib.eval.generation import load_hf_model, subset
from dslib.eval.humaneval import evaluate_model
from dslib.eval.infilling import evaluate_infilling, heldout_line_tasks, score_infills, single_line_tasks
from dslib.eval.likelihood import first_token_split, heldout_losses, middle_losses, middle_token_losses
from dslib.fim import Sentinel, sentinel_ids
from dslib.packing import DOCUMENTS_FILE, NO_FIM, ensure_stream, packed_dataset, stream_statistics
from dslib.tokenizer import encode_text, ensure_tokenizer

log = logging.getLogger(__name__)

# The grid: setting name → (fim_rate, mode). The paper's four first (Figure 3's legend calls them fim_0,
# fim_0.5, fim_1.0 and msp_0.5), then 50% SPM, the joint PSM+SPM mix, and the PSM rate sweep.
FIM_GRID: dict[str, tuple[float, str | dict[str, float]]] = {
    "fim_0": (0.0, "psm"),
    "psm_0.5": (0.5, "psm"),
    "psm_1.0": (1.0, "psm"),
    "msp_0.5": (0.5, "msp"),
    "spm_0.5": (0.5, "spm"),
    "joint_0.5": (0.5, {"psm": 0.5, "spm": 0.5}),
    "psm_0.25": (0.25, "psm"),
    "psm_0.9": (0.9, "psm"),
}
PAPER_SETTINGS = ("fim_0", "psm_0.5", "psm_1.0", "msp_0.5")
RATE_SWEEP = ("fim_0", "psm_0.25", "psm_0.5", "psm_0.9", "psm_1.0")
MAX_SEEDS = 8  # AblationConfig.seeds may ask for up to this many runs of each setting
# FIM 0% again with the next seed: with one seed per setting (AblationConfig.seeds = 1) the grid adds this run, so
# that some run-to-run spread is measured; a difference no larger than it is too small to tell.
CONTROL = "fim_0_seed1"


def seed_name(setting: str, seed: int) -> str:
    """The run of ``setting`` with seed offset ``seed``: the setting's own name for seed 0, else ``<name>_seed<k>``."""
    return setting if seed == 0 else f"{setting}_seed{seed}"


def _overrides(rate: float, mode: str | dict[str, float]) -> dict[str, Any]:
    return {"fim.fim_rate": rate, "fim.mode": mode}


SETTINGS: dict[str, Setting] = {
    seed_name(name, k): Setting(_overrides(*rm), seed=k, control_of=name if k else None, paper=name in PAPER_SETTINGS)
    for k in range(MAX_SEEDS)
    for name, rm in FIM_GRID.items()
}


def grid(scale: Scale) -> list[str]:
    """The runs of the grid at ``scale``: each setting of ``AblationConfig.settings`` (default: all of
    :data:`FIM_GRID`) with seeds 0 .. ``AblationConfig.seeds`` - 1, seed by seed (an interrupted grid has whole
    seeds done), plus :data:`CONTROL` when there is one seed."""
    config = scale.ablation
    names = list(config.settings) if config.settings is not None else list(FIM_GRID)
    unknown = [n for n in names if n not in FIM_GRID]
    if unknown or not names:
        raise ValueError(f"AblationConfig.settings={names!r}: choose among {', '.join(FIM_GRID)}")
    if config.seeds > MAX_SEEDS:
        raise ValueError(f"AblationConfig.seeds={config.seeds} is more than the grid's {MAX_SEEDS}")
    runs = [seed_name(n, k) for k in range(config.seeds) for n in names]
    return runs + [CONTROL] if config.seeds == 1 and "fim_0" in names else runs


# Each metric's floor: a difference smaller than this is never called clear, whatever its standard error (an
# absolute share for rates, a fraction of the baseline's mean for losses).
METRICS: dict[str, Metric] = {
    "infill_em_psm": Metric("single-line infilling exact match, PSM prompt", True, 0.02),
    "infill_em_spm": Metric("single-line infilling exact match, SPM prompt", True, 0.02),
    "infill_pass_psm": Metric("HumanEval-FIM single-line pass@1 (the infilled program run), PSM prompt", True, 0.02),
    "infill_pass_spm": Metric("HumanEval-FIM single-line pass@1 (the infilled program run), SPM prompt", True, 0.02),
    "middle_loss_psm": Metric("middle loss given the PSM prompt (nats/token)", False, 0.01, relative=True),
    "middle_loss_spm": Metric("middle loss given the SPM prompt (nats/token)", False, 0.01, relative=True),
    "heldout_middle_loss_psm": Metric("held-out lines: middle loss, PSM prompt (nats/token)", False, 0.01, True),
    "heldout_middle_loss_spm": Metric("held-out lines: middle loss, SPM prompt (nats/token)", False, 0.01, True),
    "l2r_loss": Metric("held-out left-to-right loss (nats/token)", False, 0.01, relative=True),
    "humaneval_pass@1": Metric("HumanEval pass@1 (greedy)", True, 0.02),
}
FORMAT_VERSION = 2  # bump when what an evaluation records changes, so old run.json files are redone
PROMPT_SPECIALS = 4  # BOS and the three sentinels of a PSM or SPM prompt
TOKEN_SLACK = 4  # re-encoding a cut prefix or suffix can cost a token or two more than the cut suggests
MIN_CONTEXT = 8  # a task whose middle leaves fewer tokens than this for prefix and suffix is skipped


# ----------------------------------------------------------------------------------------------------------
# The evaluation hook


def window(scale: Scale) -> int:
    """The tokens an infilling prompt plus its middle may take: the training sequence length."""
    return min(scale.train.seq_len, scale.eval.max_input_tokens)


def fit_task(task: Mapping, tok, limit: int) -> dict | None:
    """``task`` with its prefix cut from the left and its suffix from the right at token boundaries, so that
    the FIM prompt and the middle fit in ``limit`` tokens; ``None`` when the middle leaves too little room.

    The suffix keeps up to half the room and the prefix the rest (a single line's prefix is the longer part).
    """
    middle = len(encode_text(tok, [task["middle"]])[0])
    room = limit - middle - PROMPT_SPECIALS - TOKEN_SLACK
    if room < MIN_CONTEXT:
        return None
    prefix = tok.encode(task["prefix"], add_special_tokens=False)
    suffix = tok.encode(task["suffix"], add_special_tokens=False)
    keep_suffix = min(len(suffix.ids), room // 2)
    keep_prefix = min(len(prefix.ids), room - keep_suffix)
    keep_suffix = min(len(suffix.ids), room - keep_prefix)
    if keep_prefix == len(prefix.ids) and keep_suffix == len(suffix.ids):
        return dict(task)
    cut_prefix = task["prefix"][prefix.offsets[len(prefix.ids) - keep_prefix][0] :] if keep_prefix else ""
    cut_suffix = task["suffix"][: suffix.offsets[keep_suffix - 1][1]] if keep_suffix else ""
    return {**task, "prefix": cut_prefix, "suffix": cut_suffix}


def fit_tasks(tasks: Sequence[Mapping], tok, limit: int, what: str) -> tuple[list[dict], int]:
    """``tasks`` cut to ``limit`` tokens (:func:`fit_task`), and how many were skipped (middle too long)."""
    fitted = [fit_task(t, tok, limit) for t in tasks]
    kept = [t for t in fitted if t is not None]
    if len(kept) < len(fitted):
        log.info("skipped %d of %d %s whose middle leaves no room in %d tokens", len(fitted) - len(kept), len(fitted),
                 what, limit)  # fmt: skip
    if not kept:
        raise ValueError(f"none of the {len(fitted)} {what} fits the {limit}-token window")
    return kept, len(fitted) - len(kept)


def ablation_tasks(scale: Scale, tok) -> tuple[list[dict], int]:
    """The single-line infilling tasks scored by loss, cut to the window, and how many were skipped.

    ``AblationConfig.tasks`` tasks spread over the 1033 (default: all of them).
    """
    tasks = single_line_tasks()
    limit = scale.ablation.tasks
    return fit_tasks(subset(tasks, limit) if limit is not None else tasks, tok, window(scale), "infilling tasks")


def generation_tasks(scale: Scale, tasks: Sequence[Mapping]) -> list[dict]:
    """The tasks scored by greedy infilling (exact match, pass@1): ``AblationConfig.generation_tasks``
    (default ``EvalConfig.infilling_limit``) spread over the loss tasks ``tasks``."""
    limit = scale.ablation.generation_tasks
    return subset(list(tasks), limit if limit is not None else scale.eval.infilling_limit)


class FIMEvaluation(Evaluation):
    """Every metric of :data:`METRICS` the scale asks for, on the ablation's infilling tasks and held-out data.

    Losses (one forward pass per task and prompt format, in batches) are scored on every task; greedy infilling
    on :func:`generation_tasks`: exact match of the line, and pass@1 of the *uncut* HumanEval program with the
    line in place, run in the sandbox (Figure 3's HumanEval-FIM is pass@1).
    """

    def __init__(self, scale: Scale):
        self.scale = scale
        self.tokenizer = ensure_tokenizer(scale)
        self.tasks, self.skipped = ablation_tasks(scale, self.tokenizer)
        self.generated = generation_tasks(scale, self.tasks)
        self.originals = {t["task_id"]: t for t in single_line_tasks()}
        lines = heldout_line_tasks(scale, scale.ablation.heldout_lines)
        self.heldout_lines, self.heldout_skipped = fit_tasks(lines, self.tokenizer, window(scale), "held-out lines")
        ensure_stream(scale, "heldout", NO_FIM)  # the left-to-right loss's data, built once per grid (runs share it)
        self.spec = {
            "tasks": [(t["task_id"], t["prefix"], t["suffix"]) for t in self.tasks],
            "generated": [t["task_id"] for t in self.generated],
            "heldout_lines": [(t["task_id"], t["prefix"], t["suffix"]) for t in self.heldout_lines],
            "eval": scale.eval,
            "heldout": (scale.ablation.heldout_sequences, scale.train.seed),
            "humaneval": scale.ablation.humaneval,
            "languages": scale.ablation.languages,
            "tokenizer": fingerprint(self.tokenizer.to_str()),
            "version": FORMAT_VERSION,
        }

    def evaluate(self, model) -> dict[str, list[float]]:
        scale, tok, tasks = self.scale, self.tokenizer, self.generated
        longest = max(len(ids) for ids in encode_text(tok, [t["middle"] for t in tasks]))
        # A line longer than the longest true middle cannot match any of them, so generation stops there.
        config = replace(scale.eval, max_new_tokens=min(scale.eval.max_new_tokens, longest + TOKEN_SLACK))
        originals = [self.originals[t["task_id"]] for t in tasks]
        items: dict[str, list] = {}
        for mode in ("psm", "spm"):
            scored = evaluate_infilling(model, tok, tasks, mode, config, execute=False, progress=False)
            lines = [r["line"] for r in scored["records"]]
            run = score_infills(originals, lines, execute=True, timeout=config.timeout, workers=config.workers,
                                progress=False)  # fmt: skip
            items[f"infill_em_{mode}"] = [float(r["exact_match"]) for r in run["records"]]
            items[f"infill_pass_{mode}"] = [float(r["passed"]) for r in run["records"]]
            items[f"middle_loss_{mode}"] = middle_losses(model, tok, self.tasks, mode, scale.eval.batch_size)
            items[f"heldout_middle_loss_{mode}"] = middle_losses(
                model, tok, self.heldout_lines, mode, scale.eval.batch_size
            )
        items["l2r_loss"] = heldout_losses(model, scale, scale.ablation.heldout_sequences)
        if scale.ablation.humaneval:
            greedy = replace(scale.eval, n_samples=1, temperature=0.0)
            scored = evaluate_model(model, tok, greedy, k=(1,), progress=False)
            items["humaneval_pass@1"] = [float(r["passed"]) for r in scored["samples"]]
        return items

    def describe(self, scale: Scale) -> dict:
        mode = scale.fim.mode if isinstance(scale.fim.mode, str) else dict(scale.fim.mode)
        return {"fim_rate": scale.fim.fim_rate, "mode": mode, "level": scale.fim.level,
                "languages": list(scale.ablation.languages) or "all"}  # fmt: skip

    def inspect(self, scale: Scale) -> dict:
        return stream_summary(scale, self.tokenizer)

    def summary(self) -> dict:
        heldout = (self.scale.ablation.heldout_sequences, self.scale.train.seed)
        return {
            "tasks": len(self.tasks),
            "skipped_tasks": self.skipped,
            "generation_tasks": len(self.generated),
            "heldout_lines": len(self.heldout_lines),
            "skipped_heldout_lines": self.heldout_skipped,
            "window": window(self.scale),
            "heldout": heldout,
            "fim_level": self.scale.fim.level,
            "languages": list(self.scale.ablation.languages) or "all",
        }


FIM = Experiment("fim_ablation", "FIM ablation", SETTINGS, METRICS, FIMEvaluation, grid)


def stream_summary(scale: Scale, tok) -> dict:
    """How much FIM a setting's training (its scale) actually sees: document, token and sequence rates of its
    packed stream (:func:`dslib.packing.stream_statistics`; ``sequence_rate`` counts sequences holding a middle
    sentinel), the share of sequences holding any sentinel (MSP puts one at every span), and the FIM
    documents that lie whole inside one training sequence, the examples that show prefix, suffix and middle
    together."""
    data = packed_dataset(scale, "train", scale.fim, rank=0, world_size=1)
    stats = stream_statistics(data, tok=tok)
    seen = min(1.0, scale.train.max_steps * scale.train.global_batch_size / data.num_sequences)
    if data.context_fim is not None:  # FIM per training sequence: the stream itself holds none
        keys = ("fragment_rate", "sequence_rate", "sentinel_sequence_rate", "whole_fim_documents")
        return {**{k: stats[k] for k in keys}, "share_of_stream_trained_on": seen}
    documents = np.load(data.path / DOCUMENTS_FILE)
    start, length, code = documents[:, 0], documents[:, 1], documents[:, 2]
    whole = (code > 0) & (start // data.seq_len == (start + length - 1) // data.seq_len)
    ids = sentinel_ids(tok)
    sentinels = [ids[Sentinel.PRE], ids[Sentinel.SUF], ids[Sentinel.MID]]
    used = data.num_sequences * data.seq_len + 1
    positions = np.flatnonzero(np.isin(data.tokens()[:used], sentinels))
    # As stream_statistics counts: the sequence whose labels hold the sentinel (token i is sequence (i-1)//T's).
    holding = np.unique((np.maximum(positions, 1) - 1) // data.seq_len)
    return {
        "document_rate": stats["document_rate"],
        "token_rate": stats["token_rate"],
        "sequence_rate": stats["sequence_rate"],
        "sentinel_sequence_rate": len(holding) / data.num_sequences,
        "whole_fim_documents": int(whole.sum()),
        "share_of_stream_trained_on": seen,
    }


# The paper's document-level FIM is kept unless it leaves fewer training sequences with a FIM middle than this
# share of the FIM rate: at a tenth of the configured rate, a run sees too few infilling examples to learn from
# (at smoke scale, 0.06% of the sequences held a middle at a rate of 50%).
DOCUMENT_LEVEL_MIN_SHARE = 0.1


def fim_level_check(scale: Scale) -> dict:
    """Whether document-level FIM (DeepSeek-Coder §3.1, the paper's method) can work at ``scale``'s window: the
    share of training sequences holding a FIM middle at 50% PSM under document-level and under context-level FIM
    (Bavarian et al. 2022 §4.3, the documented deviation), the FIM examples one ablation run would see under
    each, and ``document_level_works``: the document-level share reaches ``DOCUMENT_LEVEL_MIN_SHARE`` of the
    rate. Repository samples much longer than the window put one middle in many sequences' worth of text."""
    tok = ensure_tokenizer(scale)
    fim = replace(scale.fim, fim_rate=0.5, mode="psm")
    shares = {
        level: stream_statistics(packed_dataset(scale, "train", replace(fim, level=level)), tok=tok)["sequence_rate"]
        for level in ("document", "context")
    }
    sequences = scale.ablation.steps * scale.train.global_batch_size
    return {
        "window": scale.train.seq_len,
        "document_sequence_rate": shares["document"],
        "context_sequence_rate": shares["context"],
        "document_examples_per_run": round(shares["document"] * sequences),
        "context_examples_per_run": round(shares["context"] * sequences),
        "document_level_works": shares["document"] >= DOCUMENT_LEVEL_MIN_SHARE * fim.fim_rate,
        "level_used": scale.fim.level,
    }


def grid_hours(scale: Scale, step_s: float, loss_task_s: float, generation_task_s: float, tasks: int = 1033) -> dict:
    """The grid's projected hours at ``scale`` from measured costs (``benchmarks/fim_ablation_sizing.py``): a
    training step, the middle losses of one task in both formats, greedy infilling of one task in both formats.
    ``tasks`` single-line tasks (plus ``AblationConfig.heldout_lines``) are scored by loss at each evaluation; a
    held-out sequence costs a third of a training step's share per sequence (a forward pass only)."""
    config = scale.ablation
    runs, evals = len(grid(scale)), len(eval_steps(config))
    generated = config.generation_tasks if config.generation_tasks is not None else scale.eval.infilling_limit
    generated = min(generated or tasks, tasks)
    heldout_s = config.heldout_sequences * step_s / (3 * scale.train.global_batch_size)
    evaluation_s = (tasks + config.heldout_lines) * loss_task_s + generated * generation_task_s + heldout_s
    train_h = runs * config.steps * step_s / 3600
    eval_h = runs * evals * evaluation_s / 3600
    return {
        "runs": runs,
        "train_h": train_h,
        "eval_h": eval_h,
        "total_h": train_h + eval_h,
        "eval_share": eval_h / (train_h + eval_h),
    }


# ----------------------------------------------------------------------------------------------------------
# Running, tables, figure


def fim_ablation(
    scale: Scale | str | None = None,
    settings: Iterable[str] | None = None,
    directory: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Run the FIM grid (:data:`FIM_GRID` and :data:`CONTROL` by default) at ``scale``; the path of
    ``results.json`` (:func:`dslib.ablation.run_grid`; default folder ``artifacts/<scale>/fim_ablation/``)."""
    return run_grid(FIM, scale, settings, directory, progress)


def load_results(source: str | Path | Scale | None = None) -> dict:
    """The FIM ablation's ``results.json`` at ``source``: a path, or a scale."""
    return _load_results(FIM, source)


def final_table(results: Mapping) -> list[dict]:
    """One row per setting: its FIM rate and mode, and every metric at the last evaluation."""
    rows = []
    for row in _final_table(FIM, results):
        run = results["settings"][row["setting"]]
        mode = run["mode"] if isinstance(run["mode"], str) else "+".join(sorted(run["mode"]))
        rows.append({"setting": row.pop("setting"), "fim_rate": run["fim_rate"], "mode": mode, **row})
    return rows


def first_token_losses(
    scale: Scale | str | None = None, directory: str | Path | None = None, settings: Iterable[str] | None = None
) -> list[dict]:
    """Each finished run's middle loss split into the middle's first token and the later ones, after a PSM and
    an SPM prompt, from its final weights (``<setting>/hf``) on the ablation's infilling tasks.

    Why exact match can stay at zero while the middle loss already separates the settings: a line counts only
    when every token is right, and the first is the hardest after a PSM prompt. The model must find where the
    prefix stopped, just before the hole sentinel and a whole suffix back, and training middles start at random
    characters, mostly mid-word, where a task's middle starts a line. After an SPM prompt the prefix's end sits
    right before the middle. ``later`` pools every later token of every task. ``settings`` defaults to the
    seed-0 runs that finished in ``directory`` (default ``artifacts/<scale>/fim_ablation/``).
    """
    scale = resolve(scale)
    directory = Path(directory) if directory is not None else artifact_dir(scale.name, FIM.name, create=False)
    settings = [n for n in finished(FIM, directory) if n in FIM_GRID] if settings is None else settings
    tok = ensure_tokenizer(scale)
    tasks, _ = ablation_tasks(scale, tok)
    rows = []
    for name in settings:
        if not (directory / name / "hf" / "config.json").exists():
            raise FileNotFoundError(f"{directory / name} holds no finished run; run fim_ablation for {name!r} first")
        model, _ = load_hf_model(directory / name / "hf")
        row: dict[str, Any] = {"setting": name}
        for mode in ("psm", "spm"):
            losses = middle_token_losses(model, tok, tasks, mode, scale.eval.batch_size)
            row[f"first_{mode}"], row[f"later_{mode}"] = first_token_split(losses)
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no finished FIM ablation run in {directory}; run dslib.ablation.fim.fim_ablation")
    return rows


def result_rows(results: Mapping, findings: Sequence[Mapping]) -> list[dict]:
    """Rows for :func:`dslib.results.record`: each grid setting's (seed 0's) final HumanEval-FIM pass@1 (PSM),
    infilling exact match (PSM, SPM) and held-out left-to-right loss, and each finding's verdict beside the
    paper's claim."""
    rows = []
    for row in final_table(results):
        name = row["setting"]
        if name not in FIM_GRID:
            continue
        source = "[P] §3.1.2, Fig. 3" if name in PAPER_SETTINGS else "[FIM] §4"
        note = f"step {row['step']}; middle loss PSM {row['middle_loss_psm']:.3f}, SPM {row['middle_loss_spm']:.3f}"
        for metric, label in (
            ("infill_pass_psm", "HumanEval-FIM pass@1 (PSM)"),
            ("infill_em_psm", "infilling EM (PSM)"),
            ("infill_em_spm", "infilling EM (SPM)"),
            ("l2r_loss", "held-out L2R loss"),
        ):
            if row.get(metric) is None:  # results recorded before the metric existed
                continue
            ours = round(row[metric], 4)
            rows.append(
                {"metric": f"FIM ablation {name}: {label}", "ours": ours, "paper": None, "source": source, "note": note}
            )
    return rows + finding_rows(findings)


def plot_fim_ablation(results: Mapping, path: str | Path | None = None):
    """Figure 3's panels: each metric against training steps, one line per setting (the paper's four solid,
    the extensions dashed, the reseeded control dotted grey); saved to ``path`` (default
    ``figures/<scale>/fim_ablation.png``); returns the figure."""
    title = f"FIM ablation at scale {results['scale']} (DeepSeek-Coder Fig. 3, extended)"
    return plot_curves(FIM, results, path or figure_path(results["scale"], "fim_ablation.png"), title)
