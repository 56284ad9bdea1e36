"""The shape every evaluation task has (DeepSeek-Coder §4), in the style of bigcode-evaluation-harness.

A task loads its problems from the files shipped in :mod:`dslib.eval.data`, builds the paper's prompt for
a base or an instruction-tuned model, says where a base model's continuation stops, turns a generation into
the completion it scores, and checks a completion by running it in the sandbox. A task whose toolchain is
missing says so through :meth:`Task.unavailable`: it is reported as unavailable, never scored as 0%.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from dslib.eval.execution import Result


class Task(ABC):
    """One benchmark of the paper's evaluation suite; ``name`` is its key in ``dslib.eval.tasks.TASKS``."""

    name: str = ""
    stop: tuple[str, ...] = ()  # where a base model's continuation is cut (the paper repository's stop words)
    timeout: float = 10.0  # seconds per program, as in the paper repository's harness

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
