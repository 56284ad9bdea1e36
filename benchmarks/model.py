"""Speed of dslib's DeepSeek-Coder model against transformers' LlamaForCausalLM (issue 6), same weights, same run.

1. Training step (forward + backward + cross-entropy) time, ours / transformers: target ratio <= 1.0.
2. Greedy generation tokens/s with a KV cache, ours against ``transformers``' ``generate`` (outputs must agree).
3. On CUDA only: bf16 training MFU of a 1.3B-shaped model (DeepSeek-Coder-1.3B, Table 2) at sequence length
   4096, FlashAttention-2 against SDPA. FLOPs per token are 6N + 12·L·H·Q·T (Chowdhery et al. 2022, App. B),
   N the parameters less the input embedding (a lookup, no FLOPs), as ``dslib.train`` counts them.

    python benchmarks/model.py [--quick] [--preset cpu] [--threads 1] [--record]

``--record`` writes the tables into ``benchmarks/RESULTS.md`` (its ``model`` section).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from dslib.config import SCALES, get_scale
from dslib.generate import generate
from dslib.model import ModelConfig, Transformer, count_parameters, flash_attn_func, to_hf
from dslib.training.metrics import flops_per_token, peak_flops


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(model, ids: torch.Tensor, hf: bool) -> float:
    """Seconds for one forward + backward of the next-token loss."""
    sync(ids.device)
    start = time.perf_counter()
    out = model(ids[:, :-1])
    logits = out.logits if hf else out
    F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten()).backward()
    model.zero_grad(set_to_none=True)
    sync(ids.device)
    return time.perf_counter() - start


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn so that a noisy neighbour slows them alike."""
    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(fn())
    return {name: statistics.median(t) for name, t in times.items()}


def hf_twin(model: Transformer, attn_implementation: str = "sdpa"):
    """transformers' LlamaForCausalLM with ``model``'s weights, through a to_hf checkpoint."""
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        to_hf(model, tmp)
        twin = AutoModelForCausalLM.from_pretrained(tmp, attn_implementation=attn_implementation)
    weight = next(model.parameters())
    return twin.to(device=weight.device, dtype=weight.dtype)


@torch.no_grad()
def hf_greedy(model, prompts: torch.Tensor, new: int) -> list[list[int]]:
    """``transformers``' greedy ``generate`` for exactly ``new`` tokens per prompt, the prompt cut off."""
    out = model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=0,
    )
    return out[:, prompts.shape[1] :].tolist()


def cpu_tables(preset: str, quick: bool) -> list[str]:
    config = get_scale(preset).model if preset in SCALES else ModelConfig.from_preset(preset)
    torch.manual_seed(0)
    ours = Transformer(config)
    theirs = hf_twin(ours)
    batch, seq = (2, 128) if quick else (4, 256)
    ids = torch.randint(0, config.vocab_size, (batch, seq + 1))
    t = interleaved(
        {"dslib": lambda: train_step(ours, ids, False), "transformers": lambda: train_step(theirs, ids, True)},
        repeats=3 if quick else 7,
    )
    rows = [
        f"### Training step on CPU ({torch.get_num_threads()} threads), preset `{preset}`, batch {batch} × {seq}",
        "",
        "| implementation | forward + backward (ms) | tokens/s |",
        "|---|---|---|",
        *(f"| {name} | {s * 1e3:.1f} | {batch * seq / s:,.0f} |" for name, s in t.items()),
        "",
        f"**Ratio dslib / transformers: {t['dslib'] / t['transformers']:.2f}** (target <= 1.0)",
        "",
    ]

    ours.eval()
    theirs.eval()
    prompts, new = torch.randint(3, config.vocab_size, (4, 32)), 16 if quick else 64
    outputs = {}

    def ours_generate():
        start = time.perf_counter()
        outputs["dslib"] = generate(ours, prompts, new, stop=())
        return time.perf_counter() - start

    def hf_generate():
        start = time.perf_counter()
        outputs["transformers"] = hf_greedy(theirs, prompts, new)
        return time.perf_counter() - start

    g = interleaved({"dslib": ours_generate, "transformers": hf_generate}, repeats=2 if quick else 5)
    same = outputs["dslib"] == outputs["transformers"]
    rows += [
        f"### Greedy generation on CPU, batch {len(prompts)}, prompt {prompts.shape[1]}, {new} new tokens",
        "",
        "| implementation | tokens/s |",
        "|---|---|",
        *(f"| {name} | {len(prompts) * new / s:,.0f} |" for name, s in g.items()),
        "",
        f"**Speed-up dslib / transformers: {g['transformers'] / g['dslib']:.2f}×**; identical tokens: {same}",
        "",
    ]
    return rows


def gpu_tables(quick: bool, base: ModelConfig | None = None, seq: int = 4096, batch: int = 1) -> list[str]:
    """bf16 MFU of a 1.3B-shaped model at sequence length 4096, per attention backend (CUDA only)."""
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = peak_flops(name)
    if base is None:  # 1.3B as pretrained (§3.4): rope_theta 10000, no scaling
        base = replace(ModelConfig.from_preset("deepseek-coder-1.3b"), rope_theta=10_000.0, rope_scaling=None)
        base = replace(base, num_hidden_layers=4) if quick else base
    backends = (["flash"] if flash_attn_func is not None else []) + (["sdpa"] if quick else ["sdpa", "eager"])
    runs = [(f"dslib {b}", replace(base, attn_implementation=b), False) for b in backends]
    runs.append(("transformers sdpa", base, True))
    ids = torch.randint(0, base.vocab_size, (batch, seq + 1), device=device)
    rows = [
        f"### bf16 training step on {name}: DeepSeek-Coder-1.3B shape ({base.num_hidden_layers} layers), "
        f"batch {batch} × {seq}",
        "",
        "| implementation | step (ms) | tokens/s | MFU | peak memory (GiB) |",
        "|---|---|---|---|---|",
    ]
    for label, config, is_hf in runs:
        torch.manual_seed(0)
        with torch.device(device):
            model = Transformer(config).to(torch.bfloat16)
        if is_hf:
            model = hf_twin(model, "sdpa")
        torch.cuda.reset_peak_memory_stats()
        s = interleaved({label: lambda m=model, h=is_hf: train_step(m, ids, h)}, repeats=3 if quick else 10)[label]
        tokens = batch * seq / s
        flops = tokens * flops_per_token(config, seq, count_parameters(config))
        mfu = f"{flops / peak:.1%}" if peak else "n/a (unknown peak)"
        memory = torch.cuda.max_memory_allocated() / 2**30
        rows.append(f"| {label} | {s * 1e3:.1f} | {tokens:,.0f} | {mfu} | {memory:.1f} |")
        del model
        torch.cuda.empty_cache()
    if flash_attn_func is None:
        rows += ["", "flash-attn is not installed here (`pip install dslib[gpu]`), so it has no row."]
    return [*rows, ""]


RESULTS = Path(__file__).with_name("RESULTS.md")


def record(lines: list[str], path: Path = RESULTS) -> None:
    """Replace (or add) this benchmark's section of RESULTS.md, leaving the other benchmarks' sections alone."""
    begin, end = "<!-- benchmarks/model.py:begin -->", "<!-- benchmarks/model.py:end -->"
    section = "\n".join([begin, "## Model (`benchmarks/model.py`)", "", *lines, end])
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--preset", default="cpu", help="model preset for the CPU comparison (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--record", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = cpu_tables(args.preset, args.quick)
    if torch.cuda.is_available():
        lines += gpu_tables(args.quick)
    else:
        lines.append("(No CUDA device: the bf16 MFU section runs on a GPU machine.)")
    print("\n".join(lines))
    if args.record:
        record(lines)


if __name__ == "__main__":
    main()
