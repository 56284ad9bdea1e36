"""The evaluation suite's tasks (Tables 3, 5, 8): registry, the repository's prompt formats, known-correct
programs through the sandbox, PAL answer grading, and bad input."""

import importlib.util

import pytest

from dslib.eval.data import read_jsonl, read_text
from dslib.eval.tasks import TABLES, TASKS, TaskNotBuilt, get_task, resolve
from dslib.eval.tasks.base import INSTRUCT_SYSTEM, chat_prompt, require
from dslib.eval.tasks.math_answers import boxed, math_equal, normalize

ISSUE_NAMES = (
    *("humaneval-python", "humaneval-cpp", "humaneval-java", "humaneval-php", "humaneval-ts", "humaneval-cs"),
    *("humaneval-sh", "humaneval-js", "mbpp", "leetcode", "leetcode-cot"),
    *("gsm8k", "math", "gsm-hard", "svamp", "asdiv", "mawps"),
)


@pytest.fixture(scope="module")
def he():
    task = get_task("humaneval-python")
    return task, {p["task_id"]: p for p in task.problems()}


@pytest.fixture(scope="module")
def mbpp():
    task = get_task("mbpp")
    return task, {p["task_id"]: p for p in task.problems()}


@pytest.fixture(scope="module")
def leetcode():
    task = get_task("leetcode")
    return task, task.problems()


# ---------------------------------------------------------------------------------------------- registry


def test_registry_names_and_tables():
    assert ISSUE_NAMES == TASKS
    assert resolve("table5") == ["leetcode", "leetcode-cot"]
    assert resolve("mbpp,table8,mbpp") == ["mbpp", *TABLES["table8"]]
    assert len(resolve("table3")) == 9
    with pytest.raises(KeyError, match="valid names: humaneval-python, "):
        get_task("humaneval-rust")
    with pytest.raises(KeyError, match="tables: table3"):
        resolve("table9")


def test_other_languages_come_from_multiple_or_say_they_are_not_built():
    if importlib.util.find_spec("dslib.eval.tasks.multiple") is None:
        with pytest.raises(TaskNotBuilt, match="humaneval-cpp.*not built") as err:
            get_task("humaneval-cpp")
        assert isinstance(err.value, ImportError)
    else:
        assert get_task("humaneval-cpp").name == "humaneval-cpp"


# ------------------------------------------------------------------------- prompts, byte for byte with the repo


def test_chat_turn_is_the_released_template():
    assert chat_prompt("hi") == INSTRUCT_SYSTEM + "\n### Instruction:\nhi\n"
    # apply_chat_template(add_generation_prompt=True) renders the released template's "### Response:" then a newline
    assert chat_prompt("hi", generation_prompt=True).endswith("\n### Instruction:\nhi\n### Response:\n")
    assert INSTRUCT_SYSTEM.startswith("You are an AI programming assistant, utilizing the Deepseek Coder model")
    assert not INSTRUCT_SYSTEM.endswith(".")


def test_humaneval_prompts(he):
    task, problems = he
    p = problems["Python/0"]
    assert task.prompt(p) == p["prompt"].strip() and task.prompt(p).endswith('    True\n    """')
    # Evaluation/HumanEval/eval_instruct.py: build_deepseekcoder_instruction (template stripped, then formatted)
    repo = (
        "\nPlease help me to complete the function. Use the given packages only and DO NOT refer any new package. "
        "Please return all completed function in a codeblock. \nHere is the given code to do completion:\n"
        "```{}\n{}\n```\n"
    )
    repo = repo.strip().format("python", p["prompt"])
    assert task.prompt(p, instruct=True) == chat_prompt(repo)


def test_mbpp_prompts(mbpp):
    task, problems = mbpp
    rows = {r["task_id"]: r for r in read_jsonl("mbpp/mbpp.jsonl")}
    # Evaluation/MBPP/utils/dataset.py and mbpp.py, with rows 1..3 (task_ids 2, 3, 4) as the examples
    shots = ""
    for i in (2, 3, 4):
        r = rows[i]
        tests, code = "\n".join(r["test_list"]), r["code"].replace("\r", "").replace("\t", "    ")
        shots += (
            f"You are an expert Python programmer, and here is your task: {r['text']} Your code should pass "
            f"these tests:\n\n{tests}\n[BEGIN]\n{code}\n[DONE]\n"
        )
    p = problems[11]
    current = (
        f"You are an expert Python programmer, and here is your task: {p['prompt']} Your code should pass these "
        f"tests:\n\n{chr(10).join(p['test'])}\n[BEGIN]"
    )
    assert task.prompt(p) == shots + current
    assert task.prompt(p).startswith("You are an expert Python programmer, and here is your task: Write a function")
    assert task.prompt(p).endswith('assert remove_Occ("PHP","P") == "H"\n[BEGIN]')
    # Evaluation/MBPP/eval_instruct.py: read_test_examples
    examples = []
    for n, i in enumerate((2, 3, 4), 1):
        r = rows[i]
        code = r["code"].replace("\r", "").replace("\t", "    ")
        body = ">>> Problem:\n{}\n>>> Test Cases:\n{}\n".format(r["text"].strip(), "\n".join(r["test_list"]))
        examples.append(f"- Example {n}:\n" + body + f"\n>>> Code:\n```python\n{code}\n```")
    mine = ">>> Problem:\n{}\n>>> Test Cases:\n{}\n".format(p["prompt"].strip(), "\n".join(p["test"]))
    repo = """
Please refer the given examples and generate a python function for my problem.
Examples are listed as follows:
{}

Here is my problem:
{}
""".strip().format("\n\n".join(examples), mine)
    assert task.prompt(p, instruct=True) == chat_prompt(repo)
    assert task.stop == ("[DONE]",)


def test_mbpp_test_file_is_mbpp_rows_11_to_510(mbpp):
    _, problems = mbpp
    rows = {r["task_id"]: r for r in read_jsonl("mbpp/mbpp.jsonl")}
    assert list(problems) == list(range(11, 511))
    assert all(rows[i]["text"] == p["prompt"] and rows[i]["test_list"] == p["test"] for i, p in problems.items())


def test_leetcode_prompts(leetcode):
    task, problems = leetcode
    p = problems[0]
    assert task.prompt(p, instruct=True) == chat_prompt(p["prompt_sft"], generation_prompt=True)
    cot = get_task("leetcode-cot").prompt(p, instruct=True)
    assert cot.endswith(
        "```\nYou need first write a step-by-step outline and then write the code.\n### Response:\n"
    ) and cot.startswith(INSTRUCT_SYSTEM + "\n### Instruction:\nYou are given a string word")
    with pytest.raises(ValueError, match="instruction-tuned"):
        task.prompt(p)
    assert task.instruct_only and task.max_new_tokens == 1024


def test_pal_prompts():
    for name, shots in (("gsm8k", "gsm8k"), ("svamp", "gsm8k"), ("math", "math")):
        task = get_task(name)
        p = task.problems()[0]
        assert task.prompt(p) == f"{read_text(f'pal-math/prompts/{shots}.md')}\n\nQuestion: {p['question']}\n"
    svamp = get_task("svamp").problems()[0]["question"]
    assert svamp == (
        "There are 87 oranges and 290 bananas in Philip's collection. If the bananas are organized into 2 groups "
        "and oranges are organized into 93 groups. How big is each group of bananas?"
    )
    assert get_task("asdiv").problems()[0]["question"] == (
        "Seven red apples and two green apples are in the basket. How many apples are in the basket?"
    )
    assert get_task("gsm8k").stop == ("Question", "----------------")


# -------------------------------------------------------------------------------- known-correct programs


def test_humaneval_canonical_solutions_pass_and_empty_fails(he):
    task, problems = he
    some = list(problems.values())[::4]  # every problem is checked by notebook 06 and test_eval_humaneval
    results = task.check_all([(p, task.reference(p)) for p in some], workers=4, progress=False)
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed][:3]
    assert not task.check(problems["Python/0"], "").passed


def test_humaneval_base_and_instruct_completions(he):
    task, problems = he
    p = problems["Python/0"]
    right = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n"
    completion = task.postprocess(p, right + "\n\ndef unrelated():\n    pass\n")
    assert completion == p["prompt"] + "\n" + right + "\n"
    assert task.check(p, completion).passed
    reply = f"Sure:\n```python\nfrom typing import List\n\ndef has_close_elements(numbers, threshold):\n{right}```\n"
    generation = task.postprocess(p, reply, instruct=True)
    assert generation == f"from typing import List\ndef has_close_elements(numbers, threshold):\n{right}\n"
    assert task.check(p, generation).passed
    assert task.postprocess(p, "no code here", instruct=True) == p["prompt"] + "\nno code here"


def test_mbpp_reference_code_passes_except_the_known_broken_test(mbpp):
    """499 of 500 pass; task 367's asserts use ``root`` from its ``test_setup_code``, which the repository's
    harness (and so ours) never runs: a known broken MBPP test."""
    task, problems = mbpp
    pairs = [(p, task.reference(p)) for p in problems.values()]
    results = task.check_all(pairs, workers=4, progress=False)
    failed = {p["task_id"]: r for (p, _), r in zip(pairs, results, strict=True) if not r.passed}
    assert set(failed) == {367}
    assert "name 'root' is not defined" in failed[367].detail


def test_mbpp_completions(mbpp):
    task, problems = mbpp
    p = problems[11]
    code = "def remove_Occ(s, ch):\n    i = s.find(ch)\n    s = s[:i] + s[i + 1:] if i >= 0 else s\n"
    code += "    j = s.rfind(ch)\n    return s[:j] + s[j + 1:] if j >= 0 else s"
    assert task.postprocess(p, "\n" + code + "\n[DONE]\nYou are an expert") == code
    assert task.check(p, task.postprocess(p, code + "[DONE]")).passed
    assert task.postprocess(p, f"Here:\n```Python\n{code}\n```", instruct=True) == code + "\n"
    assert not task.check(p, "def remove_Occ(s, ch):\n    return s").passed


def test_leetcode_correct_solution_passes_and_wrong_fails(leetcode):
    task, problems = leetcode
    p = problems[0]
    assert p["task_id"].endswith("minimum-number-of-pushes-to-type-word-i") and task.group(p) == "Easy"
    right = "class Solution:\n    def minimumPushes(self, word: str) -> int:\n"
    right += "        return sum(i // 8 + 1 for i in range(len(word)))"
    wrong = "class Solution:\n    def minimumPushes(self, word: str) -> int:\n        return len(word)"
    reply = f"Outline: group the letters by eight.\n```python\n{right}\n```\nThat is all."
    assert task.postprocess(p, reply, instruct=True) == right
    assert task.check(p, task.postprocess(p, reply, instruct=True)).passed
    assert not task.check(p, wrong).passed
    # A reply that carries on from the template's indentation is appended to the template's code.
    tail = "\n        return sum(i // 8 + 1 for i in range(len(word)))"
    assert task.check(p, task.postprocess(p, tail, instruct=True)).passed
    unclosed = "```python\nclass Solution:\n    pass"  # evaluate_leetcode.py keeps such a reply whole
    assert task.postprocess(p, unclosed, instruct=True) == unclosed
    assert task.postprocess(p, "[PYTHON]\nx = 1\n[/PYTHON]", instruct=True) == "x = 1"


# ------------------------------------------------------------------------------------------ PAL grading


def test_normalize_and_boxed():
    assert boxed(r"so the answer is $\boxed{\frac{1}{2}}$.") == r"\frac{1}{2}"
    assert boxed(r"$\boxed{575\text{ students}}$") == "575"
    assert boxed(r"is $\boxed{39^\circ}$.") == "39"
    assert normalize(r"\dfrac12") == r"\frac{1}{2}"
    assert normalize("3/4") == r"\frac{3}{4}"
    assert normalize(r"\$18.00") == "18"
    assert normalize("k = 5") == "5"
    assert normalize(r"50\%") == "50"
    assert math_equal("0.5", "50") and math_equal("1,000", "1000.0") and not math_equal("3", "4")
    assert math_equal("(1, 4.5)", r"(1,\frac{9}{2})")
    assert math_equal(r"\frac{x}{7}+\frac{2}{7}", r"\frac{x+2}{7}")


PAL_CASES = [  # (set, idx, a right program, a wrong one): answers as int, float, Fraction, LaTeX, tuple
    ("gsm8k", 0, "    return (16 - 3 - 4) * 2", "    return 16 * 2"),
    ("math", 2, "    from fractions import Fraction\n    return Fraction(9, 7)", "    return '7/9'"),
    ("math", 2, "    return r'\\frac{9}{7}'", "    return 9 // 7"),
    ("math", 2, "    return 9 / 7", "    return 1.3"),
    ("math", 175, "    return 575", "    return 576"),
    ("math", 1673, "    return 39.0", "    return 141"),
    ("math", 61, "    return r'\\sqrt{x}'", "    return 'x'"),
    ("math", 98, "    return (9, 11)", "    return (11, 9)"),
    ("math", 4459, "    return r'\\begin{pmatrix} 6 \\\\ 3 \\\\ 0 \\end{pmatrix}'", "    return 'none'"),
    ("svamp", 0, "    return 290 / 2", "    return 87 / 93"),
    ("asdiv", 0, "    return 7 + 2", "    return 7 * 2"),
    ("mawps", 0, "    return 70 - 27", "    return 70 + 27"),
]


@pytest.fixture(scope="module")
def pal_problems():
    return {name: {p["task_id"]: p for p in get_task(name).problems()} for name in {c[0] for c in PAL_CASES}}


@pytest.mark.parametrize(("data", "idx", "right", "wrong"), PAL_CASES)
def test_pal_grades_hand_written_programs_against_gold(pal_problems, data, idx, right, wrong):
    task = get_task(data)
    problem = pal_problems[data][f"{data}/{idx}"]
    reply = f"\n```python\ndef solution():\n{right}\n```\n\n-----------"
    program = task.postprocess(problem, reply + "-----\n\nQuestion: next")
    assert program == f"def solution():\n{right}\n"
    result = task.check(problem, program)
    assert result.passed, result.detail
    wrong_result = task.check(problem, f"def solution():\n{wrong}\n")
    assert not wrong_result.passed and wrong_result.status == "failed"


def test_gsm_hard_gold_programs_reproduce_gold():
    task = get_task("gsm-hard")
    problems = task.problems()[::10]
    results = task.check_all([(p, task.reference(p)) for p in problems], workers=4, progress=False)
    assert all(r.passed for r in results)


def test_pal_bad_programs_fail_with_a_reason():
    task = get_task("gsm8k")
    problem = task.problems()[0]
    assert task.postprocess(problem, "no code at all") == ""
    assert "no python block" in task.check(problem, "").detail
    assert task.check(problem, "def solution():\n    raise ValueError('x')\n").detail.startswith("ValueError")
    looping = task.check(problem, "def solution():\n    while True:\n        pass\n", timeout=1.0)
    assert looping.status in ("timeout", "cpu_limit")


# ---------------------------------------------------------------------------------------------- bad input


def test_non_utf8_output_is_a_sample_not_a_crash(he):
    task, problems = he
    p = problems["Python/2"]
    noisy = p["prompt"] + "    import sys\n    sys.stdout.buffer.write(b'\\xff\\xfe\\x80')\n    sys.stdout.flush()\n"
    noisy += "    return number % 1.0\n"
    assert task.check(p, noisy).passed
    pal = get_task("gsm8k")
    g = pal.problems()[0]
    program = "import sys\ndef solution():\n    sys.stdout.buffer.write(b'\\xc3\\x28\\xff\\n')\n    return 18\n"
    assert pal.check(g, program).passed


def test_a_task_file_missing_a_field_is_named(monkeypatch):
    with pytest.raises(ValueError, match=r"x.jsonl: 12 \(record 2\) has no field 'test'"):
        require([{"task_id": 11, "test": []}, {"task_id": 12}], ("task_id", "test"), "x.jsonl")
    from dslib.eval.tasks import mbpp as mbpp_module

    rows = [{k: v for k, v in r.items() if k != "code"} for r in read_jsonl("mbpp/mbpp_test.jsonl")[:3]]
    monkeypatch.setattr(mbpp_module, "read_jsonl", lambda name: rows if "test" in name else read_jsonl(name))
    with pytest.raises(ValueError, match="mbpp/mbpp_test.jsonl: 11 .* no field 'code'"):
        get_task("mbpp").problems()


def test_pal_answer_line_is_found_among_other_output():
    task = get_task("mawps")
    problem = task.problems()[0]
    chatty = (
        "def solution():\n    print('thinking... 42')\n    print('\\n'.join(map(str, range(300))))\n    return 43\n"
    )
    result = task.check(problem, chatty)
    assert result.passed and result.detail == "answer '43', gold '43'"


def test_single_line_infilling_in_task_shape():
    from dslib.eval.infilling import SingleLineInfilling

    task = SingleLineInfilling("spm")
    problems = task.problems()[:6]
    assert len(task.problems()) == 1033 and task.postprocess(problems[0], "x = 1\ny = 2") == "x = 1"
    assert task.prompt(problems[0]).startswith("<｜fim▁begin｜><｜fim▁hole｜>" + problems[0]["suffix"])
    results = task.check_all([(p, task.reference(p)) for p in problems], progress=False)
    assert all(r.passed for r in results)
    assert not task.check(problems[0], "    return None").passed
