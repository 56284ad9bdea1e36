"""The four scale presets and the ``stage.field=value`` overrides that adjust them.

A *scale* sizes every notebook and CLI run at once: ``smoke`` (all notebooks in minutes on two CPU
cores; the tests use it), ``cpu`` (a laptop run whose results mean something in miniature), ``gpu``
(one H100-class GPU for hours) and ``paper`` (the paper's configs, multi-GPU under ``torchrun``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dslib.config.stages import (
    MODEL_PRESETS,
    SCALES,
    AblationConfig,
    ConfigError,
    CrossFileConfig,
    DataConfig,
    EvalConfig,
    FIMConfig,
    InstructConfig,
    LongContextConfig,
    ModelConfig,
    TokenizerConfig,
    TrainConfig,
    _choice,
)


@dataclass(frozen=True)
class Scale:
    """One preset sizing every stage."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    fim: FIMConfig = field(default_factory=FIMConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    long_context: LongContextConfig = field(default_factory=LongContextConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    instruct: InstructConfig = field(default_factory=InstructConfig)
    crossfile: CrossFileConfig = field(default_factory=CrossFileConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def override(self, assignments: list[str] | dict[str, Any]) -> Scale:
        """A copy with ``"stage.field=value"`` assignments applied (values parsed as JSON where they can be)."""
        items = assignments.items() if isinstance(assignments, dict) else (_split(a) for a in assignments)
        scale = self
        for key, value in items:
            stage, _, name = key.partition(".")
            stages = [f.name for f in fields(Scale) if f.name != "name"]
            _choice(stage, tuple(stages), "stage")
            sub = getattr(scale, stage)
            valid = {f.name: f for f in fields(sub)}
            _choice(name, tuple(valid), f"{stage} field")
            scale = replace(scale, **{stage: replace(sub, **{name: _coerce(value, valid[name], type(sub))})})
        return scale


def _split(assignment: str) -> tuple[str, str]:
    key, sep, value = assignment.partition("=")
    if not sep:
        raise ConfigError(f"override {assignment!r} must look like stage.field=value (e.g. train.lr=1e-3)")
    return key.strip(), value.strip()


def _coerce(value: Any, f: dataclasses.Field, owner: type) -> Any:
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = {"true": True, "false": False, "none": None, "null": None}.get(value.lower(), value)
    hint = typing.get_type_hints(owner)[f.name]
    if isinstance(parsed, list) and typing.get_origin(hint) is tuple:
        parsed = tuple(parsed)
    if isinstance(parsed, int) and not isinstance(parsed, bool) and float in typing.get_args(hint) + (hint,):
        parsed = float(parsed)
    if hint is str and not isinstance(parsed, str):
        parsed = value
    return parsed


# Small decoders for the scales that cannot afford 1.3B. Pretraining runs at rope_theta 10000 with no
# scaling (§3.6); the long-context stage switches to 100000 and linear factor 4.
def _small(learned: int, hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, max_pos: int):
    # The tokenizer puts DeepSeek-Coder's added tokens at the released offsets after its learned
    # vocabulary (BOS = learned + 13, EOS = learned + 14), padded to a multiple of 128 as released.
    return ModelConfig(
        vocab_size=-(-(learned + 22) // 128) * 128,
        bos_token_id=learned + 13,
        eos_token_id=learned + 14,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_pos,
        rope_theta=10_000.0,
        rope_scaling=None,
    )


DOCS_FOLDERS = ("/usr/share/doc",)  # Debian's package documentation: the mix's English beside the repositories' own

PRESETS: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke",
        data=DataConfig(
            max_repos=24, max_total_bytes=10_000_000, max_file_bytes=200_000, num_shards=4, docs_folders=DOCS_FOLDERS
        ),
        tokenizer=TokenizerConfig(vocab_size=2_000, train_bytes=3_000_000, sweep_vocab_sizes=(1_000, 2_000)),
        # Context-level FIM: repository documents dwarf the 64-token window, so at the document level almost no
        # sequence carries a FIM example (measured: 0.06% held a FIM middle at 50% PSM).
        fim=FIMConfig(level="context"),
        model=_small(2_000, 64, 176, 2, 4, 2, 1024),
        train=TrainConfig(
            seq_len=64,
            micro_batch_size=4,
            global_batch_size=8,
            max_steps=20,
            lr=3e-3,
            warmup_steps=4,
            checkpoint_every=10,
            log_every=1,
        ),
        long_context=LongContextConfig(steps=4, batch_size=4),
        eval=EvalConfig(humaneval_limit=4, infilling_limit=12, max_new_tokens=16, batch_size=4, timeout=5.0),
        instruct=InstructConfig(
            max_steps=24,
            lr=2e-3,
            warmup_steps=3,
            global_batch_size=8,
            micro_batch_size=4,
            seq_len=1024,
            checkpoint_every=12,
            validation_rows=32,
        ),
        crossfile=CrossFileConfig(max_input_tokens=512, max_new_tokens=16, crossfile_tokens=128, max_points=24),
        ablation=AblationConfig(
            steps=12, evals=2, tasks=8, generation_tasks=4, heldout_lines=16, heldout_sequences=16, humaneval=False
        ),
    ),
    "cpu": Scale(
        name="cpu",
        data=DataConfig(max_total_bytes=200_000_000, max_file_bytes=500_000, docs_folders=DOCS_FOLDERS),
        tokenizer=TokenizerConfig(vocab_size=8_000, train_bytes=50_000_000, sweep_vocab_sizes=(8_000, 16_000, 32_000)),
        # Context-level FIM: repository documents dwarf the 256-token window (at the document level, 0.06% of
        # the smoke scale's sequences held a FIM middle), so the ablation could not show a FIM effect.
        fim=FIMConfig(level="context"),
        model=_small(8_000, 256, 688, 4, 4, 4, 4096),
        train=TrainConfig(
            seq_len=256,
            micro_batch_size=8,
            global_batch_size=16,
            max_steps=1500,
            lr=1e-3,
            warmup_steps=100,
            checkpoint_every=250,
            log_every=10,
        ),
        long_context=LongContextConfig(steps=100, batch_size=8),
        eval=EvalConfig(max_new_tokens=128, max_input_tokens=1024, batch_size=16),
        instruct=InstructConfig(
            max_steps=200,
            lr=3e-4,
            warmup_steps=20,
            global_batch_size=16,
            micro_batch_size=8,
            seq_len=1024,
            checkpoint_every=50,
        ),
        # The window after the long-context stage (4 × 256); a quarter of it for cross-file context, as the paper.
        crossfile=CrossFileConfig(max_input_tokens=1024, crossfile_tokens=256, max_points_per_repo=500),
        # FIM ablation, sized to ~2 h on two free cores (README "The FIM ablation, decided"). Measured
        # (benchmarks/fim_ablation_sizing.py, CPU time on one thread): a training step 2.05 s, the middle losses of
        # one task in both formats 0.063 s (0.031 steps), greedy infilling of one task in both formats 0.098 s.
        # On two free cores a step takes 1.0-1.5 s (the previous grid's measured run): with 1.25 s, one evaluation
        # (1033 + 300 tasks x 2 formats, 32 generated and run, 128 held-out sequences) is ~57 s, one run of
        # 400 steps 500 s + 57 s; 12 runs = 1 h 52 min (projection), evaluation 10.3%. Two evaluations per run
        # would be 19%, so each run is evaluated once, at its end. 12 runs = 6 settings x 2 seeds: the rate
        # sweep's 25% and 90% are dropped, not the second seed (the band needs it). Measured 2026-12-01 with two
        # single-thread workers: 1.85-1.88 s/step and 91-116 s per evaluation on each, evaluation 11.4% of the grid.
        ablation=AblationConfig(
            steps=400,
            evals=1,
            generation_tasks=32,
            heldout_lines=300,
            heldout_sequences=128,
            humaneval=False,
            seeds=2,
            settings=("fim_0", "psm_0.5", "psm_1.0", "msp_0.5", "spm_0.5", "joint_0.5"),
            workers=2,
        ),
    ),
    "gpu": Scale(
        name="gpu",
        data=DataConfig(max_file_bytes=1_000_000, num_proc=8, num_shards=32, docs_folders=DOCS_FOLDERS),
        tokenizer=TokenizerConfig(vocab_size=32_000, sweep_vocab_sizes=(8_000, 16_000, 32_000), num_proc=8),
        model=_small(32_000, 1024, 2816, 16, 8, 8, 16_384),
        train=TrainConfig(
            seq_len=2048,
            micro_batch_size=16,
            global_batch_size=256,
            max_steps=4000,
            lr=1e-3,
            warmup_steps=400,
            compile=True,
            checkpoint_every=500,
        ),
        long_context=LongContextConfig(steps=200, batch_size=64),
        eval=EvalConfig(max_new_tokens=300, batch_size=32, workers=8),
        instruct=InstructConfig(
            max_steps=300,
            lr=5e-5,
            warmup_steps=30,
            global_batch_size=64,
            micro_batch_size=16,
            seq_len=2048,
            checkpoint_every=100,
        ),
        # FIM ablation: 1.99 s/step at 49% MFU on an H200 (measured; benchmarks/RESULTS.md): 8 settings x 2 seeds x
        # 600 steps = 9,600 steps, 5 h 20 min of training (projection); the evaluations (every task's losses, 400
        # tasks generated and run, HumanEval) are not measured on the GPU yet: results.json records the split.
        ablation=AblationConfig(steps=600, evals=2, generation_tasks=400, heldout_sequences=256, seeds=2),
    ),
    "paper": Scale(
        name="paper",
        data=DataConfig(num_proc=32, num_shards=1024, docs_folders=DOCS_FOLDERS),
        tokenizer=TokenizerConfig(vocab_size=32_000, num_proc=32),
        model=replace(MODEL_PRESETS["deepseek-coder-1.3b"], rope_theta=10_000.0, rope_scaling=None),
        train=TrainConfig(distributed="fsdp", compile=True, activation_checkpointing=True),
        eval=EvalConfig(workers=16),
        ablation=AblationConfig(steps=8000, evals=8),
    ),
}


def get_scale(name: str | None = None, overrides: list[str] | dict | None = None) -> Scale:
    """The named scale preset, or ``$DSLIB_SCALE`` (default ``smoke``) when no name is given.

    ``$DSLIB_OVERRIDES`` (``stage.field=value`` assignments separated by ``;``) applies to every stage of a
    run, so that ``python -m dslib reproduce --set data.source=~/src`` reaches each notebook's kernel.
    """
    if name is None:
        name = os.environ.get("DSLIB_SCALE", "smoke")
    if overrides is None and os.environ.get("DSLIB_OVERRIDES"):
        overrides = [a for a in os.environ["DSLIB_OVERRIDES"].split(";") if a.strip()]
    if name not in PRESETS:
        raise ConfigError(f"unknown scale {name!r}; choose one of: {', '.join(SCALES)} (set DSLIB_SCALE or --scale)")
    scale = PRESETS[name]
    return scale.override(overrides) if overrides else scale


def resolve(scale: Scale | str | None = None) -> Scale:
    """Accept a :class:`Scale`, a preset name, or ``None`` (``$DSLIB_SCALE``)."""
    return scale if isinstance(scale, Scale) else get_scale(scale)
