"""What an experiment is: its named settings (config overrides and a seed), its metrics and its evaluation hook."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dslib.config import AblationConfig, Scale


@dataclass(frozen=True)
class Metric:
    """One number an evaluation records per item (task, sequence, problem), and how to compare two settings on it.

    A difference smaller than ``floor`` is never called clear, whatever its standard error: an absolute amount
    (a share of tasks), or with ``relative`` a fraction of the baseline's mean (a loss).
    """

    description: str
    higher_is_better: bool
    floor: float
    relative: bool = False


@dataclass(frozen=True)
class Setting:
    """One setting of the grid: ``stage.field`` overrides of the scale (``{"fim.fim_rate": 0.5}``), and ``seed``
    added to ``TrainConfig.seed``. A setting with ``control_of`` repeats that setting with another seed: the gap
    between the two is the run-to-run noise band of every comparison. ``paper`` marks the paper's own settings
    (drawn solid)."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    control_of: str | None = None
    paper: bool = False


class Evaluation:
    """An experiment's evaluation hook, built once per grid from the base scale (every setting is evaluated on
    the same items). Subclasses set ``tokenizer`` (exported with each run's weights) and ``spec`` (everything
    the numbers depend on besides training; a change redoes the runs), and define :meth:`evaluate`."""

    tokenizer: Any = None
    spec: Mapping[str, Any] = {}

    def evaluate(self, model) -> dict[str, list[float]]:
        """Each metric's per-item values for ``model`` (in eval mode)."""
        raise NotImplementedError

    def describe(self, scale: Scale) -> dict:
        """Fields recorded in a run's ``run.json`` from its setting's scale (the FIM ablation: rate and mode)."""
        return {}

    def inspect(self, scale: Scale) -> dict | None:
        """What a setting's training data holds (``results["streams"][setting]``); ``None`` to record nothing."""
        return None

    def summary(self) -> dict:
        """Entries added to ``results.json`` (the number of tasks, the window …)."""
        return {}


@dataclass(frozen=True)
class Experiment:
    """A controlled experiment: ``settings`` (the grid), the ``metrics`` its evaluation records, and
    ``evaluation``, called with the base scale, returning its :class:`Evaluation`; ``grid``, when given, the
    settings a scale runs by default (seeds and a subset from its config; else every setting). Runs live in
    ``artifacts/<scale>/<name>/<setting>/``."""

    name: str
    title: str
    settings: Mapping[str, Setting]
    metrics: Mapping[str, Metric]
    evaluation: Callable[[Scale], Evaluation]
    grid: Callable[[Scale], list[str]] | None = None

    def members(self, name: str) -> list[str]:
        """The metrics ``name`` stands for: itself, or a family (``infill_em`` → ``infill_em_psm``, ``…_spm``)."""
        return [m for m in self.metrics if m == name or m.startswith(name + "_")]


def eval_steps(config: AblationConfig) -> list[int]:
    """The steps a run is evaluated at: every ``steps // evals`` steps, and the last step."""
    every = max(1, config.steps // config.evals)
    steps = [every * k for k in range(1, config.evals)] + [config.steps]
    return sorted({s for s in steps if s <= config.steps})


def setting_scale(scale: Scale, setting: Setting) -> Scale:
    """The scale a setting trains with: its overrides, ``AblationConfig.steps`` steps, a checkpoint at each
    evaluation step, and its seed."""
    scale = scale.override(dict(setting.overrides))
    steps = eval_steps(scale.ablation)
    every = steps[0] if len(steps) > 1 else scale.ablation.steps
    train = replace(
        scale.train,
        max_steps=scale.ablation.steps,
        checkpoint_every=every,
        keep_last=2,
        seed=scale.train.seed + setting.seed,
    )
    return replace(scale, train=train)


def setting_scales(experiment: Experiment, scale: Scale, names: Iterable[str] | None = None) -> dict[str, Scale]:
    """Each named setting's scale (:func:`setting_scale`); ``names`` defaults to the whole grid."""
    if names is None:
        names = experiment.grid(scale) if experiment.grid is not None else list(experiment.settings)
    names = list(names)
    unknown = [n for n in names if n not in experiment.settings]
    if unknown or not names:
        raise ValueError(
            f"unknown {experiment.title} settings {unknown or names}; choose among {', '.join(experiment.settings)}"
        )
    return {n: setting_scale(scale, experiment.settings[n]) for n in names}
