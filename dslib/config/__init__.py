"""Scale presets and one dataclass config per stage (``stages``: the configs; ``scales``: the presets).

A *scale* sizes every notebook and CLI run at once: ``smoke`` (all notebooks in minutes on two CPU
cores; the tests use it), ``cpu`` (a laptop run whose results mean something in miniature), ``gpu``
(one H100-class GPU for hours) and ``paper`` (the paper's configs, multi-GPU under ``torchrun``).
Where DeepSeek-Coder (arXiv 2401.14196) gives a value, the field's comment names it.
"""

from dslib.config.scales import DOCS_FOLDERS, PRESETS, Scale, get_scale, resolve
from dslib.config.stages import (
    DEDUP_HASH_VERSION,
    ENGINES,
    FIM_LEVELS,
    FIM_MODES,
    HOW,
    LR_SCHEDULES,
    MIX_PRESETS,
    MIX_SOURCES,
    MODEL_PRESETS,
    REPO_LEVELS,
    ROPE_SCALING_TYPES,
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
    result_fields,
)

__all__ = [
    "AblationConfig",
    "ConfigError",
    "CrossFileConfig",
    "DEDUP_HASH_VERSION",
    "ENGINES",
    "DOCS_FOLDERS",
    "DataConfig",
    "EvalConfig",
    "FIMConfig",
    "FIM_LEVELS",
    "FIM_MODES",
    "HOW",
    "InstructConfig",
    "LR_SCHEDULES",
    "LongContextConfig",
    "MIX_PRESETS",
    "MIX_SOURCES",
    "MODEL_PRESETS",
    "ModelConfig",
    "PRESETS",
    "REPO_LEVELS",
    "ROPE_SCALING_TYPES",
    "SCALES",
    "Scale",
    "TokenizerConfig",
    "TrainConfig",
    "get_scale",
    "resolve",
    "result_fields",
]
