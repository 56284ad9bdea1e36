"""The shape every evaluation task has (DeepSeek-Coder §4), in the style of bigcode-evaluation-harness.

A task loads its problems from the files shipped in :mod:`dslib.eval.data`, builds the paper's prompt for
a base or an instruction-tuned model, says where a base model's continuation stops, turns a generation into
the completion it scores, and checks a completion by running it in the sandbox. A task whose toolchain is
missing says so through :meth:`Task.unavailable`: it is reported as unavailable, never scored as 0%.

The helpers below are what several families share: the repository's import preamble, the chat turn of the
released Instruct models (:func:`chat_prompt`), code-block extraction, and field checks on the shipped files.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from dslib.eval.execution import Result, Status
from dslib.instruct.template import DEFAULT_SYSTEM_PROMPT, format_chat
from dslib.tokenizer import BOS

# Prepended to every Python program by the repository's harness (Evaluation/*/human_eval/evaluation.py).
PYTHON_IMPORTS = (
    "import math",
    "import re",
    "import sys",
    "import copy",
    "import datetime",
    "import itertools",
    "import collections",
    "import heapq",
    "import functools",
    "import hashlib",
    "import numpy",
    "import numpy as np",
    "import string",
    "from typing import *",
    "from collections import *",
)
# The released Instruct tokenizer's default system text (tokenizer_config.json chat_template; FACTS §5).
INSTRUCT_SYSTEM = DEFAULT_SYSTEM_PROMPT


def chat_prompt(content: str, generation_prompt: bool = False) -> str:
    """One user turn in the released Instruct chat template (:func:`dslib.instruct.format_chat`, which
    ``apply_chat_template`` renders identically), without the BOS token, which the tokenizer adds when encoding.

    The repository's HumanEval and MBPP ``eval_instruct.py`` call the template without ``add_generation_prompt``;
    LeetCode's ``vllm_inference.py`` with it, which appends ``### Response:`` and a newline.
    """
    text = format_chat([{"role": "user", "content": content}], add_generation_prompt=generation_prompt)
    return text.removeprefix(BOS)


def code_block(text: str, language: str = "python", pattern: str | None = None) -> str | None:
    """The first fenced ``language`` block of a reply (case-insensitive), or None when it has none."""
    pattern = pattern or f"```{re.escape(language.lower())}\n(.*?)```"
    found = re.findall(pattern, text, re.DOTALL | re.IGNORECASE)
    return found[0] if found else None


def require(records: Sequence[dict], fields: Iterable[str], source: str) -> list[dict]:
    """``records`` unchanged when each holds every field, else a ValueError naming the record and the field."""
    fields = tuple(fields)
    for number, record in enumerate(records, 1):
        missing = [f for f in fields if f not in record]
        if missing:
            who = record.get("task_id", record.get("idx", f"record {number}"))
            raise ValueError(f"{source}: {who} (record {number}) has no field {missing[0]!r}; needs {fields}")
    if not records:
        raise ValueError(f"{source}: no records")
    return list(records)


class Task(ABC):
    """One benchmark of the paper's evaluation suite; ``name`` is its key in ``dslib.eval.tasks.TASKS``."""

    name: str = ""
    stop: tuple[str, ...] = ()  # where a base model's continuation is cut (the paper repository's stop words)
    timeout: float = 10.0  # seconds per program, as in the paper repository's harness
    max_new_tokens: int = 500  # the repository's generation length for this benchmark
    max_new_tokens_instruct: int = 512  # the same for a chat reply (HumanEval and MBPP eval_instruct.py)
    max_input_tokens: int = 4096  # the repository's context for this benchmark
    instruct_only: bool = False  # scored for instruction-tuned models only (Table 5)

    @abstractmethod
    def problems(self) -> list[dict]:
        """Every problem, in the benchmark's order; each a dict with a unique ``task_id``."""

    @abstractmethod
    def prompt(self, problem: dict, instruct: bool = False) -> str:
        """The exact text the model is given: the base-model format, or the chat turn for Instruct models."""

    def postprocess(self, problem: dict, generation: str, instruct: bool = False) -> str:
        """The completion that :meth:`check` scores, from the raw generated text (cut at :attr:`stop`)."""
        if instruct:
            return generation
        cut = min((i for i in (generation.find(s) for s in self.stop) if i >= 0), default=len(generation))
        return generation[:cut]

    @abstractmethod
    def check(self, problem: dict, completion: str, timeout: float | None = None) -> Result:
        """Run ``completion`` against the problem's tests in the sandbox: ``Result(passed, status, detail)``."""

    def unavailable(self) -> str | None:
        """``None`` when this task can run here, else why not and the command that installs what is missing."""
        return None

    def group(self, problem: dict) -> str | None:
        """The sub-score a problem counts towards besides the overall one (LeetCode's difficulty), if any."""
        return None

    def check_all(
        self,
        pairs: Sequence[tuple[dict, str]],
        timeout: float | None = None,
        workers: int = 2,
        progress: bool = True,
    ) -> list[Result]:
        """:meth:`check` each ``(problem, completion)`` on ``workers`` threads; results in input order.

        The sandbox runs each program in its own process, so threads give real parallelism. A harness error on
        one sample becomes that sample's ``sandbox_error``; the others are still checked.
        """

        def one(pair: tuple[dict, str]) -> Result:
            try:
                return self.check(pair[0], pair[1], timeout)
            except Exception as e:  # one sample's harness failure must not lose the others
                return Result(False, Status.SANDBOX_ERROR, f"{type(e).__name__}: {e}")

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            bar = tqdm(total=len(pairs), desc=f"{self.name} tests", disable=not progress)
            results = []
            for result in pool.map(one, pairs):
                results.append(result)
                bar.update()
            bar.close()
        return results
