"""Program-aided math (PAL; Gao et al. 2023) as DeepSeek-Coder §4.3 runs it (Table 8).

Following the repository (``Evaluation/PAL-Math/run.py``): the few-shot prompt file (``prompts/math.md`` for
MATH, ``prompts/gsm8k.md`` for the others), then ``\\n\\nQuestion: {question}\\n``; the base model's continuation
is cut at ``Question`` or ``----------------``, the program is the ``python`` block that defines
``solution()``, and the answer is what ``solution()`` returns, here run in the sandbox with the repository's
5 s limit. Answers and gold are normalised and compared by :mod:`dslib.eval.tasks.math_answers`.
"""

from __future__ import annotations

import json
import re

from dslib.eval.data import read_jsonl, read_text
from dslib.eval.execution import Result, Status, run_program
from dslib.eval.tasks.base import Task, chat_prompt, require
from dslib.eval.tasks.math_answers import boxed, math_equal, normalize

SETS = ("gsm8k", "math", "gsm-hard", "svamp", "asdiv", "mawps")  # Table 8 without TabMWP (not in the source)
FIELDS = {  # the fields each set's question and gold answer are read from
    "gsm8k": ("question", "answer"),
    "math": ("problem", "solution"),
    "gsm-hard": ("input", "target"),
    "svamp": ("Body", "Question", "Answer"),
    "asdiv": ("body", "question", "answer"),
    "mawps": ("input", "target"),
}
BLOCK = re.compile(r"```python\n(.*?)def solution\(\):\n(.*?)```", re.DOTALL)
ANSWER = "@@dslib-pal-answer@@ "  # marks the line that carries solution()'s value in the program's output


def question(example: dict, data: str) -> str:
    """The question text of one record, as the repository's ``parse_question`` builds it."""
    if data == "asdiv":
        return f"{example['body'].strip()} {example['question'].strip()}".strip()
    if data == "svamp":
        body = example["Body"].strip()
        return f"{body if body.endswith('.') else body + '.'} {example['Question'].strip()}".strip()
    return example[FIELDS[data][0]].strip()


def gold(example: dict, data: str) -> str:
    """The normalised gold answer, as the repository's ``parse_ground_truth``."""
    if data == "math":
        return boxed(example["solution"])
    if data == "gsm8k":
        return normalize(example["answer"].split("####")[1])
    if data == "asdiv":
        return normalize(re.sub(r"\(.*?\)", "", example["answer"]))
    return normalize(example[FIELDS[data][-1]])


def solution_program(text: str) -> str:
    """The ``python`` block that defines ``solution()`` (what precedes it kept), or "" when there is none."""
    match = BLOCK.search(text)
    return match.group(1) + "def solution():\n" + match.group(2) if match else ""


class PAL(Task):
    """One PAL math set: ``gsm8k``, ``math``, ``gsm-hard``, ``svamp``, ``asdiv`` or ``mawps``."""

    stop = ("Question", "----------------")
    timeout = 5.0  # python_executor.py: timeout_length 5
    max_new_tokens = 512  # run.py: max_output_length 512
    max_input_tokens = 2048  # run.py: max_context_length 2048

    def __init__(self, data: str):
        if data not in SETS:
            raise ValueError(f"no PAL math set {data!r}; choose one of: {', '.join(SETS)}")
        self.name = self.data = data
        self.shots = read_text(f"pal-math/prompts/{'math' if data == 'math' else 'gsm8k'}.md")

    def problems(self) -> list[dict]:
        source = f"pal-math/datasets/{self.data}/test.json"
        rows = require(read_jsonl(source), ("idx", *FIELDS[self.data]), source)
        return [
            {
                "task_id": f"{self.data}/{r['idx']}",
                "question": question(r, self.data),
                "gt": gold(r, self.data),
                "reference": r.get("code"),  # GSM-Hard ships PAL's program for each question
            }
            for r in rows
        ]

    def prompt(self, problem: dict, instruct: bool = False) -> str:
        text = f"{self.shots}\n\nQuestion: {problem['question']}\n"
        return chat_prompt(text) if instruct else text

    def postprocess(self, problem: dict, generation: str, instruct: bool = False) -> str:
        return solution_program(super().postprocess(problem, generation))

    def program(self, completion: str) -> str:
        """The completion, then a line that prints ``str(solution())`` after :data:`ANSWER`."""
        return f"{completion}\nprint({ANSWER!r} + __import__('json').dumps(str(solution())[:1000]))\n"

    def answer(self, result: Result) -> str | None:
        """The normalised value ``solution()`` returned, read from a run's output; None when none was printed."""
        lines = [line for line in result.output.splitlines() if line.startswith(ANSWER)]
        if not lines:
            return None
        try:
            return normalize(json.loads(lines[-1][len(ANSWER) :]))
        except json.JSONDecodeError:
            return None

    def check(self, problem: dict, completion: str, timeout: float | None = None) -> Result:
        if not completion.strip():
            return Result(False, Status.FAILED, "no python block defining solution() in the generation")
        result = run_program(self.program(completion), timeout or self.timeout)
        if not result.passed:
            return result
        prediction = self.answer(result)
        if prediction is None:
            return Result(False, Status.FAILED, "solution() printed no readable answer", result.output, result.seconds)
        # run.py grades math_equal(gold, prediction): the gold answer takes the first argument.
        passed = math_equal(problem["gt"], prediction)
        detail = f"answer {prediction!r}, gold {problem['gt']!r}"
        return Result(passed, Status.PASSED if passed else Status.FAILED, detail, result.output, result.seconds)

    def reference(self, problem: dict) -> str | None:
        """A known-correct program where the set ships one (GSM-Hard), else None."""
        return problem["reference"]
