"""Scale presets and one dataclass config per stage.

A *scale* sizes every notebook and CLI run at once: ``smoke`` (all notebooks in minutes on two CPU
cores; the tests use it), ``cpu`` (a laptop run whose results mean something in miniature), ``gpu``
(one H100-class GPU for hours) and ``paper`` (the paper's configs, multi-GPU under ``torchrun``).
Where DeepSeek-Coder (arXiv 2401.14196) gives a value, the field's comment names it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

SCALES = ("smoke", "cpu", "gpu", "paper")
FIM_MODES = ("psm", "spm", "msp")
FIM_LEVELS = ("document", "context")


class ConfigError(ValueError):
    """A config name or value that cannot work; the message lists the valid choices."""


def _choice(value: Any, choices: tuple, what: str) -> None:
    if value not in choices:
        raise ConfigError(f"{what}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None or value <= 0:
            raise ConfigError(f"{type(obj).__name__}.{name}={value!r} must be a positive number")


@dataclass(frozen=True)
class DataConfig:
    """Repository-level data construction (DeepSeek-Coder §2)."""

    source: str = "python_env"  # "python_env", a folder of repositories, or "hub:<dataset name>"
    hub_data_dir: str | None = None  # the dataset's data_dir for "hub:" sources (e.g. "data/python")
    max_repos: int | None = None  # None = every repository the source yields
    max_total_bytes: int | None = None  # crawl budget: repositories are taken (seeded order) while they fit
    max_file_bytes: int = 1_000_000  # larger files are a counted skip ("too_large")
    max_repo_files: int = 2_000  # a repository with more files is cut, the rest counted
    # Rule filters, §2.1 (as DeepSeek-Coder states StarCoder's rules).
    max_avg_line_length: int = 100  # paper: 100
    max_line_length: int = 1000  # paper: 1000
    min_alpha_fraction: float = 0.25  # paper: 25%
    html_min_visible_fraction: float = 0.20  # paper: 20%
    html_min_visible_chars: int = 100  # paper: 100
    json_yaml_min_chars: int = 50  # paper: 50
    json_yaml_max_chars: int = 5000  # paper: 5000
    # Repository-level near-dedup, §2.3 (paper silent; BigCode / SantaCoder defaults).
    dedup_ngram: int = 5
    dedup_num_perm: int = 256
    dedup_threshold: float = 0.7
    # Decontamination, §2.4.
    decontam_ngram: int = 10  # paper: 10-gram
    decontam_min_ngram: int = 3  # paper: shorter strings (>= 3-grams) need an exact match
    decontam_files: tuple[str, ...] = ()  # benchmark jsonl files (MBPP, GSM8K, MATH) besides HumanEval
    num_proc: int = 2
    num_shards: int = 8
    heldout_fraction: float = 0.05  # repositories held out for tokenizer compression and loss
    seed: int = 0
    # Where the pipeline runs: "local" (multiprocessing) or "spark" (PySpark; same output, dslib/data/spark.py).
    engine: str = "local"
    spark_master: str | None = None  # e.g. "local[2]"; None: spark-submit's --master, else local[*]
    spark_partitions: int | None = None  # partitions of the shuffle by repository; None: one per 32 MB of Parquet

    def __post_init__(self):
        _positive(self, "max_file_bytes", "dedup_ngram", "dedup_num_perm", "num_proc", "num_shards")
        if self.engine not in ("local", "spark"):
            raise ConfigError(f"DataConfig.engine={self.engine!r} must be 'local' or 'spark'")
        if self.spark_partitions is not None and self.spark_partitions < 1:
            raise ConfigError(f"DataConfig.spark_partitions={self.spark_partitions} must be positive")
        if not 0 < self.dedup_threshold <= 1:
            raise ConfigError(f"DataConfig.dedup_threshold={self.dedup_threshold} must be in (0, 1]")


@dataclass(frozen=True)
class TokenizerConfig:
    """Byte-level BPE (DeepSeek-Coder §3.2)."""

    vocab_size: int = 32_000  # paper: 32,000 learned tokens (special tokens come after)
    train_bytes: int | None = None  # corpus bytes the tokenizer is trained on (None = all)
    sweep_vocab_sizes: tuple[int, ...] = ()  # vocabulary sizes compared in 02_tokenizer
    num_proc: int = 2

    def __post_init__(self):
        _positive(self, "vocab_size", "num_proc")
        if self.vocab_size <= 256:
            raise ConfigError(f"TokenizerConfig.vocab_size={self.vocab_size} must exceed the 256 byte symbols")


@dataclass(frozen=True)
class FIMConfig:
    """Fill-in-the-middle (DeepSeek-Coder §3.1; Bavarian et al. 2022)."""

    fim_rate: float = 0.5  # paper: 0.5
    mode: str | dict[str, float] = "psm"  # paper: PSM; a dict such as {"psm": 0.5, "spm": 0.5} mixes modes
    granularity: str = "char"  # "char" (the authors' choice, issue #107) or "token"
    # Where FIM applies: "document" (DeepSeek-Coder §3.1: each document before packing, the paper's choice) or
    # "context" (Bavarian et al. 2022, SantaCoder §5; FACTS.md §8: each document fragment of a training sequence,
    # after packing; Bavarian et al. found it "consistently outperforms" document-level FIM).
    level: str = "document"
    # MSP (§3.1.2, after CodeGen2.5): T5 span corruption, 15% masked in spans of mean length 3 tokens; the
    # span length is in units of `granularity` (10 characters ≈ 3 tokens of code).
    msp_noise_density: float = 0.15
    msp_mean_span: float = 10.0
    # The FIM ablation (§3.1.2, Figure 3) at this scale: training steps per run, evaluations per run.
    ablation_steps: int = 8_000  # Figure 3's x-axis runs to 8000 steps
    ablation_evals: int = 4
    ablation_tasks: int | None = None  # single-line infilling tasks per evaluation (None = EvalConfig's limit)
    ablation_heldout_sequences: int = 512  # held-out sequences for the left-to-right loss
    ablation_humaneval: bool = True  # HumanEval pass@1 at each evaluation (off where a small model scores 0)

    def __post_init__(self):
        modes = self.mode if isinstance(self.mode, dict) else {self.mode: 1.0}
        for mode in modes:
            _choice(mode, FIM_MODES, "FIMConfig.mode")
        if any(not w >= 0 for w in modes.values()) or not sum(modes.values()) > 0:
            raise ConfigError(f"FIMConfig.mode={self.mode!r} needs weights >= 0 with a positive sum")
        _positive(self, "msp_noise_density", "msp_mean_span", "ablation_steps", "ablation_evals")
        _positive(self, "ablation_heldout_sequences")
        _choice(self.granularity, ("char", "token"), "FIMConfig.granularity")
        _choice(self.level, FIM_LEVELS, "FIMConfig.level")
        if not 0 <= self.fim_rate <= 1:
            raise ConfigError(f"FIMConfig.fim_rate={self.fim_rate} must be in [0, 1]")


ROPE_SCALING_TYPES = ("linear",)


@dataclass(frozen=True)
class ModelConfig:
    """A LLaMA-style decoder, with Hugging Face ``LlamaConfig`` field names (DeepSeek-Coder §3.3, Table 2)."""

    vocab_size: int = 32_256  # released config.json: 32256 (32,022 tokens, padded)
    hidden_size: int = 2048
    intermediate_size: int = 5504
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int | None = None  # None = num_attention_heads (MHA); 33B: 8 (GQA)
    hidden_act: str = "silu"  # SwiGLU
    max_position_embeddings: int = 16_384
    rope_theta: float = 100_000.0  # §3.6: 10000 in pretraining, 100000 after the long-context stage
    rope_scaling: dict | None = None  # released: {"type": "linear", "factor": 4.0}
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    bos_token_id: int = 32_013
    eos_token_id: int = 32_014
    attn_implementation: str = "auto"  # "auto" (flash-attn on CUDA if installed, else SDPA), "sdpa", "eager", "flash"

    def __post_init__(self):
        _positive(self, "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        if self.num_key_value_heads is None:
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"ModelConfig.num_attention_heads={self.num_attention_heads} must divide hidden_size={self.hidden_size}"
            )
        if self.num_key_value_heads <= 0 or self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"ModelConfig.num_key_value_heads={self.num_key_value_heads} must divide "
                f"num_attention_heads={self.num_attention_heads}"
            )
        _choice(self.hidden_act, ("silu",), "ModelConfig.hidden_act")
        _choice(self.attn_implementation, ("auto", "sdpa", "eager", "flash"), "ModelConfig.attn_implementation")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("type", self.rope_scaling.get("rope_type"))
            _choice(kind, ROPE_SCALING_TYPES, "ModelConfig.rope_scaling['type']")
            if float(self.rope_scaling.get("factor", 0)) < 1:
                raise ConfigError(f"ModelConfig.rope_scaling['factor']={self.rope_scaling.get('factor')} must be >= 1")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_preset(cls, name: str) -> ModelConfig:
        """The released DeepSeek-Coder configs, or the small model of a scale (``"smoke"``, ``"cpu"`` …)."""
        if name in MODEL_PRESETS:
            return MODEL_PRESETS[name]
        if name in SCALES:
            return get_scale(name).model
        raise ConfigError(f"unknown model preset {name!r}; choose one of: {', '.join([*MODEL_PRESETS, *SCALES])}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _released(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int) -> ModelConfig:
    # huggingface.co/deepseek-ai/deepseek-coder-*-base config.json (FACTS §4).
    return ModelConfig(
        vocab_size=32_256,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=16_384,
        rope_theta=100_000.0,
        rope_scaling={"type": "linear", "factor": 4.0},
        rms_norm_eps=1e-6,
    )


MODEL_PRESETS: dict[str, ModelConfig] = {
    "deepseek-coder-1.3b": _released(2048, 5504, 24, 16, 16),
    "deepseek-coder-6.7b": _released(4096, 11008, 32, 32, 32),
    "deepseek-coder-33b": _released(7168, 19200, 62, 56, 8),
}


@dataclass(frozen=True)
class TrainConfig:
    """Pretraining (DeepSeek-Coder §3.4–3.6; DeepSeek LLM §2.3 for what the Coder paper leaves out)."""

    seq_len: int = 4096  # §3.4: 4K pretraining window
    micro_batch_size: int = 4  # sequences per device per forward pass
    global_batch_size: int = 1024  # sequences per optimizer step; Table 2 (1.3B): 1024
    max_steps: int = 476_837  # 2T tokens / (1024 × 4096)
    lr: float = 5.3e-4  # Table 2 (1.3B): 5.3e-4
    warmup_steps: int = 2000  # §3.4: 2000
    betas: tuple[float, float] = (0.9, 0.95)  # §3.4: β1 0.9, β2 0.95
    weight_decay: float = 0.1  # DeepSeek LLM: 0.1
    grad_clip: float = 1.0  # DeepSeek LLM: 1.0
    lr_milestones: tuple[float, float] = (0.8, 0.9)  # DeepSeek LLM: drops at 80% and 90% of tokens
    lr_decay: float = 0.1**0.5  # §3.4: each stage √(1/10) of the previous, final 10%
    init_std: float = 0.02  # released initializer_range
    distributed: str = "ddp"  # "ddp" or "fsdp" (FSDP2 fully_shard) under torchrun
    compile: bool = False
    activation_checkpointing: bool = False
    checkpoint_every: int = 1000
    keep_last: int = 3
    log_every: int = 10
    max_bad_steps: int = 10  # stop after this many non-finite steps in a row
    num_workers: int = 0  # DataLoader workers
    seed: int = 0
    # Long-context stage, §3.6: linear RoPE scaling 1 → 4, base 10000 → 100000, 1000 steps at 16K, batch 512.
    long_context_steps: int = 1000
    long_context_batch_size: int = 512
    long_context_seq_multiplier: int = 4
    long_context_rope_theta: float = 100_000.0
    long_context_rope_factor: float = 4.0

    def __post_init__(self):
        _positive(self, "seq_len", "micro_batch_size", "global_batch_size", "max_steps", "lr", "keep_last")
        _choice(self.distributed, ("ddp", "fsdp"), "TrainConfig.distributed")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(
                f"TrainConfig.micro_batch_size={self.micro_batch_size} must divide "
                f"global_batch_size={self.global_batch_size}"
            )

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_len


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation (DeepSeek-Coder §4): greedy decoding, the repository's stop words and timeouts."""

    humaneval_limit: int | None = None  # None = all 164 problems
    infilling_limit: int | None = None  # None = all 1033 single-line tasks
    max_new_tokens: int = 500  # repo: max_gen_len 500
    max_input_tokens: int = 4096  # repo: max_seq_len 4096
    n_samples: int = 1  # paper: greedy, one sample
    temperature: float = 0.0  # paper: greedy
    top_p: float = 1.0
    batch_size: int = 8
    timeout: float = 10.0  # repo: 10 s per program
    workers: int = 2

    def __post_init__(self):
        _positive(self, "max_new_tokens", "n_samples", "batch_size", "timeout", "workers")


@dataclass(frozen=True)
class Scale:
    """One preset sizing every stage."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    fim: FIMConfig = field(default_factory=FIMConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

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


PRESETS: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke",
        data=DataConfig(max_repos=24, max_total_bytes=10_000_000, max_file_bytes=200_000, num_shards=4),
        tokenizer=TokenizerConfig(vocab_size=2_000, train_bytes=3_000_000, sweep_vocab_sizes=(1_000, 2_000)),
        # Context-level FIM: repository documents dwarf the 64-token window, so at the document level almost no
        # sequence carries a FIM example (measured: 0.06% held a FIM middle at 50% PSM).
        fim=FIMConfig(
            level="context",
            ablation_steps=12,
            ablation_evals=2,
            ablation_tasks=8,
            ablation_heldout_sequences=16,
            ablation_humaneval=False,
        ),
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
            long_context_steps=4,
            long_context_batch_size=4,
        ),
        eval=EvalConfig(humaneval_limit=4, infilling_limit=12, max_new_tokens=16, batch_size=4, timeout=5.0),
    ),
    "cpu": Scale(
        name="cpu",
        data=DataConfig(max_total_bytes=200_000_000, max_file_bytes=500_000),
        tokenizer=TokenizerConfig(vocab_size=8_000, train_bytes=50_000_000, sweep_vocab_sizes=(8_000, 16_000, 32_000)),
        # FIM ablation: 1.0–1.5 s/step, ~20 s per evaluation on two free cores: the 9 runs took 1 h 30 min (measured).
        # Context-level FIM: repository documents dwarf the 256-token window (at the document level, 0.06% of
        # the smoke scale's sequences held a FIM middle), so the ablation could not show a FIM effect.
        fim=FIMConfig(
            level="context",
            ablation_steps=400,
            ablation_evals=4,
            ablation_tasks=150,
            ablation_heldout_sequences=128,
            ablation_humaneval=False,
        ),
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
            long_context_steps=100,
            long_context_batch_size=8,
        ),
        eval=EvalConfig(max_new_tokens=128, max_input_tokens=1024, batch_size=16),
    ),
    "gpu": Scale(
        name="gpu",
        data=DataConfig(max_file_bytes=1_000_000, num_proc=8, num_shards=32),
        tokenizer=TokenizerConfig(vocab_size=32_000, sweep_vocab_sizes=(8_000, 16_000, 32_000), num_proc=8),
        # FIM ablation: 2.0 s/step at 49% MFU on an H200 (measured; benchmarks/RESULTS.md): 9 runs × 600 steps take
        # about 3 h of training, about 4 h with their evaluations.
        fim=FIMConfig(ablation_steps=600, ablation_evals=4, ablation_tasks=400, ablation_heldout_sequences=256),
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
            long_context_steps=200,
            long_context_batch_size=64,
        ),
        eval=EvalConfig(max_new_tokens=300, batch_size=32, workers=8),
    ),
    "paper": Scale(
        name="paper",
        data=DataConfig(num_proc=32, num_shards=1024),
        tokenizer=TokenizerConfig(vocab_size=32_000, num_proc=32),
        fim=FIMConfig(ablation_steps=8000, ablation_evals=8),
        model=replace(MODEL_PRESETS["deepseek-coder-1.3b"], rope_theta=10_000.0, rope_scaling=None),
        train=TrainConfig(distributed="fsdp", compile=True, activation_checkpointing=True),
        eval=EvalConfig(workers=16),
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
