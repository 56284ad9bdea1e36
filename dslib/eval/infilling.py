"""HumanEval single-line infilling (Fried et al. 2022; Bavarian et al. 2022), DeepSeek-Coder §4.2, Table 6.

The benchmark masks each non-blank line of each canonical solution in turn: the prefix is the prompt plus
the lines before, the suffix the lines after, the middle the line itself. "Non-blank" means the line holds
something besides whitespace (a comment line counts), which gives the 1033 tasks of InCoder and of the FIM
paper (``human-eval-infilling``'s ``single-line`` benchmark). The model sees a FIM prompt
(:func:`dslib.fim.fim_prompt`, PSM or SPM) and writes one line: its output is cut at the first newline,
scored by exact match after stripping (the paper's "line exact match"), and also run against the problem's
tests with the line in place (pass@1, as Bavarian et al. score it).

Table 6's numbers come from SantaCoder's single-line benchmark (Allal et al. 2023, MultiPL-E problems with
code-davinci-002 solutions), of which this HumanEval version is the Python, human-written-solution
counterpart; the two are comparable in kind, not in value.

:func:`heldout_line_tasks` builds the same kind of task from real files the model never saw: lines of the Python
files of the corpus's held-out repositories, inside their repository sample as training reads it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from dslib.config import EvalConfig, Scale
from dslib.data.pipeline import load_corpus, sample_files
from dslib.eval.execution import Limits, Result, run_program, run_programs
from dslib.eval.humaneval import check_program, load_problems
from dslib.eval.metrics import exact_match
from dslib.eval.tasks.base import Task
from dslib.fim import fim_prompt

NUM_TASKS = 1033  # Bavarian et al. 2022 §5.1; Fried et al. 2022
LINE = re.compile(r"[^\n]*\n|[^\n]+$")


def single_line_tasks(problems: Mapping[str, Mapping] | None = None) -> list[dict]:
    """The single-line infilling tasks: ``task_id``, ``problem_id``, ``prefix``, ``middle``, ``suffix``.

    ``prefix + middle + suffix`` is the problem's prompt followed by its canonical solution, character for
    character. Over all 164 problems there are exactly 1033 tasks.
    """
    everything = problems is None
    problems = problems or load_problems()
    tasks = []
    for problem_id, problem in problems.items():
        lines = problem["canonical_solution"].splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.strip():
                tasks.append(
                    {
                        "task_id": f"SingleLineInfilling/{problem_id}/L{i}",
                        "problem_id": problem_id,
                        "prefix": problem["prompt"] + "".join(lines[:i]),
                        "middle": line,
                        "suffix": "".join(lines[i + 1 :]),
                    }
                )
    if everything and len(tasks) != NUM_TASKS:
        raise RuntimeError(f"built {len(tasks)} single-line tasks, expected {NUM_TASKS}")
    return tasks


def heldout_line_tasks(scale: Scale | str | None = None, limit: int = 1_000, language: str = "Python") -> list[dict]:
    """Single-line infilling tasks from the held-out split (``load_corpus(scale, "heldout")``), in the shape of
    :func:`single_line_tasks`: each masks one non-blank line of a ``language`` file, with the rest of its
    repository sample (path comments included, as training reads it) as prefix and suffix.

    The ``limit`` lines are those with the smallest SHA-256 of ``repo/path:line number`` among every candidate:
    deterministic, independent of the corpus's row order, and spread over repositories and files. Raises
    ``ValueError`` when the split holds no such line.
    """
    corpus = load_corpus(scale, "heldout")
    candidates = []
    for index, row in enumerate(corpus):
        for path, lang, start, end in sample_files(row):
            if lang != language:
                continue
            offset = start
            # Lines end at "\n" only, as the benchmark's lines do (str.splitlines also splits at form feeds).
            for number, line in enumerate(LINE.findall(row["text"][start:end])):
                if line.strip():
                    key = hashlib.sha256(f"{row['repo']}/{path}:{number}".encode()).digest()
                    candidates.append((key, index, path, number, offset, offset + len(line)))
                offset += len(line)
    if not candidates:
        raise ValueError(f"the held-out split of scale {getattr(scale, 'name', scale)!r} holds no {language} line")
    tasks = []
    for _, index, path, number, start, end in sorted(candidates)[:limit]:
        row = corpus[index]
        text = row["text"]
        tasks.append(
            {
                "task_id": f"HeldoutLine/{row['repo']}/{path}/L{number}",
                "prefix": text[:start],
                "middle": text[start:end],
                "suffix": text[end:],
            }
        )
    return tasks


def first_line(text: str) -> str:
    """A single-line infill: the generated text up to its first newline."""
    return text.split("\n", 1)[0]


def infill_program(task: Mapping, problem: Mapping, line: str) -> str:
    """The problem's program with ``line`` in the masked place, followed by its tests."""
    body = task["prefix"] + first_line(line) + "\n" + task["suffix"]
    return check_program({**problem, "prompt": ""}, body)


def score_infills(
    tasks: Sequence[Mapping],
    lines: Sequence[str],
    problems: Mapping[str, Mapping] | None = None,
    execute: bool = True,
    timeout: float = 10.0,
    workers: int = 2,
    limits: Limits | None = None,
    progress: bool = True,
) -> dict:
    """Exact match (and, when ``execute``, pass@1) of one predicted line per task.

    Returns ``{"tasks": n, "exact_match": ..., "pass@1": ..., "records": [...]}``.
    """
    if len(tasks) != len(lines):
        raise ValueError(f"{len(tasks)} tasks but {len(lines)} predicted lines")
    if not tasks:
        raise ValueError("no infilling tasks to score")
    records = [
        {"task_id": t["task_id"], "line": first_line(line), "exact_match": exact_match(first_line(line), t["middle"])}
        for t, line in zip(tasks, lines, strict=True)
    ]
    scores = {"tasks": len(tasks), "exact_match": sum(r["exact_match"] for r in records) / len(records)}
    if execute:
        problems = problems or load_problems()
        missing = sorted({t["problem_id"] for t in tasks} - problems.keys())
        if missing:
            raise ValueError(f"tasks refer to problems that are not given: {missing[:5]}")
        programs = [infill_program(t, problems[t["problem_id"]], line) for t, line in zip(tasks, lines, strict=True)]
        results = run_programs(programs, timeout, workers, limits, desc="infilling tests", progress=progress)
        for record, result in zip(records, results, strict=True):
            record.update(passed=result.passed, status=result.status)
        scores["pass@1"] = sum(r["passed"] for r in records) / len(records)
    return {**scores, "records": records}


def evaluate_infilling(
    model,
    tokenizer,
    tasks: Sequence[Mapping] | None = None,
    mode: str = "psm",
    config: EvalConfig | None = None,
    execute: bool = True,
    progress: bool = True,
) -> dict:
    """Infill each task's line with ``model`` prompted in ``mode`` (``psm`` or ``spm``) and score it.

    ``tasks`` defaults to ``config.infilling_limit`` tasks spread over the 1033. Returns
    :func:`score_infills`'s dict with ``mode`` added.
    """
    from dslib.eval.generation import complete, subset

    config = config or EvalConfig()
    if tasks is None:
        tasks = subset(single_line_tasks(), config.infilling_limit)
    prompts = [fim_prompt(t["prefix"], t["suffix"], mode) for t in tasks]
    lines = complete(model, tokenizer, prompts, config, ("\n",), desc=f"infilling ({mode})", progress=progress)
    scores = score_infills(
        tasks, lines, execute=execute, timeout=config.timeout, workers=config.workers, progress=progress
    )
    return {"mode": mode, **scores}


class SingleLineInfilling(Task):
    """The benchmark in the suite's task shape (Table 6): a FIM prompt in ``mode``, the infill's first line, and
    :meth:`check` runs the problem's tests with it (pass@1). Exact match, Table 6's metric, is :func:`score_infills`'s.

    Not one of ``dslib.eval.tasks.TASKS`` (those are Tables 3, 5 and 8); ``python -m dslib.eval CHECKPOINT``
    without ``--tasks`` scores it.
    """

    stop = ("\n",)

    def __init__(self, mode: str = "psm"):
        self.mode = mode
        self.name = f"infilling-{mode}"
        self._humaneval: dict | None = None

    def problems(self) -> list[dict]:
        return single_line_tasks()

    def prompt(self, problem: dict, instruct: bool = False) -> str:
        return fim_prompt(problem["prefix"], problem["suffix"], self.mode)

    def postprocess(self, problem: dict, generation: str, instruct: bool = False) -> str:
        return first_line(generation)

    def reference(self, problem: dict) -> str:
        return problem["middle"]

    def check(self, problem: dict, completion: str, timeout: float | None = None) -> Result:
        if self._humaneval is None:
            self._humaneval = load_problems()
        program = infill_program(problem, self._humaneval[problem["problem_id"]], completion)
        return run_program(program, timeout or self.timeout)
