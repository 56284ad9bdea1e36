"""The FIM ablation (DeepSeek-Coder §3.1.2, Figure 3), extended with SPM, joint PSM+SPM and a FIM-rate sweep.

The paper trains its 1.3B model on a Python subset four times, changing only the FIM setting (0% FIM, 50% PSM,
100% PSM, 50% MSP), and plots HumanEval-FIM, HumanEval and MBPP against training steps (Figure 3). We run the
same controlled experiment at each scale and add what the paper left out: 50% SPM, 50% joint PSM+SPM
(Bavarian et al. 2022, Table 1) and the PSM rate sweep 0.25 / 0.5 / 0.9 (Bavarian et al. §4.2). Every run has
the scale's model, data, seed and token budget (``FIMConfig.ablation_steps`` steps of ``TrainConfig``'s
batch); only ``fim_rate`` and ``mode`` differ. One control run, FIM 0% with the next seed (:data:`CONTROL`),
measures how far two runs differ by chance, which one seed per setting cannot show.

Each run is trained in segments with :func:`dslib.train.train` (``stop_after`` the next evaluation step, a
checkpoint there, resume) and evaluated at ``FIMConfig.ablation_evals`` evenly spaced steps on:

- single-line infilling exact match (Fried et al. 2022; Table 6's metric), prompted in PSM and in SPM;
- the *middle loss*: mean token loss of the true line given the PSM (or SPM) prompt, a smooth infilling
  metric that separates the settings while exact match is still near zero for every small model;
- the held-out left-to-right loss (the packed held-out split without FIM): the completion cost of FIM;
- HumanEval pass@1, greedy (``FIMConfig.ablation_humaneval``; on at ``gpu`` and ``paper`` scale only).

Infilling tasks are cut to the model's training window (``TrainConfig.seq_len``): the prefix from the left and
the suffix from the right, at token boundaries, until the prompt and the true middle fit. At ``gpu`` and ``paper``
scale the window holds every HumanEval task whole; at ``smoke`` and ``cpu`` it does not, so those numbers are
this miniature's, not Table 6's.

Runs live in ``artifacts/<scale>/fim_ablation/<setting>/`` with a ``run.json`` that records the evaluations
so far and a fingerprint of everything they depend on. A run whose ``run.json`` is complete and matches is
reused as is; one that stopped part-way resumes from its last checkpoint; one with another fingerprint is
started over. A finished run keeps its metrics and final weights (``hf/``) and drops its optimizer
checkpoints. :func:`fim_ablation` gathers the runs into ``results.json``; :func:`fim_findings` states, for each
of :data:`dslib.paper.FIM_FINDINGS`, whether the numbers agree, disagree, or are too small to tell.
:func:`first_token_losses` splits each finished run's middle loss into the middle's first token and the rest,
which shows why exact match lags the middle loss in small models.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dslib import train as training
from dslib.artifacts import artifact_dir, figure_path, fingerprint
from dslib.config import FIMConfig, Scale, resolve
from dslib.eval.generation import encode, load_checkpoint, subset
from dslib.eval.humaneval import evaluate_model
from dslib.eval.infilling import evaluate_infilling, single_line_tasks
from dslib.fim import Sentinel, fim_prompt, sentinel_ids
from dslib.model import Transformer
from dslib.packing import DOCUMENTS_FILE, NO_FIM, packed_dataset, stream_statistics
from dslib.paper import FIM_FINDINGS
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
# FIM 0% again with the next seed (other initial weights and data order): one seed per setting cannot show the
# run-to-run spread, so this control run measures it, and a difference no larger than it is too small to tell.
CONTROL = "fim_0_seed1"
SEED_OFFSETS = {CONTROL: 1}
RATE_SWEEP = ("fim_0", "psm_0.25", "psm_0.5", "psm_0.9", "psm_1.0")

# Each metric: what it is, whether higher is better, and its floor: a difference smaller than this is never
# called clear, whatever its standard error (an absolute share for rates, a fraction of the baseline's mean for
# losses). One seed per setting leaves the run-to-run spread unmeasured but for CONTROL; the floor covers it.
METRICS: dict[str, tuple[str, bool, float]] = {
    "infill_em_psm": ("single-line infilling exact match, PSM prompt", True, 0.02),
    "infill_em_spm": ("single-line infilling exact match, SPM prompt", True, 0.02),
    "middle_loss_psm": ("middle loss given the PSM prompt (nats/token)", False, 0.01),
    "middle_loss_spm": ("middle loss given the SPM prompt (nats/token)", False, 0.01),
    "l2r_loss": ("held-out left-to-right loss (nats/token)", False, 0.01),
    "humaneval_pass@1": ("HumanEval pass@1 (greedy)", True, 0.02),
}
RELATIVE_FLOOR = {name for name, (_, higher, _) in METRICS.items() if not higher}
Z = 2.0  # a difference is clear when it exceeds Z paired standard errors (about 95%) and the metric's floor
L2R_TOLERANCE = 0.01  # "no left-to-right cost": the loss rises by less than 1% of the FIM-0% model's
AGREES, DISAGREES, TOO_SMALL, NOT_RUN = "agrees", "disagrees", "too small to tell", "not run"
RUN_FILE, RESULTS_FILE = "run.json", "results.json"
FORMAT_VERSION = 1  # bump when what an evaluation records changes, so old run.json files are redone
PROMPT_SPECIALS = 4  # BOS and the three sentinels of a PSM or SPM prompt
TOKEN_SLACK = 4  # re-encoding a cut prefix or suffix can cost a token or two more than the cut suggests
MIN_CONTEXT = 8  # a task whose middle leaves fewer tokens than this for prefix and suffix is skipped


# ----------------------------------------------------------------------------------------------------------
# The grid and the runs' configs


def grid(scale: Scale | str | None = None, settings: Iterable[str] | None = None) -> dict[str, FIMConfig]:
    """Each setting's :class:`FIMConfig`: the scale's (``level`` included), with the setting's ``fim_rate``, ``mode``.

    ``settings`` defaults to all of :data:`FIM_GRID` and the seed :data:`CONTROL`.
    """
    scale = resolve(scale)
    names = [*FIM_GRID, CONTROL] if settings is None else list(settings)
    known = {**FIM_GRID, CONTROL: FIM_GRID["fim_0"]}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown FIM settings {unknown or names}; choose among {', '.join(known)}")
    return {n: replace(scale.fim, fim_rate=known[n][0], mode=known[n][1]) for n in names}


def eval_steps(fim: FIMConfig) -> list[int]:
    """The steps a run is evaluated at: every ``ablation_steps // ablation_evals`` steps, and the last step."""
    every = max(1, fim.ablation_steps // fim.ablation_evals)
    steps = [every * k for k in range(1, fim.ablation_evals)] + [fim.ablation_steps]
    return sorted({s for s in steps if s <= fim.ablation_steps})


def run_scale(scale: Scale, fim: FIMConfig, setting: str | None = None) -> Scale:
    """The scale a setting trains with: ``fim``, ``ablation_steps`` steps, a checkpoint at each evaluation step,
    and the scale's seed (the next one for :data:`CONTROL`)."""
    steps = eval_steps(fim)
    every = steps[0] if len(steps) > 1 else fim.ablation_steps
    seed = scale.train.seed + SEED_OFFSETS.get(setting, 0)
    train = replace(scale.train, max_steps=fim.ablation_steps, checkpoint_every=every, keep_last=2, seed=seed)
    return replace(scale, fim=fim, train=train)


# ----------------------------------------------------------------------------------------------------------
# Evaluation


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


def ablation_tasks(scale: Scale, tok) -> tuple[list[dict], int]:
    """The infilling tasks of the ablation, cut to the window, and how many were skipped (middle too long).

    ``FIMConfig.ablation_tasks`` tasks (default ``EvalConfig.infilling_limit``) spread over the 1033.
    """
    limit = scale.fim.ablation_tasks if scale.fim.ablation_tasks is not None else scale.eval.infilling_limit
    fitted = [fit_task(t, tok, window(scale)) for t in subset(single_line_tasks(), limit)]
    tasks = [t for t in fitted if t is not None]
    skipped = len(fitted) - len(tasks)
    if skipped:
        log.info(
            "skipped %d of %d infilling tasks whose middle leaves no room in %d tokens",
            skipped,
            len(fitted),
            window(scale),
        )
    if not tasks:
        raise ValueError(f"no infilling task fits the {window(scale)}-token window of scale {scale.name!r}")
    return tasks, skipped


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def middle_token_losses(
    model, tok, tasks: Sequence[Mapping], mode: str = "psm", batch_size: int = 8
) -> list[list[float]]:
    """Each task's token losses (nats) of the true middle after its FIM prompt in ``mode``, in order.

    The prompt is encoded as the evaluation encodes it (BOS first); the middle as training encodes a piece
    (:func:`dslib.tokenizer.encode_text`, on its own, as Bavarian et al.'s ``Enc(middle)``).
    """
    prompts = [encode(tok, fim_prompt(t["prefix"], t["suffix"], mode)) for t in tasks]
    return continuation_token_losses(model, prompts, encode_text(tok, [t["middle"] for t in tasks]), batch_size)


@torch.no_grad()
def continuation_token_losses(
    model, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], batch_size: int = 8
) -> list[list[float]]:
    """The token losses (nats) of each ``targets[i]`` right after ``prompts[i]`` (token ids), batched by length."""
    device = next(model.parameters()).device
    losses: list[list[float]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(targets[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(prompts[i]) + len(targets[i]) for i in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)  # right padding: causal rows never see it
        for row, i in enumerate(batch):
            ids[row, : len(prompts[i]) + len(targets[i])] = torch.tensor([*prompts[i], *targets[i]])
        with _autocast(device):
            logits = model(ids.to(device))
        for row, i in enumerate(batch):
            first = len(prompts[i]) - 1  # the position whose logits predict the target's first token
            target = torch.tensor(targets[i], device=device)
            predicted = logits[row, first : first + len(target)].float()
            losses[i] = F.cross_entropy(predicted, target, reduction="none").tolist()
    return losses


def middle_losses(model, tok, tasks: Sequence[Mapping], mode: str = "psm", batch_size: int = 8) -> list[float]:
    """Each task's mean token loss (nats) of the true middle after its FIM prompt in ``mode``
    (:func:`middle_token_losses`)."""
    return [float(np.mean(losses)) for losses in middle_token_losses(model, tok, tasks, mode, batch_size)]


@torch.no_grad()
def heldout_losses(model, scale: Scale, limit: int, batch_size: int | None = None) -> list[float]:
    """Mean next-token loss of each of the first ``limit`` held-out sequences, packed without FIM."""
    data = packed_dataset(
        scale, "heldout", NO_FIM, batch_size=batch_size or scale.train.micro_batch_size, rank=0, world_size=1, epochs=1
    )
    device = next(model.parameters()).device
    losses: list[float] = []
    for batch in data.loader():
        batch = batch[: limit - len(losses)].to(device)
        with _autocast(device):
            logits = model(batch[:, :-1])
        per_token = F.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:], reduction="none")
        losses += per_token.mean(dim=1).tolist()
        if len(losses) >= limit:
            break
    if len(losses) < limit:
        log.info(
            "the held-out split has %d sequences of %d tokens, fewer than the %d asked for",
            len(losses),
            data.seq_len,
            limit,
        )
    return losses


def evaluate_point(model, tok, scale: Scale, tasks: Sequence[Mapping], progress: bool = False) -> dict:
    """Every metric of :data:`METRICS` the scale asks for, on one model: means, and per item in ``items``."""
    model.eval()
    longest = max(len(ids) for ids in encode_text(tok, [t["middle"] for t in tasks]))
    # A line longer than the longest true middle cannot match any of them, so generation stops there.
    config = replace(scale.eval, max_new_tokens=min(scale.eval.max_new_tokens, longest + TOKEN_SLACK))
    items: dict[str, list] = {}
    for mode in ("psm", "spm"):
        scored = evaluate_infilling(model, tok, tasks, mode, config, execute=False, progress=progress)
        items[f"infill_em_{mode}"] = [float(r["exact_match"]) for r in scored["records"]]
        items[f"middle_loss_{mode}"] = middle_losses(model, tok, tasks, mode, scale.eval.batch_size)
    items["l2r_loss"] = heldout_losses(model, scale, scale.fim.ablation_heldout_sequences)
    if scale.fim.ablation_humaneval:
        greedy = replace(scale.eval, n_samples=1, temperature=0.0)
        scored = evaluate_model(model, tok, greedy, k=(1,), progress=progress)
        items["humaneval_pass@1"] = [float(r["passed"]) for r in scored["samples"]]
    return {**{name: float(np.mean(values)) for name, values in items.items()}, "items": items}


# ----------------------------------------------------------------------------------------------------------
# Running the grid


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    tmp.replace(path)


def _uncompiled(model, scale: Scale):
    """``model``, or with ``TrainConfig.compile`` a plain copy of it: training compiles its blocks in place, and
    evaluation's changing shapes (prompts, a KV cache) would recompile them over and over."""
    if not scale.train.compile:
        return model
    with torch.device(next(model.parameters()).device):
        plain = Transformer(model.config)
    plain.load_state_dict(model.state_dict())
    return plain


def run_setting(
    scale: Scale, name: str, fim: FIMConfig, directory: Path, tok, tasks: Sequence[Mapping], progress: bool = True
) -> dict:
    """Train and evaluate one setting in ``directory`` (reusing or resuming what is there); its ``run.json``."""
    trained = run_scale(scale, fim, name)  # evaluation uses the base scale: every run sees the same held-out data
    steps = eval_steps(fim)
    spec = {
        "train": training.run_fingerprint(training.TrainRun(trained)),
        "steps": steps,
        "tasks": [(t["task_id"], t["prefix"], t["suffix"]) for t in tasks],
        "eval": scale.eval,
        "heldout": (fim.ablation_heldout_sequences, scale.train.seed),
        "humaneval": fim.ablation_humaneval,
        "tokenizer": fingerprint(tok.to_str()),
        "version": FORMAT_VERSION,
    }
    key = fingerprint(spec)
    path = directory / RUN_FILE
    record = _read_json(path)
    if record is not None and record.get("fingerprint") == key and record.get("complete"):
        log.info("%s: reusing the finished run in %s", name, directory)
        return record
    if record is None or record.get("fingerprint") != key:
        if directory.exists():
            log.info("%s: %s holds another config's run; starting over", name, directory)
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        mode = fim.mode if isinstance(fim.mode, str) else dict(fim.mode)
        record = {"setting": name, "fim_rate": fim.fim_rate, "mode": mode, "fingerprint": key, "complete": False}
        record |= {"eval_steps": steps, "evals": [], "timings": {"train_s": 0.0, "eval_s": 0.0}}
        _write_json(path, record)
    done = {e["step"] for e in record["evals"]}
    result = None
    for step in steps:
        if step in done:
            continue
        t0 = time.perf_counter()
        # Up to the next evaluation step, where the run writes a checkpoint; a run interrupted earlier
        # resumes from its newest checkpoint, and one already there only loads it.
        result = training.train(training.TrainRun(trained, output_dir=directory, stop_after=step, progress=progress))
        t1 = time.perf_counter()
        point = evaluate_point(_uncompiled(result.model, trained), tok, scale, tasks, progress=False)
        record["evals"].append({"step": step, "tokens": step * trained.train.tokens_per_step, **point})
        record["timings"]["train_s"] += t1 - t0
        record["timings"]["eval_s"] += time.perf_counter() - t1
        _write_json(path, record)
    if result is None:  # every evaluation was there: the final weights are in the last checkpoint
        result = training.train(training.TrainRun(trained, output_dir=directory, stop_after=steps[-1], progress=False))
    shutil.rmtree(directory / "hf", ignore_errors=True)
    training.export_hf(result.model, directory / "hf", tok)
    record["complete"] = True
    _write_json(path, record)
    shutil.rmtree(directory / "checkpoints", ignore_errors=True)  # the optimizer state is no longer needed
    return record


def stream_summary(scale: Scale, fim: FIMConfig, tok, setting: str | None = None) -> dict:
    """How much FIM a setting's training actually sees: document, token and sequence rates of its packed
    stream (:func:`dslib.packing.stream_statistics`; ``sequence_rate`` counts sequences holding a middle
    sentinel), the share of sequences holding any sentinel (MSP puts one at every span), and the FIM
    documents that lie whole inside one training sequence, the examples that show prefix, suffix and middle
    together."""
    scale = run_scale(scale, fim, setting)
    data = packed_dataset(scale, "train", fim, rank=0, world_size=1)
    stats = stream_statistics(data, tok=tok)
    if data.context_fim is not None:  # FIM per training sequence: the stream itself holds none
        return {
            "fragment_rate": stats["fragment_rate"],
            "sequence_rate": stats["sequence_rate"],
            "sentinel_sequence_rate": stats["sentinel_sequence_rate"],
            "whole_fim_documents": stats["whole_fim_documents"],
            "share_of_stream_trained_on": min(
                1.0, scale.train.max_steps * scale.train.global_batch_size / data.num_sequences
            ),
        }
    documents = np.load(data.path / DOCUMENTS_FILE)
    start, length, code = documents[:, 0], documents[:, 1], documents[:, 2]
    whole = (code > 0) & (start // data.seq_len == (start + length - 1) // data.seq_len)
    ids = sentinel_ids(tok)
    sentinels = [ids[Sentinel.PRE], ids[Sentinel.SUF], ids[Sentinel.MID]]
    used = data.num_sequences * data.seq_len + 1
    positions = np.flatnonzero(np.isin(data.tokens()[:used], sentinels))
    # As stream_statistics counts: the sequence whose labels hold the sentinel (token i is sequence (i-1)//T's).
    holding = np.unique((np.maximum(positions, 1) - 1) // data.seq_len)
    seen = min(1.0, scale.train.max_steps * scale.train.global_batch_size / data.num_sequences)
    return {
        "document_rate": stats["document_rate"],
        "token_rate": stats["token_rate"],
        "sequence_rate": stats["sequence_rate"],
        "sentinel_sequence_rate": len(holding) / data.num_sequences,
        "whole_fim_documents": int(whole.sum()),
        "share_of_stream_trained_on": seen,
    }


def fim_ablation(
    scale: Scale | str | None = None,
    settings: Iterable[str] | None = None,
    directory: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Run the FIM grid (:data:`FIM_GRID` and :data:`CONTROL` by default) at ``scale``; the path of ``results.json``.

    Finished runs are reused and interrupted ones resume (see the module docstring). ``directory`` defaults
    to ``artifacts/<scale>/fim_ablation/``; each setting gets a folder of its name inside it.
    """
    scale = resolve(scale)
    configs = grid(scale, settings)
    directory = Path(directory) if directory is not None else artifact_dir(scale.name, "fim_ablation")
    directory.mkdir(parents=True, exist_ok=True)
    tok = ensure_tokenizer(scale)
    tasks, skipped = ablation_tasks(scale, tok)
    runs, streams = {}, {}
    for name, fim in tqdm(configs.items(), desc=f"FIM ablation ({scale.name})", disable=not progress):
        runs[name] = run_setting(scale, name, fim, directory / name, tok, tasks, progress)
        streams[name] = stream_summary(scale, fim, tok, name)
    fim = scale.fim
    results = {
        "scale": scale.name,
        "settings": runs,
        "streams": streams,
        "eval_steps": eval_steps(fim),
        "tokens_per_step": scale.train.tokens_per_step,
        "tasks": len(tasks),
        "skipped_tasks": skipped,
        "window": window(scale),
        "heldout": (fim.ablation_heldout_sequences, scale.train.seed),
        "config": {"fim": fim, "train": run_scale(scale, fim).train, "model": scale.model},
    }
    path = directory / RESULTS_FILE
    _write_json(path, results)
    return path


def load_results(source: str | Path | Scale | None = None) -> dict:
    """The ``results.json`` at ``source``: a path, or a scale (its ``artifacts/<scale>/fim_ablation/``)."""
    if isinstance(source, (str, Path)) and Path(source).suffix == ".json":
        path = Path(source)
    else:
        path = artifact_dir(resolve(source).name, "fim_ablation", create=False) / RESULTS_FILE
    data = _read_json(path)
    if data is None:
        raise FileNotFoundError(f"no FIM ablation results at {path}; run dslib.experiments.fim_ablation first")
    return data


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
    runs that finished in ``directory`` (default ``artifacts/<scale>/fim_ablation/``).
    """
    scale = resolve(scale)
    directory = Path(directory) if directory is not None else artifact_dir(scale.name, "fim_ablation", create=False)
    if settings is None:
        settings = [n for n in [*FIM_GRID, CONTROL] if (_read_json(directory / n / RUN_FILE) or {}).get("complete")]
    tok = ensure_tokenizer(scale)
    tasks, _ = ablation_tasks(scale, tok)
    rows = []
    for name in settings:
        if not (directory / name / "hf" / "config.json").exists():
            raise FileNotFoundError(f"{directory / name} holds no finished run; run fim_ablation for {name!r} first")
        model, _ = load_checkpoint(directory / name / "hf")
        row: dict[str, Any] = {"setting": name}
        for mode in ("psm", "spm"):
            losses = middle_token_losses(model, tok, tasks, mode, scale.eval.batch_size)
            row[f"first_{mode}"] = float(np.mean([each[0] for each in losses]))
            later = [x for each in losses for x in each[1:]]
            row[f"later_{mode}"] = float(np.mean(later)) if later else math.nan
        rows.append(row)
    if not rows:
        raise FileNotFoundError(
            f"no finished FIM ablation run in {directory}; run dslib.experiments.fim_ablation first"
        )
    return rows


# ----------------------------------------------------------------------------------------------------------
# Tables, findings, figure


def final(results: Mapping, setting: str) -> dict | None:
    """The last evaluation of ``setting``, or ``None`` when it was not run."""
    run = results["settings"].get(setting)
    return run["evals"][-1] if run and run["evals"] else None


def final_table(results: Mapping) -> list[dict]:
    """One row per setting: its FIM rate and mode, and every metric at the last evaluation."""
    rows = []
    for name, run in results["settings"].items():
        last = final(results, name)
        mode = run["mode"] if isinstance(run["mode"], str) else "+".join(sorted(run["mode"]))
        row = {"setting": name, "fim_rate": run["fim_rate"], "mode": mode, "step": last and last["step"]}
        rows.append(row | {m: last.get(m) for m in METRICS if last and m in last})
    return rows


def seed_gap(results: Mapping, metric: str) -> float:
    """How far ``metric`` moved between FIM 0% and its reseeded :data:`CONTROL` (0 without the control run)."""
    a, b = final(results, "fim_0"), final(results, CONTROL)
    if a is None or b is None or metric not in a or metric not in b:
        return 0.0
    return abs(a[metric] - b[metric])


def compare(a: Sequence[float], b: Sequence[float], metric: str, noise: float = 0.0) -> dict:
    """``a`` against ``b`` on the same items of ``metric``: the ``gain`` of ``a`` (positive = better), its paired
    standard error ``se``, the ``threshold`` a clear gain must exceed, and ``sign``: +1 or -1 when the gain is
    clear, 0 when it is too small to tell.

    The threshold is the largest of ``Z`` paired standard errors (the evaluation set's sampling noise), the
    metric's floor (:data:`METRICS`; relative to ``b``'s mean for losses) and ``noise`` (the seed gap).
    """
    _, higher, floor = METRICS[metric]
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"{metric}: compare needs the same non-empty items for both runs, got {a.shape} and {b.shape}")
    gain = (a - b) if higher else (b - a)
    se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.inf
    floor = floor * abs(float(b.mean())) if metric in RELATIVE_FLOOR else floor
    threshold = max(Z * se, floor, noise)
    mean = float(gain.mean())
    return {"gain": mean, "se": se, "threshold": threshold, "sign": int(np.sign(mean)) if abs(mean) > threshold else 0}


def _items(results: Mapping, setting: str, metric: str) -> list[float] | None:
    last = final(results, setting)
    return last["items"].get(metric) if last else None


def _pair(results: Mapping, a: str, b: str, metric: str) -> tuple[dict, str]:
    c = compare(_items(results, a, metric), _items(results, b, metric), metric, seed_gap(results, metric))
    va, vb = final(results, a)[metric], final(results, b)[metric]
    return c, f"{a} {va:.3f} vs {b} {vb:.3f} (gain {c['gain']:+.3f}, clear beyond {c['threshold']:.3f})"


def _directional(results: Mapping, metric: str, pairs: Sequence[tuple[str, str]], expected: int) -> tuple[str, str]:
    """Agrees when every ``(a, b)`` clearly goes the ``expected`` way (+1: ``a`` is better), disagrees when one
    clearly goes the other way, too small to tell otherwise."""
    compared = [_pair(results, a, b, metric) for a, b in pairs]
    signs = [c["sign"] for c, _ in compared]
    if any(s == -expected for s in signs):
        verdict = DISAGREES
    elif all(s == expected for s in signs):
        verdict = AGREES
    else:
        verdict = TOO_SMALL
    return verdict, "; ".join(text for _, text in compared)


def _l2r_cost(results: Mapping, metric: str = "l2r_loss") -> tuple[str, str]:
    """Bavarian et al. §4.2: at rates up to 90% the held-out loss rises by clearly less than ``L2R_TOLERANCE``
    of FIM 0%'s (no cost), while at 100% it rises by clearly more."""
    base = _items(results, "fim_0", metric)
    tolerance = L2R_TOLERANCE * float(np.mean(base))
    states, parts = {}, []
    for name in ("psm_0.25", "psm_0.5", "psm_0.9", "psm_1.0"):
        c = compare(_items(results, name, metric), base, metric, seed_gap(results, metric))
        cost, band = -c["gain"], max(Z * c["se"], seed_gap(results, metric))
        states[name] = +1 if cost - band > tolerance else -1 if cost + band < tolerance else 0  # +1 costs, -1 free
        parts.append(f"{name} {cost:+.4f} ± {band:.4f}")
    low, full = [states[n] for n in ("psm_0.25", "psm_0.5", "psm_0.9")], states["psm_1.0"]
    if any(s == +1 for s in low) or full == -1:
        verdict = DISAGREES
    elif all(s == -1 for s in low) and full == +1:
        verdict = AGREES
    else:
        verdict = TOO_SMALL
    return verdict, f"loss rise over fim_0 (tolerance {tolerance:.4f}): " + ", ".join(parts)


def _joint(results: Mapping, family: str) -> tuple[str, str]:
    """Transfer under joint training: the joint model clearly beats FIM 0% in both prompt formats."""
    verdicts = [_directional(results, f"{family}_{mode}", [("joint_0.5", "fim_0")], +1) for mode in ("psm", "spm")]
    found = [v for v, _ in verdicts]
    verdict = DISAGREES if DISAGREES in found else AGREES if all(v == AGREES for v in found) else TOO_SMALL
    return verdict, "; ".join(f"{m.upper()}: {text}" for m, (_, text) in zip(("psm", "spm"), verdicts, strict=True))


INFILL = ("infill_em_psm", "middle_loss_psm")
# Each finding: the settings it compares, the metrics it may be decided on (in order), and its test.
FINDING_TESTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Any]] = {
    "fim100_best_infilling": (
        PAPER_SETTINGS,
        INFILL,
        lambda r, m: _directional(r, m, [("psm_1.0", o) for o in ("fim_0", "psm_0.5", "msp_0.5")], +1),
    ),
    "fim100_worst_completion": (
        PAPER_SETTINGS,
        ("humaneval_pass@1", "l2r_loss"),
        lambda r, m: _directional(r, m, [("psm_1.0", o) for o in ("fim_0", "psm_0.5", "msp_0.5")], -1),
    ),
    "psm50_beats_msp50": (
        ("psm_0.5", "msp_0.5"),
        INFILL,
        lambda r, m: _directional(r, m, [("psm_0.5", "msp_0.5")], +1),
    ),
    "no_l2r_cost_to_90": (RATE_SWEEP, ("l2r_loss",), _l2r_cost),
    "joint_transfer": (("joint_0.5", "fim_0"), ("infill_em", "middle_loss"), _joint),
    "psm_only_fails_spm_variant1": (
        ("spm_0.5", "psm_0.5"),
        INFILL,
        lambda r, m: _directional(r, m, [("spm_0.5", "psm_0.5")], -1),
    ),
}
FIM_EFFECT = ("psm_0.5", "fim_0")  # the effect every finding presupposes: FIM training teaches infilling


def fim_effect(results: Mapping) -> tuple[bool, str]:
    """Whether the runs learned FIM at all: 50% PSM clearly beats FIM 0% on infilling (exact match, else the
    middle loss), and the numbers that say so."""
    texts = []
    for metric in INFILL:
        verdict, text = _directional(results, metric, [FIM_EFFECT], +1)
        if verdict == AGREES:
            return True, text
        texts.append(text)
    return False, "; ".join(texts)


def _available(results: Mapping, settings: Sequence[str], metric: str) -> bool:
    names = [f"{metric}_psm", f"{metric}_spm"] if metric in ("infill_em", "middle_loss") else [metric]
    return all(_items(results, s, n) is not None for s in settings for n in names)


def fim_findings(results: Mapping) -> list[dict]:
    """For each of :data:`dslib.paper.FIM_FINDINGS`: ``verdict`` (agrees / disagrees / too small to tell / not
    run), the ``basis`` metric that decided it (every metric tried, joined by " / ", when none did), the
    ``evidence`` in numbers, and ``by_metric``, the verdict on each metric tried (``infill_em`` and
    ``middle_loss`` stand for both prompt formats).

    The rule. Two settings are compared on the same items (infilling tasks, held-out sequences, problems) at
    their last evaluation; a difference is clear when it exceeds (:func:`compare`) two paired standard errors,
    the metric's floor (2 points of exact match or pass@1, 1% of a loss) and the gap between two seeds of
    FIM 0% (:data:`CONTROL`). Exact match (or pass@1) decides where it is clear, else the smooth loss. "No
    left-to-right cost" means a rise clearly below ``L2R_TOLERANCE`` (1%). Every finding is too small to tell
    until the runs show a clear FIM effect at all (:func:`fim_effect`).
    """
    ready = all(final(results, s) is not None for s in FIM_EFFECT)
    learned, effect = fim_effect(results) if ready else (False, "")
    rows = []
    for finding in FIM_FINDINGS:
        settings, metrics, test = FINDING_TESTS[finding.key]
        row = {"key": finding.key, "claim": finding.claim, "source": finding.source, "by_metric": {}}
        needed = list(dict.fromkeys([*settings, *FIM_EFFECT]))
        missing = [s for s in needed if final(results, s) is None]
        tried = {m: test(results, m) for m in metrics if not missing and _available(results, settings, m)}
        if missing or not tried:
            why = f"needs {', '.join(missing)}" if missing else "none of its metrics was evaluated"
            rows.append(row | {"verdict": NOT_RUN, "basis": None, "evidence": why})
            continue
        basis = next((m for m, (v, _) in tried.items() if v != TOO_SMALL), None)
        if basis is not None:
            verdict, evidence = tried[basis]
        else:  # no metric decides: the reader sees every comparison that was tried, not just the first
            basis = " / ".join(tried)
            verdict, evidence = TOO_SMALL, "; ".join(f"{m}: {text}" for m, (_, text) in tried.items())
        if not learned:
            verdict, evidence = TOO_SMALL, f"no clear FIM effect yet ({effect}); {evidence}"
        rows.append(
            row
            | {
                "verdict": verdict,
                "basis": basis,
                "evidence": evidence,
                "by_metric": {m: v for m, (v, _) in tried.items()},
            }
        )
    return rows


def summarize(results: Mapping, findings: Sequence[Mapping]) -> str:
    """A few lines of prose with the run's own numbers: the FIM effect, the best infilling setting, the
    left-to-right cost of 100% FIM, the seed-to-seed gap, and each finding's verdict."""
    table = {row["setting"]: row for row in final_table(results)}
    learned, effect = fim_effect(results) if all(s in table for s in FIM_EFFECT) else (False, "not run")
    lines = [f"FIM effect (psm_0.5 vs fim_0): {'clear' if learned else 'not clear'}: {effect}."]
    grid_rows = [row for name, row in table.items() if name in FIM_GRID]
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
    if CONTROL in table:
        gaps = ", ".join(f"{m} {seed_gap(results, m):.4f}" for m in ("middle_loss_psm", "l2r_loss", "infill_em_psm"))
        lines.append(f"Two seeds of fim_0 differ by: {gaps}.")
    for f in findings:
        basis = f" (on {f['basis']})" if f["basis"] else ""
        lines.append(f"- {f['claim']} → {f['verdict']}{basis}")
    return "\n".join(lines)


def result_rows(results: Mapping, findings: Sequence[Mapping]) -> list[dict]:
    """Rows for :func:`dslib.results.record`: each grid setting's final infilling exact match (PSM, SPM) and
    held-out left-to-right loss, and each finding's verdict beside the paper's claim."""
    rows = []
    for row in final_table(results):
        name = row["setting"]
        if name not in FIM_GRID:
            continue
        source = "[P] §3.1.2, Fig. 3" if name in PAPER_SETTINGS else "[FIM] §4"
        note = f"step {row['step']}; middle loss PSM {row['middle_loss_psm']:.3f}, SPM {row['middle_loss_spm']:.3f}"
        for metric, label in (
            ("infill_em_psm", "infilling EM (PSM)"),
            ("infill_em_spm", "infilling EM (SPM)"),
            ("l2r_loss", "held-out L2R loss"),
        ):
            ours = round(row[metric], 4)
            rows.append(
                {"metric": f"FIM ablation {name}: {label}", "ours": ours, "paper": None, "source": source, "note": note}
            )
    for f in findings:
        rows.append(
            {
                "metric": f"finding: {f['claim']}",
                "ours": f["verdict"],
                "paper": "holds",
                "source": f["source"],
                "note": f"{f['basis']}: {f['evidence']}",
            }
        )
    return rows


def plot_fim_ablation(results: Mapping, path: str | Path | None = None):
    """Figure 3's panels: each metric against training steps, one line per setting (the paper's four solid,
    the extensions dashed, the reseeded control dotted grey).

    Saved to ``path`` (default ``figures/<scale>/fim_ablation.png``); returns the figure.
    """
    import matplotlib.pyplot as plt

    runs = results["settings"]
    metrics = [m for m in METRICS if any(m in e for run in runs.values() for e in run["evals"])]
    columns = 3
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
    colours = [c for k, c in enumerate(plt.get_cmap("tab10").colors) if k != 7]  # tab10's grey marks the control
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for k, (name, run) in enumerate(runs.items()):
            points = [(e["step"], e[metric]) for e in run["evals"] if metric in e]
            style = {"ls": ":", "color": "grey"} if name == CONTROL else {"color": colours[k % len(colours)]}
            style["ls"] = style.get("ls", "-" if name in PAPER_SETTINGS else "--")
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=name, **style)
        ax.set_xlabel("training step")
        ax.set_title(METRICS[metric][0], fontsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    spare = list(axes.flat)[len(metrics) :]
    for ax in spare:
        ax.axis("off")
    if spare:
        spare[0].legend(handles, labels, loc="center", fontsize=9)
    else:
        fig.legend(handles, labels, loc="center right", fontsize=9)
    fig.suptitle(f"FIM ablation at scale {results['scale']} (DeepSeek-Coder Fig. 3, extended)")
    fig.tight_layout(rect=(0, 0, 1 if spare else 0.88, 1))
    fig.savefig(path or figure_path(results["scale"], "fim_ablation.png"), dpi=120)
    return fig
