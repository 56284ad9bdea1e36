"""Looking inside the model (notebook 04_model): linear RoPE scaling past the training length (§3.6), the
attention backends' time and memory, and the stage's numbers beside Table 2."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch

from dslib import paper
from dslib.artifacts import save_figure
from dslib.config import ModelConfig
from dslib.model import ATTENTION, count_parameters, rope_inv_freq
from dslib.results import result_row


def rope_scaling_reach(config: ModelConfig, factor: int = 4) -> dict:
    """How far RoPE's channel pairs turn at ``factor`` × the training window (``max_position_embeddings //
    factor``), with ``config``'s linear scaling and without it (§3.6).

    Returns ``train_len``, the ``inv_freq`` of each variant, ``slow`` (the pairs that turn less than a full circle
    in training), ``beyond`` (each variant's largest angle at ``factor`` × the window, over the largest seen in
    training) and ``pair``, a channel pair that turns a quarter circle within the window.
    """
    unscaled = dataclasses.replace(config, rope_scaling=None)
    train_len = config.max_position_embeddings // factor
    inv_freq = {"no scaling": rope_inv_freq(unscaled), f"linear x{factor}": rope_inv_freq(config)}
    slow = inv_freq["no scaling"] * train_len < 2 * math.pi
    trained_max = train_len * inv_freq["no scaling"][slow]
    beyond = {k: (factor * train_len * f[slow] / trained_max).max().item() for k, f in inv_freq.items()}
    pair = int((train_len * inv_freq["no scaling"] - math.pi / 2).abs().argmin())
    return {
        "train_len": train_len,
        "factor": factor,
        "inv_freq": inv_freq,
        "slow": slow,
        "beyond": beyond,
        "pair": pair,
    }


def plot_rope_scaling(reach: dict, path: str | Path | None = None):
    """The slowest channel pair's angle and one pair's cosine against position, with and without linear
    scaling (:func:`rope_scaling_reach`), the training window marked; returns the figure."""
    import matplotlib.pyplot as plt  # the plotting stack loads only where a figure is drawn

    train_len, inv_freq, pair = reach["train_len"], reach["inv_freq"], reach["pair"]
    positions = torch.arange(0, reach["factor"] * train_len + 1, 32).float()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for label, f in inv_freq.items():
        axes[0].plot(positions, positions * f[-1], label=label)
        axes[1].plot(positions, torch.cos(positions * f[pair]), label=label)
    unscaled = inv_freq["no scaling"]
    axes[0].axhline(train_len * unscaled[-1], color="grey", ls=":", label="largest angle in training")
    axes[1].axhspan(math.cos(train_len * unscaled[pair]), 1, color="grey", alpha=0.2, label="seen in training")
    for ax in axes:
        ax.axvline(train_len, color="grey", ls="--")
        ax.set_xlabel("position")
        ax.legend()
    axes[0].set(ylabel="angle (radians)", title="slowest channel pair")
    axes[1].set(ylabel="cos(angle)", title=f"channel pair {pair}")
    save_figure(fig, path, 120)
    return fig


def profile_attention(
    backend: str,
    seq_len: int,
    config: ModelConfig,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
) -> dict:
    """Forward + backward of one causal attention call shaped like ``config``'s: best time and memory.

    ``saved_mib`` is what autograd keeps for the backward pass (eager attention keeps the T × T
    probabilities; the fused kernels keep O(T) statistics), counted exactly on any device; on CUDA
    ``peak_mib`` adds the allocator's peak over the call.
    """
    shape = (batch_size, config.num_attention_heads, seq_len, config.head_dim)
    kv_shape = (batch_size, config.num_key_value_heads, seq_len, config.head_dim)
    q = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    k, v = (torch.randn(kv_shape, device=device, dtype=dtype, requires_grad=True) for _ in "kv")
    cuda = torch.device(device).type == "cuda"
    saved: dict[int, int] = {}
    inputs = {x.untyped_storage().data_ptr() for x in (q, k, v)}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in inputs:  # the inputs (and views of them) exist anyway
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    times, peak = [], None
    for _ in range(repeats + 1):  # the first call warms up and is not timed
        saved.clear()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = ATTENTION[backend](q, k, v, None)
        out.sum().backward()
        if cuda:
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - before) / 2**20
        times.append(time.perf_counter() - start)
        q.grad = k.grad = v.grad = None
    return {
        "backend": backend,
        "seq_len": seq_len,
        "ms": min(times[1:]) * 1e3,
        "saved_mib": sum(saved.values()) / 2**20,
        "peak_mib": peak,
    }


def plot_attention_profiles(profiles: list[dict], device: str, path: str | Path | None = None):
    """Time and memory kept for backward of each backend against sequence length (:func:`profile_attention`
    rows), on log-log axes; returns the figure."""
    import matplotlib.pyplot as plt  # the plotting stack loads only where a figure is drawn

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for backend in dict.fromkeys(p["backend"] for p in profiles):
        mine = [p for p in profiles if p["backend"] == backend]
        axes[0].loglog([p["seq_len"] for p in mine], [p["ms"] for p in mine], "o-", label=backend, base=2)
        axes[1].loglog([p["seq_len"] for p in mine], [p["saved_mib"] for p in mine], "o-", label=backend, base=2)
    axes[0].set(xlabel="sequence length", ylabel="forward + backward (ms)", title=f"time ({device})")
    axes[1].set(xlabel="sequence length", ylabel="MiB kept for backward", title="memory")
    axes[0].legend()
    save_figure(fig, path, 120)
    return fig


def result_rows(scale: str, backend_diff: float, hf_diff: float, profiles: list[dict], device: str) -> list[dict]:
    """The model's numbers beside the paper's: each released preset's parameter count beside Table 2, the
    largest logit difference eager vs SDPA and vs ``transformers``, and eager's / SDPA's memory kept for backward
    at the longest profiled length."""
    rows = [
        result_row(
            f"parameters, {name}",
            count_parameters(ModelConfig.from_preset(name)),
            paper.TABLE2.get(name, "parameters"),
            "[P] Table 2; released config.json",
            "built on the meta device",
        )
        for name in paper.TABLE2.rows
    ]
    longest = max(p["seq_len"] for p in profiles)
    saved = {p["backend"]: p["saved_mib"] for p in profiles if p["seq_len"] == longest}
    return rows + [
        result_row("max |logits| eager vs SDPA (fp32)", backend_diff, note=f"{scale} model"),
        result_row(
            "max |logits| vs transformers LlamaForCausalLM (fp32)",
            hf_diff,
            note="to_hf, then AutoModelForCausalLM.from_pretrained",
        ),
        result_row(
            f"attention memory kept for backward at T={longest}, eager / SDPA",
            saved["eager"] / saved["sdpa"],
            note=device,
        ),
    ]
