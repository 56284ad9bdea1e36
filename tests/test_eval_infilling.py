"""HumanEval single-line infilling: the 1033 tasks of Fried et al. / Bavarian et al., and their scoring."""

from collections import Counter

import pytest

from dslib.eval import infilling
from dslib.eval.generation import subset
from dslib.eval.humaneval import load_problems


@pytest.fixture(scope="module")
def problems():
    return load_problems()


@pytest.fixture(scope="module")
def tasks():
    return infilling.single_line_tasks()


def test_there_are_1033_tasks_with_unique_ids(tasks):
    assert len(tasks) == 1033
    assert len({t["task_id"] for t in tasks}) == 1033


def test_each_task_reassembles_the_problem_and_masks_one_non_blank_line(tasks, problems):
    for t in tasks:
        problem = problems[t["problem_id"]]
        assert t["prefix"] + t["middle"] + t["suffix"] == problem["prompt"] + problem["canonical_solution"]
        assert t["middle"].strip() and t["middle"].count("\n") <= 1
        assert t["prefix"].startswith(problem["prompt"])


def test_every_non_blank_line_is_masked_once(tasks, problems):
    """Brute force: count a problem's non-blank lines by hand and compare with its tasks."""
    per_problem = Counter(t["problem_id"] for t in tasks)
    for task_id, problem in problems.items():
        lines = problem["canonical_solution"].split("\n")
        assert per_problem[task_id] == sum(1 for line in lines if line.strip() != "")


def test_tasks_of_a_problem_subset(problems):
    some = {k: problems[k] for k in ("HumanEval/0", "HumanEval/1")}
    tasks = infilling.single_line_tasks(some)
    assert {t["problem_id"] for t in tasks} == set(some)


def test_first_line():
    assert infilling.first_line("    return x\n    more") == "    return x"
    assert infilling.first_line("\n    return x") == ""
    assert infilling.first_line("no newline") == "no newline"


def test_canonical_lines_score_full_marks_and_shifted_lines_do_not(tasks):
    every = infilling.score_infills(tasks, [t["middle"] for t in tasks], execute=False, progress=False)
    assert every["exact_match"] == 1.0 and every["tasks"] == 1033
    some = subset(tasks, 40)
    right = infilling.score_infills(some, [t["middle"].rstrip("\n") + "  " for t in some], progress=False)
    assert right["exact_match"] == 1.0 and right["pass@1"] == 1.0
    shifted = [some[(i + 1) % len(some)]["middle"] for i in range(len(some))]
    wrong = infilling.score_infills(some, shifted, progress=False)
    assert wrong["exact_match"] < 0.2 and wrong["pass@1"] < 0.5
    assert {r["status"] for r in wrong["records"]} - {"passed"}


def test_a_multi_line_answer_is_cut_to_its_first_line(tasks):
    task = tasks[0]
    result = infilling.score_infills([task], [task["middle"] + "garbage that would not compile ((("], progress=False)
    assert result["exact_match"] == 1.0 and result["pass@1"] == 1.0


def test_bad_input_fails_clearly(tasks):
    with pytest.raises(ValueError, match="tasks but"):
        infilling.score_infills(tasks[:2], ["x"], progress=False)
    with pytest.raises(ValueError, match="no infilling tasks"):
        infilling.score_infills([], [], progress=False)
