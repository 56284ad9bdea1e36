"""An experiment's curves: each metric against training steps, one line per setting; or, when every run was
evaluated once, each metric by setting, one dot per seed."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dslib.ablation.grid import Experiment


def _base(experiment: Experiment, name: str) -> str:
    """The setting a run repeats with another seed, or the run's own name."""
    setting = experiment.settings.get(name)
    return setting.control_of if setting is not None and setting.control_of else name


def _plot_seeds(ax, experiment: Experiment, runs: Mapping, metric: str, colours: Sequence) -> None:
    """``metric`` by setting: a dot per seed, a bar at their mean (a grid evaluated once has no curve to draw)."""
    bases = list(dict.fromkeys(_base(experiment, n) for n in runs))
    for k, base in enumerate(bases):
        values = [e[metric] for n, run in runs.items() if _base(experiment, n) == base for e in run["evals"]]
        colour = colours[k % len(colours)]
        ax.scatter([k] * len(values), values, color=colour, s=18, zorder=3)
        if values:
            ax.hlines(float(np.mean(values)), k - 0.3, k + 0.3, color=colour)
    ax.set_xticks(range(len(bases)), bases, rotation=40, ha="right", fontsize=8)


def plot_curves(experiment: Experiment, results: Mapping, path: str | Path, title: str | None = None):
    """One panel per metric evaluated, one line per setting (the paper's settings solid, the others dashed,
    reseeded controls dotted, in their setting's colour), saved to ``path``; returns the figure. When every run
    was evaluated at one step only, each panel shows the metric by setting instead, a dot per seed and a bar at
    their mean."""
    runs = results["settings"]
    single = len({e["step"] for run in runs.values() for e in run["evals"]}) == 1
    metrics = [m for m in experiment.metrics if any(m in e for run in runs.values() for e in run["evals"])]
    columns = 3
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
    # tab10's grey is kept for a reseeded run whose own setting did not run; the others take their setting's colour.
    colours = [c for k, c in enumerate(plt.get_cmap("tab10").colors) if k != 7]
    colour_of = {name: colours[k % len(colours)] for k, name in enumerate(n for n in runs if _base(experiment, n) == n)}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        ax.set_title(textwrap.fill(experiment.metrics[metric].description, 48), fontsize=9)
        if single:
            _plot_seeds(ax, experiment, {n: r for n, r in runs.items() if any(metric in e for e in r["evals"])},
                        metric, colours)  # fmt: skip
            continue
        for name, run in runs.items():
            points = [(e["step"], e[metric]) for e in run["evals"] if metric in e]
            setting = experiment.settings.get(name)
            if setting is not None and setting.control_of:
                style = {"ls": ":", "color": colour_of.get(setting.control_of, "grey")}
            else:
                style = {"ls": "-" if setting is not None and setting.paper else "--", "color": colour_of[name]}
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=name, **style)
        ax.set_xlabel("training step")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    spare = list(axes.flat)[len(metrics) :]
    for ax in spare:
        ax.axis("off")
    if handles and spare:
        spare[0].legend(handles, labels, loc="center", fontsize=9)
    elif handles:
        fig.legend(handles, labels, loc="center right", fontsize=9)
    step = f", step {next(iter(runs.values()))['evals'][0]['step']}: a dot per seed" if single else ""
    fig.suptitle(title or f"{experiment.title} at scale {results['scale']}{step}")
    fig.tight_layout(rect=(0, 0, 1 if spare or not handles else 0.88, 1))
    fig.savefig(path, dpi=120)
    return fig
