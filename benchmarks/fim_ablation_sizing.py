"""Sizing the FIM ablation's grid (DeepSeek-Coder §3.1.2): seconds per training step of the scale's model
(``dslib.train.train`` on synthetic data, the scale's batch) and seconds per evaluation of the ablation's
metrics (middle losses on every single-line task in both prompt formats, the held-out lines, the held-out
sequences, greedy infilling for exact match), in the same run, so the grid's steps, seeds and settings can be
chosen to fit a time budget (``dslib.ablation.fim.grid_hours``).

    python benchmarks/fim_ablation_sizing.py [--scale cpu] [--steps 25] [--generation-tasks 16]

The tasks are encoded with the ``smoke`` tokenizer (the scale's own needs its corpus built); every task is cut
to the scale's window either way, so the forward passes have the evaluation's shapes. Greedy infilling is timed
on ``--generation-tasks`` tasks and scaled to ``AblationConfig.generation_tasks``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from dslib.ablation import fim as ex
from dslib.config import get_scale
from dslib.eval.infilling import evaluate_infilling, single_line_tasks
from dslib.eval.likelihood import middle_losses
from dslib.tokenizer import ensure_tokenizer
from dslib.train import TrainRun, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--generation-tasks", type=int, default=16)
    args = parser.parse_args()
    scale = get_scale(args.scale)
    tok = ensure_tokenizer("smoke")
    torch.manual_seed(0)
    warm = 3
    with tempfile.TemporaryDirectory() as tmp:
        run = scale.override({"train.max_steps": warm, "train.checkpoint_every": 10**9})
        t0 = time.perf_counter()
        train(TrainRun(run, output_dir=Path(tmp) / "a", data="synthetic", resume=False, progress=False))
        t1 = time.perf_counter()
        run = scale.override({"train.max_steps": warm + args.steps, "train.checkpoint_every": 10**9})
        result = train(TrainRun(run, output_dir=Path(tmp) / "b", data="synthetic", resume=False, progress=False))
        t2 = time.perf_counter()
    step_s = ((t2 - t1) - (t1 - t0)) / args.steps  # the difference leaves out start-up and the warm-up steps
    model = result.model.eval()
    limit = ex.window(scale)
    tasks = [t for t in (ex.fit_task(t, tok, limit) for t in single_line_tasks()) if t is not None]
    t0 = time.perf_counter()
    for mode in ("psm", "spm"):
        middle_losses(model, tok, tasks, mode, scale.eval.batch_size)
    losses_s = time.perf_counter() - t0
    config = replace(scale.eval, max_new_tokens=48)
    t0 = time.perf_counter()
    for mode in ("psm", "spm"):
        evaluate_infilling(model, tok, tasks[:: len(tasks) // args.generation_tasks][: args.generation_tasks],
                           mode, config, execute=False, progress=False)  # fmt: skip
    generation_s = (time.perf_counter() - t0) / args.generation_tasks
    rows = [
        ("training step (s)", step_s),
        (f"middle losses, {len(tasks)} tasks x 2 formats (s)", losses_s),
        ("per task and format (ms)", 1000 * losses_s / (2 * len(tasks))),
        ("greedy infilling, per task x 2 formats (s)", generation_s),
        ("middle-loss time / training step", losses_s / step_s),
    ]
    print(f"scale {scale.name}: {scale.train.global_batch_size} x {scale.train.seq_len} tokens per step, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    for name, value in rows:
        print(f"{name:<48} {value:10.3f}")


if __name__ == "__main__":
    main()
