"""Training throughput (DeepSeek-Coder §3.4): tokens per second of ``dslib.train.train`` against a plain loop over
``transformers``' ``LlamaForCausalLM`` with the same config, the same initial weights, the same data
(:class:`dslib.train.SyntheticStream`), the same AdamW groups, schedule, accumulation and clipping, in the same
run. The two alternate in rounds so that load from other jobs falls on both; per-step medians skip the first
steps (warm-up, allocation). Both sides must report the same first-step loss, or the comparison is void.

    python benchmarks/train.py [--quick] [--scale cpu] [--steps 8] [--rounds 2]

On a GPU it also reports the ``gpu`` preset's MFU (6N + 12·L·H·Q·T FLOPs per token over the card's bf16
peak; target ≥ 45% on an H100) and peak memory, for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from dslib.config import get_scale
from dslib.model import Transformer, config_to_hf
from dslib.train import SyntheticStream, TrainRun, build_optimizer, flops_per_token, peak_flops, train
from dslib.training.schedule import learning_rate

WARMUP = 2  # steps left out of the medians


def ours(scale, steps: int) -> tuple[list[float], list[float], float | None]:
    """Per-step tokens/s, losses and peak memory (GiB, CUDA) of dslib's training loop."""
    scale = scale.override({"train.max_steps": steps, "train.checkpoint_every": 10**9})
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(TrainRun(scale, output_dir=Path(tmp), data="synthetic", resume=False, progress=False))
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return [m["tokens_per_s"] for m in result.metrics], [m["loss"] for m in result.metrics], memory


def reference(scale, steps: int) -> tuple[list[float], list[float], float | None]:
    """The same training done by a hand loop over ``transformers.LlamaForCausalLM``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tc = scale.train
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = replace(scale.model, initializer_range=tc.init_std)
    torch.manual_seed(tc.seed)  # dslib.train's initial weights, copied into the HF model
    with torch.device(device):
        weights = Transformer(config).state_dict()
    hf_config = LlamaConfig(**{k: v for k, v in config_to_hf(config).items() if k not in ("architectures",)})
    hf_config._attn_implementation = "sdpa"
    with torch.device(device):
        model = LlamaForCausalLM(hf_config)
    model.load_state_dict(weights)
    optimizer = build_optimizer(model, tc)
    stream = iter(
        SyntheticStream(
            tc.seq_len, config.vocab_size, config.eos_token_id, batch_size=tc.micro_batch_size, seed=tc.seed
        )
    )
    accum = tc.global_batch_size // tc.micro_batch_size
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    speeds, losses = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, tc)
        total = 0.0
        for _ in range(accum):
            batch = next(stream).to(device)
            with autocast:
                logits = model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten()) / accum
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        speeds.append(tc.tokens_per_step / (time.perf_counter() - t0))
        losses.append(total)
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return speeds, losses, memory


def compare(scale, steps: int, rounds: int) -> dict:
    ours_speed, ref_speed, first = [], [], None
    for _ in range(rounds):
        speed, losses, ours_mem = ours(scale, steps)
        ours_speed += speed[WARMUP:]
        ref, ref_losses, ref_mem = reference(scale, steps)
        ref_speed += ref[WARMUP:]
        first = (losses[0], ref_losses[0])
    if abs(first[0] - first[1]) > 1e-3 * abs(first[1]):
        raise RuntimeError(
            f"first-step losses differ (dslib {first[0]:.5f}, transformers {first[1]:.5f}): not the same run"
        )
    a, b = statistics.median(ours_speed), statistics.median(ref_speed)
    return {"ours": a, "reference": b, "ratio": a / b, "first_loss": first, "memory": (ours_mem, ref_mem)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and one round")
    parser.add_argument("--scale", default="cpu", help="whose model and batch shape to train (default: cpu)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    steps = args.steps or (4 if args.quick else 8)
    rounds = args.rounds or (1 if args.quick else 2)

    scale = get_scale(args.scale).override({"train.compile": False})  # compile time would swamp a short CPU run
    if torch.cuda.is_available():
        scale = get_scale(args.scale)
    tc, mc = scale.train, scale.model
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device}; torch {torch.__version__}")
    print(
        f"model: {args.scale} preset (hidden {mc.hidden_size}, {mc.num_hidden_layers} layers, vocab {mc.vocab_size}); "
        f"batch {tc.global_batch_size} × {tc.seq_len} tokens in micro-batches of {tc.micro_batch_size}; "
        f"{steps} steps × {rounds} rounds, medians after {WARMUP} warm-up steps"
    )
    r = compare(scale, steps, rounds)
    print()
    print("| loop | tokens/s | first-step loss |")
    print("|---|---|---|")
    print(f"| dslib.train | {r['ours']:,.0f} | {r['first_loss'][0]:.5f} |")
    print(f"| transformers LlamaForCausalLM loop | {r['reference']:,.0f} | {r['first_loss'][1]:.5f} |")
    print(f"\nratio dslib / transformers: {r['ratio']:.2f} (higher is better)")

    if torch.cuda.is_available():
        gpu = get_scale("gpu")
        speed, _, memory = ours(gpu, steps + 8)
        with torch.device("meta"):
            n = Transformer(gpu.model).num_parameters()
        tokens_per_s = statistics.median(speed[WARMUP + 4 :])  # compile warm-up takes a few steps
        peak = peak_flops(torch.cuda.get_device_name())
        flops = flops_per_token(gpu.model, gpu.train.seq_len, n)
        mfu = f"{flops * tokens_per_s / peak:.1%}" if peak else "unknown peak"
        print(
            f"\ngpu preset ({n / 1e6:.0f}M parameters, seq {gpu.train.seq_len}, micro-batch "
            f"{gpu.train.micro_batch_size}, bf16, compile={gpu.train.compile}): {tokens_per_s:,.0f} tokens/s, "
            f"MFU {mfu} (target ≥ 45% on an H100), peak memory {memory:.1f} GiB"
        )


if __name__ == "__main__":
    main()
