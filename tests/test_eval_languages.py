"""Multilingual HumanEval in the sandbox: for each language, the known-correct generations of five problems
(``MultiPLE.reference``, written for this project) pass their MultiPL-E tests, a wrong one fails, one that does
not compile is a compile error (a plain failure for the interpreted languages) and an endless loop times out.
All of a language's programs run in one parallel batch."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from dslib.eval import languages
from dslib.eval.execution import Result, Status, classify, run_program
from dslib.eval.tasks.base import chat_prompt
from dslib.eval.tasks.multiple import MultiPLE, extract_program
from dslib.eval.tasks.multiple_solutions import ADD

WRONG = {  # add() that subtracts
    "cpp": "    return x - y;\n",
    "java": "        return x - y;\n",
    "cs": "        return x - y;\n",
    "php": "    return $x - $y;\n}\n",
    "ts": "  return x - y;\n}\n",
    "js": "  return x - y;\n}\n",
    "sh": "    echo $(( $1 - $2 ))\n",
}
BROKEN = {  # add() that does not parse
    "cpp": "    return x +;\n",
    "java": "        return x +;\n",
    "cs": "        return x +;\n",
    "php": "    return $x +;\n}\n",
    "ts": "  return x +;\n}\n",
    "js": "  return x +;\n}\n",
    "sh": "    echo $(( $1 + $2 ))\n    if then fi\n",
}
LOOP = {
    "cpp": "    while (true) {}\n",
    "java": "        while (true) {}\n",
    "cs": "        while (true) {}\n",
    "php": "    while (true) {}\n}\n",
    "ts": "  while (true) {}\n}\n",
    "js": "  while (true) {}\n}\n",
    "sh": "    while true; do :; done\n",
}
COMPILED = {name for name, chain in languages.LANGUAGES.items() if chain.compile is not None}


def find(task: MultiPLE, marker: str) -> dict:
    return next(p for p in task.problems() if marker in p["task_id"])


@pytest.fixture(scope="module", params=sorted(languages.LANGUAGES))
def verdicts(request) -> tuple[str, dict[str, Result]]:
    """Every program of one language, run as one parallel batch: name -> result."""
    language = request.param
    reason = languages.unavailable(language)
    if reason:
        pytest.skip(reason)
    task = MultiPLE(language)
    add = find(task, ADD)
    known = [p for p in task.problems() if task.reference(p) is not None]
    cases = {p["task_id"]: (p, task.reference(p)) for p in known}
    for name, continuation in (("wrong", WRONG), ("broken", BROKEN), ("loop", LOOP)):
        cases[name] = (add, add["prompt"] + "\n" + continuation[language])
    sources = [task.program(problem, generation) for problem, generation in cases.values()]
    programs = [languages.build(language, source, compile_timeout=60) for source in sources]
    timeouts = {"loop": 1.5}
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(run_program, p, timeouts.get(name, 10.0)) for name, p in zip(cases, programs, strict=True)
        ]
        return language, {name: f.result() for name, f in zip(cases, futures, strict=True)}


def test_correct_completions_pass(verdicts):
    language, results = verdicts
    correct = {name: r for name, r in results.items() if name.startswith("HumanEval_")}
    assert len(correct) >= 5
    for name, result in correct.items():
        assert result.passed and result.status == Status.PASSED, (language, name, result)


def test_a_wrong_completion_fails(verdicts):
    language, results = verdicts
    assert (results["wrong"].passed, results["wrong"].status) == (False, Status.FAILED), results["wrong"]


def test_a_completion_that_does_not_parse_is_a_compile_error(verdicts):
    language, results = verdicts
    expected = Status.COMPILE_ERROR if language in COMPILED else Status.FAILED
    assert (results["broken"].passed, results["broken"].status) == (False, expected), results["broken"]


def test_an_endless_loop_times_out(verdicts):
    language, results = verdicts
    assert (results["loop"].passed, results["loop"].status) == (False, Status.TIMEOUT), results["loop"]
    assert results["loop"].seconds < 1.5 + 60 + 5


def test_unknown_language_and_missing_tools_are_named(monkeypatch):
    with pytest.raises(ValueError, match="unknown language 'cobol'"):
        MultiPLE("cobol")
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = languages.unavailable("cs")
    assert "mcs" in reason and "apt-get install -y mono-mcs mono-runtime" in reason
    assert f"npm install -g {languages.TYPESCRIPT}" in MultiPLE("ts").unavailable()
    with pytest.raises(RuntimeError, match="humaneval-cs cannot run here"):
        MultiPLE("cs").check(find(MultiPLE("cs"), ADD), "")


def test_base_prompt_stop_words_and_instruct_extraction():
    task = MultiPLE("java")
    add = find(task, ADD)
    assert task.name == "humaneval-java" and task.prompt(add) == add["prompt"].strip()
    generation = task.postprocess(add, "        return x + y;\n    }\n    public static void main(")
    assert generation == add["prompt"] + "\n        return x + y;"  # the prompt, a newline, the cut continuation
    assert "\nconsole.log" in MultiPLE("ts").stop and "\nexport" in MultiPLE("ts").stop
    reply = (
        "Here:\n```java\nclass Problem {\n    public static long add(long x, long y) {\n"
        "        return x + y;\n    }\n    public static void main(String[] args) {\n    }\n}\n```"
    )
    program = extract_program(add["prompt"], reply, "java")
    assert program.startswith(add["prompt"].strip().rsplit("\n", 1)[0])
    assert program.endswith("public static long add(long x, long y) {\n        return x + y;\n")
    assert task.program(add, program).count("public static long add") == 1  # a whole program, not appended


def test_instruct_prompt_is_the_repository_request_in_a_chat_turn():
    task = MultiPLE("cpp")
    add = find(task, ADD)
    # eval_instruct.py's build_deepseekcoder_instruction, with its language code and the unstripped prompt.
    request = (
        "Please help me to complete the function. Use the given packages only and DO NOT refer any new package. "
        "Please return all completed function in a codeblock. \n"
        "Here is the given code to do completion:\n```cpp\n" + add["prompt"] + "\n```"
    )
    assert task.prompt(add, instruct=True) == chat_prompt(request)


@pytest.mark.skipif(languages.unavailable("js") is not None, reason=str(languages.unavailable("js")))
def test_javascript_output_fails_a_correct_program_as_the_repository_judges():
    task = MultiPLE("js")
    add = find(task, ADD)
    assert task.check(add, task.reference(add)).passed
    printing = task.check(add, add["prompt"] + "\n  console.log('debug');\n  return x + y;\n}\n")
    assert (printing.passed, printing.status) == (False, Status.FAILED) and "debug" in printing.detail


def test_verdicts_of_build_steps_are_classified():
    base = {"timeout": False, "flood": False, "output": "", "seconds": 0.1, "exit": 1}
    step = {"exc": "CompileError", "msg": "g++ exited with status 1"}
    assert classify({**base, "exc": step}, 1).status == Status.COMPILE_ERROR
    assert classify({**base, "exc": {"exc": "StepTimeout", "msg": "run (node)"}}, 1).status == Status.TIMEOUT
    assert classify({**base, "exc": {"exc": "StepSignal", "signal": 6}}, 1).status == Status.FAILED  # assert()
    assert classify({**base, "exc": {"exc": "StepSignal", "signal": 24}}, 1).status == Status.CPU_LIMIT
    assert classify({**base, "exc": {"exc": "StepSignal", "signal": 9, "compile": True}}, 1).status == (
        Status.COMPILE_ERROR
    )
    assert classify({**base, "exc": {"exc": "StepSignal"}}, 1).status == Status.KILLED  # forged, incomplete


def test_a_python_program_still_runs_beside_builds():
    assert run_program("import sys\nassert sys.version_info >= (3, 10)", 5).passed


@pytest.mark.skipif(languages.unavailable("sh") is not None, reason=str(languages.unavailable("sh")))
def test_non_utf8_output_and_an_empty_completion_are_ordinary_verdicts():
    task = MultiPLE("sh")
    add = find(task, ADD)
    binary = task.check(add, add["prompt"] + "\n    printf '\\xff\\xfe' >&2\n    echo $(( $1 + $2 ))\n")
    assert binary.passed and "\ufffd" in binary.output
    empty = task.check(add, task.postprocess(add, ""))  # an empty function body: the tests fail
    assert (empty.passed, empty.status) == (False, Status.FAILED)
