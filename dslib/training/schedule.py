"""The pretraining learning-rate schedule (DeepSeek-Coder §3.4; DeepSeek LLM §2.3).

DeepSeek-Coder: "2000 warm-up steps", then a three-stage schedule whose "final learning rate is 10% of
the initial one", "each stage scaled down by a factor of √(1/10) from the previous one". DeepSeek LLM places
the two drops at 80% and 90% of the training tokens. Every optimizer step sees the same number of tokens,
so a drop takes effect at the first step that starts at or after its fraction of the tokens,
``ceil(0.8 · max_steps)`` and ``ceil(0.9 · max_steps)``.
"""

from __future__ import annotations

import math

from dslib.config import TrainConfig
from dslib.paper import PRETRAINING


def milestone_steps(config: TrainConfig) -> list[int]:
    """The first optimizer step of each decayed stage (80% and 90% of ``max_steps`` in the paper)."""
    # Rounding to 6 places first keeps 0.9 · 10 = 9.000000000000002 from landing one step late.
    return [math.ceil(round(m * config.max_steps, 6)) for m in config.lr_milestones]


def learning_rate(step: int, config: TrainConfig) -> float:
    """The learning rate of 0-based optimizer ``step``: linear warm-up to ``lr``, then × ``lr_decay`` per milestone
    (``lr_schedule="multistep"``), or a cosine from ``lr`` down to 0 at ``max_steps`` (``"cosine"``, §3.7).

    Warm-up climbs as ``lr · (step + 1) / warmup_steps`` so that the first step already moves the weights
    and step ``warmup_steps - 1`` reaches the peak.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        return cosine_decay(step, config)
    stages_passed = sum(step >= m for m in milestone_steps(config))
    return config.lr * config.lr_decay**stages_passed


def cosine_decay(step: int, config: TrainConfig) -> float:
    """The cosine part (§3.7; as transformers' ``get_cosine_schedule_with_warmup``): ``lr`` at the end of warm-up,
    half-way down at the middle of the remaining steps, 0 at ``max_steps``."""
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule(config: TrainConfig) -> list[float]:
    """The learning rate of every step of the run, for plots and checks."""
    return [learning_rate(step, config) for step in range(config.max_steps)]


def paper_description(config: TrainConfig) -> list[tuple[float, float, float]]:
    """The schedule as DeepSeek-Coder / DeepSeek LLM describe it, from ``dslib.paper.PRETRAINING`` rather than
    from ``config``'s fields: (first token, last token, lr) of each stage after warm-up, at ``config``'s size."""
    total = config.max_steps * config.tokens_per_step
    edges = [config.warmup_steps * config.tokens_per_step] + [f * total for f, _ in PRETRAINING["lr_drops"]] + [total]
    levels = [1.0] + [multiplier for _, multiplier in PRETRAINING["lr_drops"]]
    return [(edges[i], edges[i + 1], config.lr * level) for i, level in enumerate(levels)]


def plot_schedule(config: TrainConfig, ax=None, title: str | None = None):
    """Draw the schedule against tokens seen, over the paper's description (dashed); returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    tokens = [step * config.tokens_per_step for step in range(config.max_steps)]
    ax.plot(tokens, schedule(config), label="dslib.training.schedule", lw=2)
    for i, (start, end, lr) in enumerate(paper_description(config)):
        ax.plot([start, end], [lr, lr], "k--", lw=1, label="paper (§3.4; DeepSeek LLM §2.3)" if i == 0 else None)
    ax.axvline(config.warmup_steps * config.tokens_per_step, color="grey", ls=":", lw=1)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("learning rate")
    ax.set_ylim(0, config.lr * 1.1)
    ax.set_title(title or f"{config.max_steps:,} steps, {config.warmup_steps:,} warm-up")
    ax.legend(fontsize=8, loc="lower left")
    return ax
