"""What a training run reports: the per-step JSONL metrics, model FLOPs utilisation, and plots of both.

MFU counts 6N + 12·L·H·Q·T training FLOPs per token (PaLM, Chowdhery et al. 2022, Appendix B) against the
device's dense bf16 peak; it is reported on CUDA devices only.
"""

from __future__ import annotations

import json
from pathlib import Path

from dslib.config import ModelConfig

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
