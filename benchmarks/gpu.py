"""GPU checks of the model (DeepSeek-Coder §3.3, §3.6) that a CPU cannot make: kernel parity in bf16 and
long-context memory. Speed and MFU are ``benchmarks/model.py`` and ``benchmarks/train.py``'s job.

1. Attention parity: each CUDA kernel dslib can reach (SDPA's flash, memory-efficient and math back-ends, and
   flash-attn when installed), bf16, outputs and gradients against eager attention in fp32, for a multi-head
   (1.3B/6.7B) and a grouped-query (33B: 56 query heads share 8 key/value heads) shape.
2. Model parity: dslib's ``Transformer`` against ``transformers``' ``LlamaForCausalLM`` on the same weights
   (via ``to_hf``), on CUDA, in fp32 and bf16, DeepSeek-Coder-1.3B's shape with fewer layers.
3. Long-context memory (§3.6 trains at 16K tokens): what one attention call keeps for backward, eager against
   SDPA, and the peak memory of a whole 1.3B-shaped forward + backward at 16K tokens.

    python benchmarks/gpu.py [--layers 2]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from dslib.model import (
    ModelConfig,
    Transformer,
    eager_attention,
    flash_attention,
    flash_attn_func,
    sdpa_attention,
)
from dslib.model_analysis import profile_attention

DEVICE = "cuda"


@functools.cache
def benchmark_model():
    """benchmarks/model.py, a script beside this one (so loaded by path): its transformers twin and generate."""
    spec = importlib.util.spec_from_file_location("benchmark_model", Path(__file__).with_name("model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hf_twin(model: Transformer):
    """``LlamaForCausalLM`` with ``model``'s weights (SDPA attention)."""
    return benchmark_model().hf_twin(model, "sdpa")


def kernels() -> dict:
    """Each attention route on CUDA: a name and a function of (q, k, v) in dslib's [B, H, T, D] layout."""
    routes = {}
    for name, backend in (
        ("SDPA flash", SDPBackend.FLASH_ATTENTION),
        ("SDPA memory-efficient", SDPBackend.EFFICIENT_ATTENTION),
        ("SDPA math", SDPBackend.MATH),
    ):
        routes[name] = lambda q, k, v, b=backend: _with_backend(b, q, k, v)
    if flash_attn_func is not None:
        routes["flash-attn"] = lambda q, k, v: flash_attention(q, k, v, None)
    return routes


def _with_backend(backend, q, k, v):
    with sdpa_kernel(backend):
        return sdpa_attention(q, k, v, None)


def attention_parity(seq: int = 2048) -> list[str]:
    rows = [
        f"### Attention parity, bf16 against eager fp32, causal, T = {seq}",
        "",
        "| shape | kernel | max \\|out\\| error | max \\|dq\\| error | max \\|dk\\| error | ms (fwd+bwd) |",
        "|---|---|---|---|---|---|",
    ]
    for label, heads, kv_heads, dim in (("1.3B (16 heads)", 16, 16, 128), ("33B GQA (56 → 8)", 56, 8, 128)):
        torch.manual_seed(0)
        q = torch.randn(1, heads, seq, dim, device=DEVICE)
        k, v = (torch.randn(1, kv_heads, seq, dim, device=DEVICE) for _ in "kv")
        ref_inputs = [x.clone().requires_grad_() for x in (q, k, v)]
        ref = eager_attention(*ref_inputs, None)
        grad = torch.randn_like(ref)
        ref.backward(grad)
        for name, fn in kernels().items():
            inputs = [x.to(torch.bfloat16).requires_grad_() for x in (q, k, v)]
            try:
                torch.cuda.synchronize()
                start = time.perf_counter()
                out = fn(*inputs)
                out.backward(grad.to(torch.bfloat16))
                torch.cuda.synchronize()
                ms = (time.perf_counter() - start) * 1e3
            except RuntimeError as err:  # a kernel that does not take this shape says so
                rows.append(f"| {label} | {name} | not available: {str(err).splitlines()[0][:80]} | | | |")
                continue
            errs = [
                (a.float() - b).abs().max().item()
                for a, b in ((out, ref), (inputs[0].grad, ref_inputs[0].grad), (inputs[1].grad, ref_inputs[1].grad))
            ]
            rows.append(f"| {label} | {name} | {errs[0]:.2e} | {errs[1]:.2e} | {errs[2]:.2e} | {ms:.1f} |")
    if flash_attn_func is None:
        rows += [
            "",
            "flash-attn is not installed on this machine, so it has no row; SDPA's flash back-end is "
            "FlashAttention-2 as built into PyTorch.",
        ]
    return [*rows, ""]


def model_parity(layers: int) -> list[str]:
    """fp32 logits must agree to rounding; in bf16 each side is measured against the fp32 logits, so that dslib's
    bf16 error can be set beside transformers' own."""
    config = replace(
        ModelConfig.from_preset("deepseek-coder-1.3b"), num_hidden_layers=layers, rope_theta=10_000.0, rope_scaling=None
    )
    ids = torch.randint(0, config.vocab_size, (2, 1024), device=DEVICE)
    torch.manual_seed(0)
    with torch.device(DEVICE):
        ours = Transformer(config).eval()
    theirs = hf_twin(ours).eval()
    with torch.no_grad():
        reference = theirs(ids).logits.float()
        logits = {"dslib fp32": ours(ids).float()}
        ours, theirs = ours.to(torch.bfloat16), theirs.to(torch.bfloat16)
        logits["dslib bf16"] = ours(ids).float()
        logits["transformers bf16"] = theirs(ids).logits.float()
    rows = [
        f"### Logits against transformers LlamaForCausalLM fp32 on {DEVICE}: 1.3B shape, {layers} layers, "
        f"batch 2 × 1024 (max |logit| {reference.abs().max().item():.3g})",
        "",
        "| model | max \\|logits difference\\| | mean \\|logits difference\\| |",
        "|---|---|---|",
    ]
    for name, x in logits.items():
        diff = (x - reference).abs()
        rows.append(f"| {name} | {diff.max().item():.3g} | {diff.mean().item():.3g} |")
    return [*rows, ""]


def generation(new: int = 128) -> list[str]:
    """Greedy decoding with dslib's KV cache on the GPU against ``transformers``' ``generate``: the same tokens in
    fp32 (2 layers, where rounding cannot flip an argmax), and the speed of the whole 1.3B shape in bf16."""
    from dslib.generate import generate

    rows = [
        f"### Greedy generation on {DEVICE}: batch 8, prompt 128, {new} new tokens",
        "",
        "| model | dtype | dslib tokens/s | transformers tokens/s | identical sequences |",
        "|---|---|---|---|---|",
    ]
    base = replace(ModelConfig.from_preset("deepseek-coder-1.3b"), rope_theta=10_000.0, rope_scaling=None)
    for layers, dtype in ((2, torch.float32), (base.num_hidden_layers, torch.bfloat16)):
        torch.manual_seed(0)
        with torch.device(DEVICE):
            ours = Transformer(replace(base, num_hidden_layers=layers)).to(dtype).eval()
        theirs = hf_twin(ours).eval()
        prompts = torch.randint(3, base.vocab_size, (8, 128), device=DEVICE)
        outputs, speed = {}, {}
        for name in ("dslib", "transformers", "dslib", "transformers"):  # the second pass is timed
            torch.cuda.synchronize()
            start = time.perf_counter()
            if name == "dslib":
                out = generate(ours, prompts, new, stop=())
            else:
                out = benchmark_model().hf_greedy(theirs, prompts, new)
            torch.cuda.synchronize()
            outputs[name], speed[name] = out, len(prompts) * new / (time.perf_counter() - start)
        same = sum(a == b for a, b in zip(outputs["dslib"], outputs["transformers"], strict=True))
        rows.append(
            f"| 1.3B shape, {layers} layers | {dtype} | {speed['dslib']:,.0f} | {speed['transformers']:,.0f} "
            f"| {same} of {len(prompts)} |"
        )
        del ours, theirs
        torch.cuda.empty_cache()
    return [*rows, ""]


def long_context(seq: int = 16_384) -> list[str]:
    config = replace(ModelConfig.from_preset("deepseek-coder-1.3b"), attn_implementation="sdpa")
    rows = [
        "### Long context (§3.6): one 1.3B-shaped attention call, bf16, forward + backward",
        "",
        "| T | backend | kept for backward (MiB) | allocator peak (MiB) | ms |",
        "|---|---|---|---|---|",
    ]
    for t in (4096, seq):
        for backend in ("eager", "sdpa"):
            r = profile_attention(backend, t, config, device=DEVICE, dtype=torch.bfloat16)
            rows.append(f"| {t} | {backend} | {r['saved_mib']:,.0f} | {r['peak_mib']:,.0f} | {r['ms']:.1f} |")
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = Transformer(config).to(torch.bfloat16)
    ids = torch.randint(0, config.vocab_size, (1, seq + 1), device=DEVICE)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    logits = model(ids[:, :-1])
    F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten()).backward()
    torch.cuda.synchronize()
    rows += [
        "",
        f"Whole DeepSeek-Coder-1.3B shape ({config.num_hidden_layers} layers), one sequence of {seq} tokens, "
        f"SDPA, no activation checkpointing: forward + backward {time.perf_counter() - start:.2f} s, "
        f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB (weights and gradients included).",
    ]
    return [*rows, ""]


SECTIONS = {"attention": attention_parity, "model": model_parity, "generation": generation, "long": long_context}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="layers of the model-parity check (default 2)")
    parser.add_argument("--only", default=None, help="comma-separated sections: " + ", ".join(SECTIONS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device")
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}\n")
    sections = {**SECTIONS, "model": lambda: model_parity(args.layers)}
    for name in args.only.split(",") if args.only else sections:
        section = sections[name]
        try:  # one failing section must not hide the others' figures
            print("\n".join(section()), flush=True)
        except Exception:
            traceback.print_exc()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
