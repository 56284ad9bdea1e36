"""MBPP (Austin et al. 2021) as DeepSeek-Coder §4.1 runs it: 3-shot, greedy, pass@1 on the 500 test problems.

The repository (``Evaluation/MBPP``: ``utils/dataset.py``, ``mbpp.py``, ``eval_instruct.py``) prompts with
task_ids 2, 3 and 4 as worked examples and scores task_ids 11–510. A base model sees
``You are an expert Python programmer, and here is your task: {text} Your code should pass these
tests:\\n\\n{tests}\\n[BEGIN]`` after the three examples (each closed by ``[DONE]``) and its continuation is cut
at ``[DONE]``; an Instruct model gets the ``>>> Problem:`` / ``>>> Test Cases:`` chat turn and its reply's
``python`` block is the code. The program is the code followed by the asserts.

The repository drops examples from the front when the prompt would leave fewer than ``max_gen_len`` tokens of
its context; at its 4096-token setting no MBPP prompt comes near that, so the prompt is always 3-shot here.
"""

from __future__ import annotations

from dslib.eval.data import read_jsonl
from dslib.eval.execution import Result, run_program
from dslib.eval.tasks.base import Task, chat_prompt, code_block, require

SHOT_IDS = (2, 3, 4)  # mbpp.jsonl rows 1..3 in the repository's code
TEST_IDS = range(11, 511)


def _clean(code: str) -> str:
    return code.replace("\r", "").replace("\t", "    ")


def base_turn(text: str, tests: list[str]) -> str:
    """One problem in the base-model format, up to ``[BEGIN]``."""
    return (
        f"You are an expert Python programmer, and here is your task: {text} "
        f"Your code should pass these tests:\n\n{chr(10).join(tests)}\n[BEGIN]"
    )


def instruct_turn(text: str, tests: list[str], code: str | None = None) -> str:
    """One problem in ``eval_instruct.py``'s format, with its solution when it is an example."""
    turn = f">>> Problem:\n{text.strip()}\n>>> Test Cases:\n{chr(10).join(tests)}\n"
    return turn + f"\n>>> Code:\n```python\n{_clean(code)}\n```" if code else turn


class MBPP(Task):
    """The ``mbpp`` task (Table 3's MBPP column)."""

    name = "mbpp"
    stop = ("[DONE]",)
    max_new_tokens = 500  # repo README: max output 500 (Instruct: 512, eval_instruct.py)

    def __init__(self):
        rows = require(read_jsonl("mbpp/mbpp.jsonl"), ("task_id", "text", "code", "test_list"), "mbpp/mbpp.jsonl")
        by_id = {int(r["task_id"]): r for r in rows}
        missing = [i for i in SHOT_IDS if i not in by_id]
        if missing:
            raise ValueError(f"mbpp/mbpp.jsonl has no few-shot example with task_id {missing[0]}")
        self.shots = [by_id[i] for i in SHOT_IDS]

    def problems(self) -> list[dict]:
        source = "mbpp/mbpp_test.jsonl"
        return require(read_jsonl(source), ("task_id", "prompt", "code", "test"), source)

    def prompt(self, problem: dict, instruct: bool = False) -> str:
        if instruct:
            examples = "\n\n".join(
                f"- Example {i}:\n{instruct_turn(s['text'], s['test_list'], s['code'])}"
                for i, s in enumerate(self.shots, 1)
            )
            return chat_prompt(
                "Please refer the given examples and generate a python function for my problem.\n"
                f"Examples are listed as follows:\n{examples}\n\n"
                f"Here is my problem:\n{instruct_turn(problem['prompt'], problem['test'])}"
            )
        shots = "".join(f"{base_turn(s['text'], s['test_list'])}\n{_clean(s['code'])}\n[DONE]\n" for s in self.shots)
        return shots + base_turn(problem["prompt"], problem["test"])

    def postprocess(self, problem: dict, generation: str, instruct: bool = False) -> str:
        if instruct:
            block = code_block(generation, "python")
            return generation if block is None else block
        return super().postprocess(problem, generation).strip()

    def reference(self, problem: dict) -> str:
        return problem["code"]

    def program(self, problem: dict, completion: str) -> str:
        """The repository's MBPP assembly: the code, a newline, the asserts (no import preamble)."""
        return completion + "\n" + "\n".join(problem["test"])

    def check(self, problem: dict, completion: str, timeout: float | None = None) -> Result:
        return run_program(self.program(problem, completion), timeout or self.timeout)
