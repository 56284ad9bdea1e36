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


# --------------------------------------------------------------------------- held-out single-line infilling


def test_sample_files_splits_a_repository_sample_back_into_its_files():
    from dslib.data.pipeline import repo_sample, sample_files

    files = [("a.py", "Python", "x = 1"), ("b/c.js", "JavaScript", "f();\n"), ("d.py", "Python", "# a.py\n")]
    row = {"repo": "r", "text": repo_sample(files), "paths": [f[0] for f in files], "languages": [f[1] for f in files]}
    spans = sample_files(row)
    assert [(p, lang) for p, lang, _, _ in spans] == [(p, lang) for p, lang, _ in files]
    texts = [row["text"][a:b] for _, _, a, b in spans]
    assert texts == ["x = 1\n", "f();\n", "# a.py\n"]  # a file quoting another's header is not split there
    with pytest.raises(ValueError, match="repository 'r'.*'e.py'"):
        sample_files({**row, "paths": [*row["paths"][:2], "e.py"]})


def test_heldout_line_tasks_mask_one_line_of_a_heldout_python_file():
    from dslib.data.pipeline import load_corpus, sample_files

    heldout = load_corpus("smoke", "heldout")
    texts = set(heldout["text"])
    tasks = infilling.heldout_line_tasks("smoke", 40)
    assert tasks == infilling.heldout_line_tasks("smoke", 40)  # deterministic
    assert 0 < len(tasks) <= 40 and len({t["task_id"] for t in tasks}) == len(tasks)
    assert infilling.heldout_line_tasks("smoke", 10) == tasks[:10]  # the same order: by hash
    python = {(row["repo"], p) for row in heldout for p, lang, _, _ in sample_files(row) if lang == "Python"}
    for t in tasks:
        assert t["prefix"] + t["middle"] + t["suffix"] in texts  # a held-out repository sample, whole
        assert t["middle"].strip() and t["middle"].count("\n") <= 1 and (t["middle"].endswith("\n") or not t["suffix"])
        assert t["prefix"] == "" or t["prefix"].endswith("\n")  # a whole line
        repo, _, rest = t["task_id"].removeprefix("HeldoutLine/").partition("/")
        assert any(r == repo and rest.startswith(p + "/L") for r, p in python)


def test_language_subset_keeps_only_the_languages_files():
    from dslib.data.pipeline import language_subset, load_corpus, repo_sample, sample_files

    corpus = load_corpus("smoke", "train")
    subset = language_subset(corpus, ["Python"])
    assert 0 < len(subset) <= len(corpus) and set(subset["source"]) == {"code"}
    assert all(set(langs) == {"Python"} for langs in subset["languages"])
    for row in subset.select(range(min(3, len(subset)))):
        files = [(p, lang, row["text"][a:b]) for p, lang, a, b in sample_files(row)]
        assert repo_sample(files) == row["text"] and row["size"] == len(row["text"].encode())
    with pytest.raises(ValueError, match="no repository"):
        language_subset(corpus, ["Fortran"])
