"""An experiment's curves: each metric against training steps, one line per setting."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt

from dslib.ablation.grid import Experiment


def plot_curves(experiment: Experiment, results: Mapping, path: str | Path, title: str | None = None):
    """One panel per metric evaluated, one line per setting (the paper's settings solid, the others dashed,
    reseeded controls dotted grey), saved to ``path``; returns the figure."""
    runs = results["settings"]
    metrics = [m for m in experiment.metrics if any(m in e for run in runs.values() for e in run["evals"])]
    columns = 3
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
    colours = [c for k, c in enumerate(plt.get_cmap("tab10").colors) if k != 7]  # tab10's grey marks the controls
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for k, (name, run) in enumerate(runs.items()):
            points = [(e["step"], e[metric]) for e in run["evals"] if metric in e]
            setting = experiment.settings.get(name)
            if setting is not None and setting.control_of:
                style = {"ls": ":", "color": "grey"}
            else:
                style = {
                    "ls": "-" if setting is not None and setting.paper else "--",
                    "color": colours[k % len(colours)],
                }
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=name, **style)
        ax.set_xlabel("training step")
        ax.set_title(experiment.metrics[metric].description, fontsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    spare = list(axes.flat)[len(metrics) :]
    for ax in spare:
        ax.axis("off")
    if spare:
        spare[0].legend(handles, labels, loc="center", fontsize=9)
    else:
        fig.legend(handles, labels, loc="center right", fontsize=9)
    fig.suptitle(title or f"{experiment.title} at scale {results['scale']}")
    fig.tight_layout(rect=(0, 0, 1 if spare else 0.88, 1))
    fig.savefig(path, dpi=120)
    return fig
