"""The paper's reported numbers as data, each with its source, so notebooks can put ours beside theirs.

Transcribed from ``shared/paper/FACTS.md``. Sources: **[P]** DeepSeek-Coder, arXiv 2401.14196v2;
**[R]** github.com/deepseek-ai/DeepSeek-Coder; **[FIM]** Bavarian et al. 2022, arXiv 2207.14255;
**[SC]** SantaCoder, arXiv 2301.03988; **[LLM]** DeepSeek LLM, arXiv 2401.02954.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """One reported table: ``rows`` map a row label to a tuple aligned with ``columns``."""

    name: str
    source: str
    columns: tuple[str, ...]
    rows: dict[str, tuple]
    note: str = ""

    def get(self, row: str, column: str):
        """The reported value at (row, column); ``None`` where the paper prints '-'."""
        if row not in self.rows:
            raise KeyError(f"{self.name} has no row {row!r}; rows: {', '.join(self.rows)}")
        if column not in self.columns:
            raise KeyError(f"{self.name} has no column {column!r}; columns: {', '.join(self.columns)}")
        return self.rows[row][self.columns.index(column)]

    def to_markdown(self) -> str:
        head = "| | " + " | ".join(self.columns) + " |"
        rule = "|---" * (len(self.columns) + 1) + "|"
        body = [
            "| " + label + " | " + " | ".join("–" if v is None else str(v) for v in values) + " |"
            for label, values in self.rows.items()
        ]
        return "\n".join([f"**{self.name}** ({self.source})", "", head, rule, *body])


@dataclass(frozen=True)
class Finding:
    """A qualitative claim our runs can agree with, disagree with, or be too small to test."""

    key: str
    claim: str
    source: str


# §2.1: rule-based filtering keeps 32.8% of the data.
RULE_FILTER_RETAINED = 0.328
CORPUS_TOTAL_GB = 797.92  # Table 1 total; §2.4 rounds it to 798 GB, 603M files
CORPUS_TOTAL_FILES = 603_173_000

TABLE1 = Table(
    name="Table 1: languages of the training corpus",
    source="[P] Table 1",
    columns=("GB", "files (k)", "percent"),
    rows={
        "Java": (148.66, 134_367, 18.63),
        "Python": (120.68, 75_188, 15.12),
        "C++": (90.87, 36_006, 11.39),
        "TypeScript": (60.62, 62_432, 7.60),
        "PHP": (58.92, 40_627, 7.38),
        "C#": (58.56, 53_739, 7.34),
        "JavaScript": (53.84, 71_895, 6.75),
        "HTML": (30.05, 14_998, 3.77),
        "C": (28.64, 27_111, 3.59),
        "TeX": (20.46, 2_867, 2.56),
        "SQL": (15.14, None, 1.90),
        "Ruby": (15.01, None, 1.88),
        "Jupyter": (14.38, None, 1.80),
        "Shell": (13.92, None, 1.74),
        "JSON": (4.61, None, 0.58),
        "Go": (2.58, None, 0.32),
        "Rust": (0.61, None, 0.08),
    },
    note="Most of the other 87 languages hold about 0.9 GB (0.11%) each.",
)

TABLE2 = Table(
    name="Table 2: hyperparameters",
    source="[P] Table 2; released config.json",
    columns=(
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "batch_size",
        "max_lr",
        "parameters",
    ),
    rows={
        "deepseek-coder-1.3b": (2048, 5504, 24, 16, 16, 1024, 5.3e-4, 1_346_471_936),
        "deepseek-coder-6.7b": (4096, 11008, 32, 32, 32, 2304, 4.2e-4, 6_740_512_768),
        "deepseek-coder-33b": (7168, 19200, 62, 56, 8, 3840, 3.5e-4, 33_342_991_360),
    },
    note="Batch size units are not stated; parameter counts are the released checkpoints'.",
)

TOKENIZER = {
    "vocab_size": 32_000,  # [P] §3.2
    "released_entries": 32_022,  # added tokens included
    "model_vocab_size": 32_256,  # released config.json
    "source": "[P] §3.2; [R] tokenizer_config.json",
}

PRETRAINING = {
    "betas": (0.9, 0.95),  # [P] §3.4
    "warmup_steps": 2000,  # [P] §3.4
    "lr_drops": ((0.8, 0.1**0.5), (0.9, 0.1)),  # [LLM] §2.3: fraction of tokens, lr multiplier
    "weight_decay": 0.1,  # [LLM] §2.3
    "grad_clip": 1.0,  # [LLM] §2.3
    "tokens": 2e12,  # [P] §1
    "context": 4096,  # [R] README
    "long_context": {"rope_factor": 4.0, "rope_theta": 100_000, "steps": 1000, "batch_size": 512, "seq_len": 16_384},
    "source": "[P] §3.4, §3.6; [LLM] §2.3",
}

INSTRUCTION_TUNING = {
    "format": "Alpaca instruction format, <|EOT|> ends each turn",  # [P] §3.7
    "schedule": "cosine",  # [P] §3.7
    "warmup_steps": 100,  # [P] §3.7
    "lr": 1e-5,  # [P] §3.7
    "batch_tokens": 4e6,  # [P] §3.7
    "tokens": 2e9,  # [P] §3.7; unreleased data
    "source": "[P] §3.7",
}

_T3_COLUMNS = ("Python", "C++", "Java", "PHP", "TS", "C#", "Bash", "JS", "Avg", "MBPP")
TABLE3 = Table(
    name="Table 3: HumanEval (multilingual) and MBPP pass@1",
    source="[P] Table 3",
    columns=_T3_COLUMNS,
    rows={
        "code-cushman-001 12B": (33.5, 31.9, 30.6, 28.9, 31.3, 22.1, 11.7, None, None, None),
        "CodeGeeX2 6B": (36.0, 29.2, 25.9, 23.6, 20.8, 29.7, 6.3, 24.8, 24.5, 36.2),
        "StarCoderBase 16B": (31.7, 31.1, 28.5, 25.4, 34.0, 34.8, 8.9, 29.8, 28.0, 42.8),
        "CodeLlama 7B": (31.7, 29.8, 34.2, 23.6, 36.5, 36.7, 12.0, 29.2, 29.2, 38.6),
        "CodeLlama 13B": (36.0, 37.9, 38.0, 34.2, 45.2, 43.0, 16.5, 32.3, 35.4, 48.4),
        "CodeLlama 34B": (48.2, 44.7, 44.9, 41.0, 42.1, 48.7, 15.8, 42.2, 41.0, 55.2),
        "DeepSeek-Coder-Base 1.3B": (34.8, 31.1, 32.3, 24.2, 28.9, 36.7, 10.1, 28.6, 28.3, 46.2),
        "DeepSeek-Coder-Base 6.7B": (49.4, 50.3, 43.0, 38.5, 49.7, 50.0, 28.5, 48.4, 44.7, 60.6),
        "DeepSeek-Coder-Base 33B": (56.1, 58.4, 51.9, 44.1, 52.8, 51.3, 32.3, 55.3, 50.3, 66.0),
        "GPT-3.5-Turbo": (76.2, 63.4, 69.2, 60.9, 69.1, 70.8, 42.4, 67.1, 64.9, 70.8),
        "GPT-4": (84.1, 76.4, 81.6, 77.2, 77.4, 79.1, 58.2, 78.0, 76.5, 80.0),
        "DeepSeek-Coder-Instruct 1.3B": (65.2, 45.3, 51.9, 45.3, 59.7, 55.1, 12.7, 52.2, 48.4, 49.4),
        "DeepSeek-Coder-Instruct 6.7B": (78.6, 63.4, 68.4, 68.9, 67.2, 72.8, 36.7, 72.7, 66.1, 65.4),
        "DeepSeek-Coder-Instruct 33B": (79.3, 68.9, 73.4, 72.7, 67.9, 74.1, 43.0, 73.9, 69.2, 70.0),
    },
    note="Greedy decoding; the repository's READMEs differ slightly (e.g. MBPP Base-1.3B 46.8).",
)

TABLE4 = Table(
    name="Table 4: DS-1000 (completion) pass@1",
    source="[P] Table 4",
    columns=("Matplotlib", "Numpy", "Pandas", "PyTorch", "Scipy", "Sklearn", "TensorFlow", "Avg"),
    rows={
        "StarCoder-Base 16B": (43.2, 29.1, 11.0, 20.6, 23.6, 32.2, 15.6, 24.6),
        "CodeLlama-Base 34B": (50.3, 42.7, 23.0, 25.0, 28.3, 33.9, 40.0, 34.3),
        "DeepSeek-Coder-Base 1.3B": (32.3, 21.4, 9.3, 8.8, 8.5, 16.5, 8.9, 16.2),
        "DeepSeek-Coder-Base 6.7B": (48.4, 35.5, 20.6, 19.1, 22.6, 38.3, 24.4, 30.5),
        "DeepSeek-Coder-Base 33B": (56.1, 49.6, 25.8, 36.8, 36.8, 40.0, 46.7, 40.2),
    },
)

TABLE5 = Table(
    name="Table 5: LeetCode Contest pass@1 (chain-of-thought in parentheses)",
    source="[P] Table 5",
    columns=("Easy", "Medium", "Hard", "Overall"),
    rows={
        "GPT-3.5-Turbo": ("46.7 (42.2)", "15.4 (15.4)", "15.9 (20.5)", "23.3 (23.3)"),
        "GPT-4-Turbo": ("73.3 (71.1)", "31.9 (35.2)", "25.0 (25.0)", "40.6 (41.8)"),
        "DeepSeek-Coder-Instruct 1.3B": ("22.2 (22.2)", "1.1 (2.2)", "4.5 (2.3)", "7.2 (7.2)"),
        "DeepSeek-Coder-Instruct 6.7B": ("44.4 (44.4)", "12.1 (17.6)", "9.1 (4.5)", "19.4 (21.1)"),
        "DeepSeek-Coder-Instruct 33B": ("57.8 (53.3)", "22.0 (25.3)", "9.1 (11.4)", "27.8 (28.9)"),
    },
    note="180 problems, 100 test cases each.",
)

TABLE6 = Table(
    name="Table 6: single-line infilling, line exact match",
    source="[P] Table 6",
    columns=("Python", "Java", "JavaScript", "Mean (as printed)"),
    rows={
        "SantaCoder 1.1B": (44.0, 62.0, 74.0, 69.0),
        "StarCoder 16B": (62.0, 73.0, 74.0, 69.7),
        "CodeLlama-Base 7B": (67.6, 74.3, 80.2, 69.7),
        "CodeLlama-Base 13B": (68.3, 77.6, 80.7, 75.5),
        "DeepSeek-Coder-Base 1.3B": (57.4, 82.2, 71.7, 70.4),
        "DeepSeek-Coder-Base 6.7B": (66.6, 88.1, 79.7, 80.7),
        "DeepSeek-Coder-Base 33B": (65.4, 86.6, 82.5, 81.2),
    },
    note="The printed means are internally inconsistent (FACTS §6b); SantaCoder's own JS figure is 60.0.",
)

TABLE7 = Table(
    name="Table 7: CrossCodeEval exact match / edit similarity (%)",
    source="[P] Table 7",
    columns=("Python EM", "Python ES", "Java EM", "Java ES", "TS EM", "TS ES", "C# EM", "C# ES"),
    rows={
        "StarCoder-Base 7B": (6.68, 59.55, 8.65, 62.57, 5.01, 48.83, 4.75, 59.53),
        "StarCoder-Base 7B + Retrieval": (13.06, 64.24, 15.61, 64.78, 7.54, 42.06, 14.20, 65.03),
        "CodeLlama-Base 7B": (7.32, 59.66, 9.68, 62.64, 8.19, 58.50, 4.07, 59.19),
        "CodeLlama-Base 7B + Retrieval": (13.02, 64.30, 16.41, 64.64, 12.34, 60.64, 13.19, 63.04),
        "DeepSeek-Coder-Base 6.7B": (9.53, 61.65, 10.80, 61.77, 9.59, 60.17, 5.26, 61.32),
        "DeepSeek-Coder-Base 6.7B + Retrieval": (16.14, 66.51, 17.72, 63.18, 14.03, 61.77, 16.23, 63.42),
        "DeepSeek-Coder-Base 6.7B + Retrieval w/o repo pretraining": (
            16.02,
            66.65,
            16.64,
            61.88,
            13.23,
            60.92,
            14.48,
            62.38,
        ),
    },
)

# The repository-level ablation's claims (dslib.ablation.repo_level), judged on our runs beside Table 7.
REPO_FINDINGS = (
    Finding(
        "repo_beats_file",
        "Repository-level pretraining (files in dependency order) beats file-level pretraining on cross-file "
        "completion with retrieval.",
        "[P] §4.2, Table 7",
    ),
    Finding(
        "order_matters",
        "Dependency order beats the same repository samples in a random order (the order matters, not only the "
        "concatenation).",
        "[P] §2.2, Algorithm 1",
    ),
    Finding("retrieval_helps", "Retrieved cross-file context improves completion.", "[P] Table 7"),
)

TABLE8 = Table(
    name="Table 8: program-aided math reasoning (PAL)",
    source="[P] Table 8",
    columns=("GSM8k", "MATH", "GSM-Hard", "SVAMP", "TabMWP", "ASDiv", "MAWPS", "Avg"),
    rows={
        "StarCoder-Base 16B": (23.4, 10.3, 23.0, 42.4, 45.0, 54.9, 81.1, 40.0),
        "CodeLlama-Base 34B": (58.2, 21.2, 51.8, 70.3, 69.8, 70.7, 91.8, 62.0),
        "DeepSeek-Coder-Base 1.3B": (14.6, 16.8, 14.5, 36.7, 30.0, 48.2, 62.3, 31.9),
        "DeepSeek-Coder-Base 6.7B": (43.2, 19.2, 40.3, 58.4, 67.9, 67.2, 87.0, 54.7),
        "DeepSeek-Coder-Base 33B": (60.7, 29.1, 54.1, 71.6, 75.3, 76.7, 93.3, 65.8),
    },
)

TABLES = {t.name.split(":")[0]: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLE8)}

# Bavarian et al. 2022, Table 1 (large models, T=0.2, 100 samples): single-line infilling pass rate.
BAVARIAN_SINGLE_LINE = Table(
    name="Bavarian et al. Table 1: single-line infilling pass rate (PSM / SPM prompts)",
    source="[FIM] Table 1",
    columns=("PSM", "SPM"),
    rows={
        "joint, FIM 0.5": (0.550, 0.595),
        "joint, FIM 0.9": (0.616, 0.622),
        "PSM only, FIM 0.9": (0.583, 0.625),
        "SPM only, FIM 0.9": (0.023, 0.586),
    },
)

FIM_FINDINGS = (
    Finding("fim100_best_infilling", "100% FIM gives the best HumanEval-FIM (infilling) score.", "[P] §3.1.2, Fig. 3"),
    Finding(
        "fim100_worst_completion", "100% FIM gives the weakest code completion (HumanEval, MBPP).", "[P] §3.1.2, Fig. 3"
    ),
    Finding("psm50_beats_msp50", "50% PSM beats 50% MSP.", "[P] §3.1.2, Fig. 3"),
    Finding("no_l2r_cost_to_90", "FIM rates up to 90% cost nothing in left-to-right loss; 100% does.", "[FIM] §4.2"),
    Finding(
        "spm_at_least_psm",
        "SPM prompts infill at least as well as PSM prompts (SPM variant 2, trained in its own format).",
        "[FIM] Table 1",
    ),
    Finding(
        "joint_transfer", "Joint PSM+SPM training makes both prompt formats work (they transfer).", "[FIM] Table 1"
    ),
    # Table 1 (FIM 90%): PSM-only training scores .625 single-line with SPM prompts, because an SPM variant 2
    # example is a PSM example with an empty prefix; SPM-only training scores .023 with PSM prompts.
    Finding(
        "psm_only_transfers_to_spm",
        "With SPM variant 2, PSM-only training transfers to SPM prompts.",
        "[FIM] Table 1",
    ),
    Finding("spm_only_fails_psm", "SPM-only training transfers poorly to PSM prompts.", "[FIM] Table 1"),
)

# Where each evaluation task of dslib.eval.tasks is reported: (table, column); Table 5 prints "plain (CoT)".
TASK_COLUMNS = {
    "humaneval-python": (TABLE3, "Python"),
    "humaneval-cpp": (TABLE3, "C++"),
    "humaneval-java": (TABLE3, "Java"),
    "humaneval-php": (TABLE3, "PHP"),
    "humaneval-ts": (TABLE3, "TS"),
    "humaneval-cs": (TABLE3, "C#"),
    "humaneval-sh": (TABLE3, "Bash"),
    "humaneval-js": (TABLE3, "JS"),
    "mbpp": (TABLE3, "MBPP"),
    "leetcode": (TABLE5, "Overall"),
    "leetcode-cot": (TABLE5, "Overall"),
    "gsm8k": (TABLE8, "GSM8k"),
    "math": (TABLE8, "MATH"),
    "gsm-hard": (TABLE8, "GSM-Hard"),
    "svamp": (TABLE8, "SVAMP"),
    "asdiv": (TABLE8, "ASDiv"),
    "mawps": (TABLE8, "MAWPS"),
}
RELEASED_SIZES = {"1.3B": 1_346_471_936, "6.7B": 6_740_512_768, "33B": 33_342_991_360}  # Table 2's checkpoints


def nearest_size(num_parameters: int) -> str:
    """The released model size (``1.3B``, ``6.7B``, ``33B``) nearest to ``num_parameters``."""
    return min(RELEASED_SIZES, key=lambda size: abs(RELEASED_SIZES[size] - num_parameters))


def task_number(task: str, size: str, instruct: bool, column: str | None = None) -> float | None:
    """The paper's pass@1 (%) of DeepSeek-Coder-Base/-Instruct ``size`` on ``task``; None where it reports none.

    ``column`` picks a sub-score of the task's table (LeetCode's ``Easy``, ``Medium``, ``Hard``).
    """
    table, default = TASK_COLUMNS[task]
    row = f"DeepSeek-Coder-{'Instruct' if instruct else 'Base'} {size}"
    if row not in table.rows:
        return None
    value = table.get(row, column or default)
    if isinstance(value, str):  # Table 5: "plain (chain-of-thought)"
        plain, cot = value.replace(")", "").split(" (")
        value = float(cot if task.endswith("-cot") else plain)
    return value
