"""Sizing the FIM ablation's grid (DeepSeek-Coder §3.1.2): the CPU seconds of one training step of the scale's
model (its batch, in micro-batches, random tokens), of the middle losses of one single-line task in both prompt
formats, and of greedy infilling of one task in both formats, in the same run, so that the grid's steps, seeds
and settings can be chosen to fit a time budget (``dslib.ablation.fim.grid_hours``). CPU time, on one thread,
does not grow when other jobs share the cores; the ratios carry over to free cores.

    python benchmarks/fim_ablation_sizing.py [--scale cpu] [--steps 5] [--loss-tasks 64] [--generation-tasks 8]

The tasks are encoded with the ``smoke`` tokenizer (the scale's own needs its corpus built); every task is cut
to the scale's window either way, so the forward passes have the evaluation's shapes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from dslib.ablation import fim as ex
from dslib.config import get_scale
from dslib.eval.infilling import evaluate_infilling, single_line_tasks
from dslib.eval.likelihood import middle_losses
from dslib.model import Transformer
from dslib.tokenizer import ensure_tokenizer
from dslib.training.parallel import autocast


def cpu_seconds(fn, repeats: int) -> float:
    """This process's CPU seconds per call of ``fn`` (after one warm-up call): unlike wall time, it does not grow
    when other jobs share the cores."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--loss-tasks", type=int, default=64, help="tasks timed for the losses")
    parser.add_argument("--generation-tasks", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="1: CPU time is then the time on one free core")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scale = get_scale(args.scale)
    tok = ensure_tokenizer("smoke")
    torch.manual_seed(0)
    model = Transformer(scale.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train = scale.train
    batch = torch.randint(0, scale.model.vocab_size, (train.micro_batch_size, train.seq_len + 1))

    def step():  # one optimizer step of the scale's batch, in micro-batches, as dslib.train runs it
        for _ in range(train.global_batch_size // train.micro_batch_size):
            with autocast(torch.device("cpu")):
                logits = model(batch[:, :-1])
            F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step_s = cpu_seconds(step, args.steps)
    model.eval()
    tasks = [t for t in (ex.fit_task(t, tok, ex.window(scale)) for t in single_line_tasks()) if t is not None]
    timed = tasks[:: len(tasks) // args.loss_tasks][: args.loss_tasks]
    loss_s = cpu_seconds(
        lambda: [middle_losses(model, tok, timed, m, scale.eval.batch_size) for m in ("psm", "spm")], 1
    )
    chosen = tasks[:: len(tasks) // args.generation_tasks][: args.generation_tasks]
    config = replace(scale.eval, max_new_tokens=32)

    def generate():
        for mode in ("psm", "spm"):
            evaluate_infilling(model, tok, chosen, mode, config, execute=False, progress=False)

    generation_s = cpu_seconds(generate, 1)
    rows = [
        ("training step (CPU s)", step_s),
        ("middle losses, one task x 2 formats (CPU s)", loss_s / len(timed)),
        ("greedy infilling (32 tokens), one task x 2 formats (CPU s)", generation_s / len(chosen)),
        ("middle losses of 1033 tasks x 2 formats / training step", loss_s / len(timed) * 1033 / step_s),
    ]
    print(f"scale {scale.name}: {train.global_batch_size} x {train.seq_len} tokens per step, {args.threads} thread(s)")
    for name, value in rows:
        print(f"{name:<62} {value:9.4f}")


if __name__ == "__main__":
    main()
