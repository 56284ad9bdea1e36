"""The LeetCode Contest benchmark of DeepSeek-Coder §4.1 (Table 5): 180 problems, Instruct models, pass@1.

Following the repository (``Evaluation/LeetCode``: ``vllm_inference.py``, ``evaluate_leetcode.py``): the
model gets the problem's ``prompt_sft`` as one chat turn with the generation prompt, plus, for
``leetcode-cot``, the chain-of-thought sentence; the code is the reply's ``python`` block (a reply that goes
on from the template's indentation is appended to the template's code), and the program is the import
preamble, the code and the problem's 100 test cases. Scores are reported overall and per difficulty.
"""

from __future__ import annotations

import re

from dslib.eval.data import read_jsonl
from dslib.eval.execution import Result, run_program
from dslib.eval.tasks.base import PYTHON_IMPORTS, Task, chat_prompt, require

DATA = "leetcode/20240121-Jul.jsonl"
# vllm_inference.py's wording, which differs from the paper's "You need first to write ..." (FACTS §6d).
COT = "\nYou need first write a step-by-step outline and then write the code."
IMPORTS = (*PYTHON_IMPORTS, "from functools import *")  # LeetCode/human_eval/evaluation.py adds functools
FALLBACK_SPLIT = re.compile("\ndef|\nclass|\nif|\n#|\nprint")


def python_code(text: str) -> str:
    """``evaluate_leetcode.py``'s ``extract_python_code``: the first fenced block, else the text up to a stop word.

    Raises IndexError when a ``python`` fence has no closed block (the caller then keeps the whole reply).
    """
    text = text.replace("[PYTHON]", "```python").replace("[/PYTHON]", "```")
    if "```python" in text:
        return re.findall(r"```python\n(.*?)\n```", text, flags=re.DOTALL)[0]
    return FALLBACK_SPLIT.split(text)[0]


class LeetCode(Task):
    """The ``leetcode`` task; ``cot=True`` is ``leetcode-cot``."""

    instruct_only = True
    max_new_tokens = max_new_tokens_instruct = 1024  # vllm_inference.py: max_tokens 1024, max_model_len 4096

    def __init__(self, cot: bool = False):
        self.cot = cot
        self.name = "leetcode-cot" if cot else "leetcode"

    def problems(self) -> list[dict]:
        return require(read_jsonl(DATA), ("task_id", "prompt_sft", "test", "meta"), DATA)

    def prompt(self, problem: dict, instruct: bool = False) -> str:
        if not instruct:
            raise ValueError(f"{self.name} is scored for instruction-tuned models only (Table 5): use instruct=True")
        return chat_prompt(problem["prompt_sft"] + (COT if self.cot else ""), generation_prompt=True)

    def postprocess(self, problem: dict, generation: str, instruct: bool = True) -> str:
        try:
            if generation.startswith("\n        "):
                return python_code(problem["prompt_sft"]).strip() + "\n" + generation
            return python_code(generation)
        except IndexError:
            return generation

    def group(self, problem: dict) -> str:
        return problem["meta"]["difficulty"]

    def program(self, problem: dict, completion: str) -> str:
        return "\n".join(IMPORTS) + "\n" + completion + "\n" + problem["test"] + "\n"

    def check(self, problem: dict, completion: str, timeout: float | None = None) -> Result:
        return run_program(self.program(problem, completion), timeout or self.timeout)
