"""What a training run reports: the per-step JSONL metrics, model FLOPs utilisation, plots, and result rows.

MFU counts 6N + 12·L·H·Q·T training FLOPs per token (PaLM, Chowdhery et al. 2022, Appendix B) against the
device's dense bf16 peak; it is reported on CUDA devices only.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from dslib import paper
from dslib.artifacts import save_figure
from dslib.config import ModelConfig, Scale
from dslib.results import result_row
from dslib.training.schedule import learning_rate, milestone_steps

METRICS_FILE = "metrics.jsonl"

# Dense bf16 tensor-core peaks from the vendors' data sheets (FLOP/s), matched on the device name in order.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "L4": 121e12,
}


def peak_flops(device_name: str) -> float | None:
    """The bf16 peak of a CUDA device, matched on its name; None when unknown (MFU is then not reported)."""
    for key, value in PEAK_BF16_FLOPS.items():
        if key in device_name:
            return value
    return None


def flops_per_token(config: ModelConfig, seq_len: int, num_params: int) -> float:
    """Training FLOPs per token, 6N + 12·L·H·Q·T, with N the parameters less the input embedding (a lookup,
    not a matmul; the output head counts), L layers, H heads, Q head size, T the sequence length."""
    n = num_params - config.vocab_size * config.hidden_size
    return 6 * n + 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim * seq_len


def read_metrics(path: str | Path) -> list[dict]:
    """The JSONL metrics of a run (its folder or the file itself), one dict per step."""
    path = Path(path)
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
    """The run's ``metrics.jsonl``: rows up to the resumed step are kept (a pre-empted run may have logged
    steps past its last checkpoint, which the resumed run repeats), then one row is appended per step."""

    def __init__(self, directory: Path, resumed_step: int, write: bool):
        self.path, self.write = Path(directory) / METRICS_FILE, write
        self.rows = [m for m in read_metrics(self.path) if m["step"] <= resumed_step] if resumed_step else []
        if write:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
            tmp.replace(self.path)

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if self.write:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def plot_metrics(metrics: list[dict], axes=None, label: str | None = None):
    """Loss and learning rate against tokens seen, on two axes side by side; returns the axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    kept = [m for m in metrics if m["loss"] is not None]  # skipped (non-finite) steps have no loss
    axes[0].plot([m["tokens"] for m in kept], [m["loss"] for m in kept], label=label)
    axes[0].set_xlabel("tokens seen")
    axes[0].set_ylabel("training loss (nats/token)")
    axes[1].plot([m["tokens"] for m in metrics], [m["lr"] for m in metrics], label=label)
    axes[1].set_xlabel("tokens seen")
    axes[1].set_ylabel("learning rate")
    return axes


def plot_stages(pretrain: list[dict], long_context: list[dict], path: str | Path | None = None):
    """Both stages' loss and learning rate against tokens seen, the long-context stage (§3.6) continuing where
    pretraining (§3.4) stopped; returns the axes."""
    axes = plot_metrics(pretrain, label="pretraining (§3.4)")
    offset = pretrain[-1]["tokens"] if pretrain else 0
    plot_metrics([{**m, "tokens": m["tokens"] + offset} for m in long_context], axes, label="long context (§3.6)")
    axes[0].legend()
    save_figure(axes[0].figure, path)
    return axes


def throughput(metrics: list[dict]) -> tuple[float, float | None]:
    """Median tokens/s and MFU (``None`` off CUDA) of a run, leaving out its first fifth (allocation, warm-up)."""
    steady = metrics[len(metrics) // 5 :]
    mfu = statistics.median(m["mfu"] for m in steady) if "mfu" in steady[0] else None
    return statistics.median(m["tokens_per_s"] for m in steady), mfu


def result_rows(scale: Scale, pretrain: list[dict], long_context: list[dict], resumed_exactly: bool) -> list[dict]:
    """Pretraining's numbers beside the paper's (§3.4–3.6): tokens of both stages, the final loss, the learning
    rate after each drop, the long-context RoPE settings, throughput, and whether a resumed run repeated the
    uninterrupted loss curve bitwise."""
    tc, lc = scale.train, scale.long_context
    drops = " / ".join(f"{learning_rate(step, tc) / tc.lr:.4f}" for step in milestone_steps(tc))
    tokens_per_s, mfu = throughput(pretrain)
    return [
        result_row(
            "pretraining tokens (both stages)",
            pretrain[-1]["tokens"] + long_context[-1]["tokens"],
            paper.PRETRAINING["tokens"],
            "§1, §3.6",
            f"{scale.name} preset",
        ),
        result_row(
            "final training loss (nats/token)",
            round(pretrain[-1]["loss"], 4),
            None,
            "§3.4",
            "pretraining stage, packed FIM stream",
        ),
        result_row("lr after the 80% / 90% drops (× peak)", drops, "0.3162 / 0.1000", "§3.4; DeepSeek LLM §2.3"),
        result_row(
            "long-context RoPE (theta, linear factor)", f"{lc.rope_theta:g}, {lc.rope_factor:g}", "100000, 4", "§3.6"
        ),
        result_row(
            "training throughput (tokens/s)",
            round(tokens_per_s),
            None,
            "benchmarks/train.py",
            f"MFU {mfu:.1%}" if mfu is not None else "CPU",
        ),
        result_row("resumed run reproduces the loss curve bitwise", resumed_exactly, None, "dslib.training.checkpoint"),
    ]
