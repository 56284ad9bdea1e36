"""Sizing the FIM ablation's grid (DeepSeek-Coder §3.1.2): seconds per training step of the scale's model
(``dslib.train.train`` on synthetic data, the scale's batch) and seconds per evaluation of the ablation's
metrics (middle losses on every single-line task in both prompt formats, the held-out lines, the held-out
sequences, greedy infilling for exact match), in the same run, so the grid's steps, seeds and settings can be
chosen to fit a time budget (``dslib.ablation.fim.grid_hours``).

    python benchmarks/fim_ablation_sizing.py [--scale cpu] [--steps 20] [--loss-tasks 256] [--generation-tasks 8]

The tasks are encoded with the ``smoke`` tokenizer (the scale's own needs its corpus built); every task is cut
to the scale's window either way, so the forward passes have the evaluation's shapes. Greedy infilling is timed
on ``--generation-tasks`` tasks and the losses on ``--loss-tasks``, per task, to be scaled to the grid's counts.
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


def clock() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): on a shared machine the CPU time, divided by the threads, is
    what the step would take on free cores."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clock()
    return wall - start[0], cpu - start[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--loss-tasks", type=int, default=256, help="tasks timed for the losses (scaled to 1033)")
    parser.add_argument("--generation-tasks", type=int, default=8)
    args = parser.parse_args()
    scale = get_scale(args.scale)
    tok = ensure_tokenizer("smoke")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    print(f"scale {scale.name}: {scale.train.global_batch_size} x {scale.train.seq_len} tokens per step, "
          f"{threads} threads; wall and CPU seconds (CPU / threads = the time on free cores)", flush=True)  # fmt: skip
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for i, steps in enumerate((2, 2 + args.steps)):
            run = scale.override({"train.max_steps": steps, "train.checkpoint_every": 10**9})
            start = clock()
            result = train(TrainRun(run, output_dir=Path(tmp) / str(i), data="synthetic", resume=False, progress=False))
            times.append(since(start))
    # the difference of a 2-step and a (2 + steps)-step run leaves out start-up and the first steps
    rows["training step"] = tuple((b - a) / args.steps for a, b in zip(*times, strict=True))
    print(
        f"{'training step':<40} wall {rows['training step'][0]:8.3f}  cpu {rows['training step'][1]:8.3f}", flush=True
    )
    model = result.model.eval()
    tasks = [t for t in (ex.fit_task(t, tok, ex.window(scale)) for t in single_line_tasks()) if t is not None]
    timed = tasks[:: max(1, len(tasks) // args.loss_tasks)][: args.loss_tasks]
    start = clock()
    for mode in ("psm", "spm"):
        middle_losses(model, tok, timed, mode, scale.eval.batch_size)
    rows["middle losses, per task x 2 formats"] = tuple(x / len(timed) for x in since(start))
    config = replace(scale.eval, max_new_tokens=48)
    chosen = tasks[:: len(tasks) // args.generation_tasks][: args.generation_tasks]
    start = clock()
    for mode in ("psm", "spm"):
        evaluate_infilling(model, tok, chosen, mode, config, execute=False, progress=False)
    rows["greedy infilling, per task x 2 formats"] = tuple(x / len(chosen) for x in since(start))
    for name, (wall, cpu) in rows.items():
        print(f"{name:<40} wall {wall:8.3f}  cpu {cpu:8.3f}", flush=True)
    print(f"fitted tasks: {len(tasks)}; losses of all of them cost "
          f"{rows['middle losses, per task x 2 formats'][1] * len(tasks) / rows['training step'][1]:.1f} "
          "training steps (CPU time)")  # fmt: skip


if __name__ == "__main__":
    main()
