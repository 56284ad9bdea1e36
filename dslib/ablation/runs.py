"""Running a grid: each setting trained in segments up to its evaluation steps, evaluated there, reused when
finished, resumed when interrupted, started over when its fingerprint changed."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dslib import packing
from dslib import train as training
from dslib.ablation.grid import Evaluation, Experiment, eval_steps, setting_scales
from dslib.artifacts import artifact_dir, fingerprint
from dslib.config import Scale, resolve
from dslib.model import Transformer

log = logging.getLogger(__name__)

RUN_FILE, RESULTS_FILE = "run.json", "results.json"


def read_json(path: Path) -> dict | None:
    """The JSON at ``path``, or ``None`` when it is missing or cut short."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (dataclasses as dicts)."""
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


def run_setting(name: str, trained: Scale, evaluation: Evaluation, directory: Path, progress: bool = True) -> dict:
    """Train and evaluate one setting (its scale ``trained``) in ``directory``, reusing or resuming what is
    there; returns its ``run.json`` record."""
    steps = eval_steps(trained.ablation)
    key = fingerprint(
        {"train": training.run_fingerprint(training.TrainRun(trained)), "steps": steps, **evaluation.spec}
    )
    path = directory / RUN_FILE
    record = read_json(path)
    if record is not None and record.get("fingerprint") == key and record.get("complete"):
        log.info("%s: reusing the finished run in %s", name, directory)
        return record
    if record is None or record.get("fingerprint") != key:
        if directory.exists():
            log.info("%s: %s holds another config's run; starting over", name, directory)
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        record = {"setting": name, **evaluation.describe(trained), "fingerprint": key, "complete": False}
        record |= {"eval_steps": steps, "evals": [], "timings": {"train_s": 0.0, "eval_s": 0.0}}
        write_json(path, record)
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
        items = evaluation.evaluate(_uncompiled(result.model, trained).eval())
        point = {**{metric: float(np.mean(values)) for metric, values in items.items()}, "items": items}
        record["evals"].append({"step": step, "tokens": step * trained.train.tokens_per_step, **point})
        record["timings"]["train_s"] += t1 - t0
        record["timings"]["eval_s"] += time.perf_counter() - t1
        write_json(path, record)
    if result is None:  # every evaluation was there: the final weights are in the last checkpoint
        result = training.train(training.TrainRun(trained, output_dir=directory, stop_after=steps[-1], progress=False))
    shutil.rmtree(directory / "hf", ignore_errors=True)
    training.export_hf(result.model, directory / "hf", evaluation.tokenizer)
    record["complete"] = True
    write_json(path, record)
    shutil.rmtree(directory / "checkpoints", ignore_errors=True)  # the optimizer state is no longer needed
    return record


def run_grid(
    experiment: Experiment,
    scale: Scale | str | None = None,
    settings: Iterable[str] | None = None,
    directory: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Run ``settings`` of the experiment's grid (default: all) at ``scale``; the path of its ``results.json``.

    ``directory`` defaults to ``artifacts/<scale>/<experiment.name>/``; each setting gets a folder of its name.
    """
    scale = resolve(scale)
    scales = setting_scales(experiment, scale, settings)
    directory = Path(directory) if directory is not None else artifact_dir(scale.name, experiment.name)
    directory.mkdir(parents=True, exist_ok=True)
    evaluation = experiment.evaluation(scale)
    workers = min(scale.ablation.workers, len(scales))
    desc = f"{experiment.title} ({scale.name})"
    if workers > 1:
        runs = _run_parallel(experiment, scale, scales, directory, workers, desc, progress)
    else:
        runs = {
            name: run_setting(name, trained, evaluation, directory / name, progress)
            for name, trained in tqdm(scales.items(), desc=desc, disable=not progress)
        }
    streams = {name: evaluation.inspect(trained) for name, trained in scales.items()}
    train_s = sum(run["timings"]["train_s"] for run in runs.values())
    eval_s = sum(run["timings"]["eval_s"] for run in runs.values())
    results = {
        "scale": scale.name,
        # Where the grid's time went (the runs' own timings, reused runs included): evaluation's share should be small.
        # With several workers the runs overlap: these are each run's own times summed, not the grid's wall time.
        "timings": {
            "train_s": train_s,
            "eval_s": eval_s,
            "eval_share": eval_s / max(train_s + eval_s, 1e-9),
            "workers": workers,
        },
        "settings": runs,
        "streams": streams,
        "eval_steps": eval_steps(scale.ablation),
        "tokens_per_step": scale.train.tokens_per_step,
        **evaluation.summary(),
        "config": scale,
    }
    path = directory / RESULTS_FILE
    write_json(path, results)
    return path


_worker_evaluation: Evaluation | None = None  # in a worker process: the grid's evaluation, built once


def _start_worker(experiment: Experiment, scale: Scale, threads: int) -> None:
    global _worker_evaluation
    torch.set_num_threads(threads)
    _worker_evaluation = experiment.evaluation(scale)


def _run_in_worker(name: str, trained: Scale, directory: Path) -> dict:
    return run_setting(name, trained, _worker_evaluation, directory, progress=False)


def _run_parallel(
    experiment: Experiment,
    scale: Scale,
    scales: dict[str, Scale],
    directory: Path,
    workers: int,
    desc: str,
    progress: bool,
) -> dict[str, dict]:
    """Run the settings ``workers`` at a time, each worker a process with its share of this process's threads
    (``AblationConfig.workers``); returns their records in the grid's order."""
    # Every artifact the runs share (corpus, tokenizer, packed streams) is built here first and only read by the
    # workers: two processes building one artifact folder would each clear the other's work.
    for trained in scales.values():
        packing.ensure_stream(trained, "train")
    threads = max(1, torch.get_num_threads() // workers)
    # "spawn": a forked child of a process that has run OpenMP threads can hang in its first parallel region.
    context = multiprocessing.get_context("spawn")
    start = {"initializer": _start_worker, "initargs": (experiment, scale, threads)}
    with ProcessPoolExecutor(workers, context, **start) as pool:
        futures = {name: pool.submit(_run_in_worker, name, t, directory / name) for name, t in scales.items()}
        try:
            for future in tqdm(as_completed(futures.values()), total=len(futures), desc=desc, disable=not progress):
                future.result()  # a failed run stops the grid here, with its traceback
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the runs not started stay unstarted; a started one resumes later
            raise
    return {name: future.result() for name, future in futures.items()}


def load_results(experiment: Experiment, source: str | Path | Scale | None = None) -> dict:
    """The ``results.json`` at ``source``: a path, or a scale (its ``artifacts/<scale>/<experiment.name>/``)."""
    if isinstance(source, (str, Path)) and Path(source).suffix == ".json":
        path = Path(source)
    else:
        path = artifact_dir(resolve(source).name, experiment.name, create=False) / RESULTS_FILE
    data = read_json(path)
    if data is None:
        raise FileNotFoundError(f"no {experiment.title} results at {path}; run it first (dslib.ablation.run_grid)")
    return data


def finished(experiment: Experiment, directory: Path) -> list[str]:
    """The settings whose run in ``directory`` finished (its weights are in ``<setting>/hf``)."""
    return [n for n in experiment.settings if (read_json(directory / n / RUN_FILE) or {}).get("complete")]
