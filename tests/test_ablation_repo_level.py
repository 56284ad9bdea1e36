"""The repository-level ablation, dslib.ablation's second user: its grid, the findings on hand-made numbers, and a
tiny end-to-end run at smoke scale that is reused and resumed."""

import dataclasses
import math

import numpy as np
import pytest

import dslib.ablation.repo_level as rl
import dslib.train
from dslib import ablation
from dslib.config import get_scale
from dslib.paper import REPO_FINDINGS


def test_settings_differ_only_in_repo_level_and_the_controls_seed():
    scale = get_scale("smoke")
    scales = ablation.setting_scales(rl.REPO, scale)
    assert {s.data.repo_level for s in scales.values()} == set(rl.LEVELS)
    for name, run in scales.items():
        assert dataclasses.replace(run.data, repo_level="dependency") == scale.data
        assert run.model == scale.model and run.tokenizer == scale.tokenizer and run.fim == scale.fim
        assert run.train.seed == scale.train.seed + name.endswith("_seed1")  # paired: the same seed a side
    assert {f.key for f in REPO_FINDINGS} == set(rl.COMPARISONS)


def test_sizing_sits_under_the_users_overrides():
    cpu = rl.ablation_scale("cpu")
    assert cpu.ablation.steps == rl.SIZING["cpu"]["ablation.steps"] and cpu.data.heldout_repos == rl.HELDOUT_REPOS
    assert rl.ablation_scale("cpu", ["ablation.steps=7"]).ablation.steps == 7
    assert rl.ablation_scale("smoke") == get_scale("smoke")
    window = rl.window_config(cpu)
    assert window.max_input_tokens == cpu.train.seq_len and window.crossfile_tokens == cpu.train.seq_len // 4


def _results(values: dict[str, dict[str, list[float]]]) -> dict:
    settings = {}
    for name, metrics in values.items():
        point = {"step": 10, **{m: float(np.mean(v)) for m, v in metrics.items()}, "items": metrics}
        settings[name] = {"repo_level": name.split("_")[0], "evals": [point]}
    return {"scale": "smoke", "settings": settings, "points": 40}


def _run(loss_none: float, loss_retrieval: float, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.02, 40)
    out = {"loss_none": list(loss_none + noise), "loss_retrieval": list(loss_retrieval + noise)}
    for family in ("em", "es", "id_em"):
        out |= {f"{family}_none": [0.0] * 40, f"{family}_retrieval": [0.0] * 40}
    return out


def test_findings_agree_disagree_and_too_small():
    paper_like = _results(
        {
            "dependency": _run(2.0, 1.7, 0),
            "dependency_seed1": _run(2.01, 1.71, 1),
            "random": _run(2.2, 1.9, 2),
            "file": _run(2.4, 2.1, 3),
        }
    )
    verdicts = {f["key"]: f for f in rl.findings(paper_like)}
    assert {k: f["verdict"] for k, f in verdicts.items()} == dict.fromkeys(verdicts, ablation.AGREES)
    assert verdicts["repo_beats_file"]["basis"] == "loss_retrieval"  # EM ties at 0: the loss decides

    backwards = _results({"dependency": _run(2.4, 2.5, 0), "file": _run(2.0, 2.1, 3)})
    verdicts = {f["key"]: f["verdict"] for f in rl.findings(backwards)}
    assert verdicts == {"repo_beats_file": "disagrees", "order_matters": "not run", "retrieval_helps": "disagrees"}

    # A gap between the settings no larger than the gap between two seeds is too small to tell.
    noisy = _results(
        {"dependency": _run(2.0, 1.9, 0), "dependency_seed1": _run(2.3, 2.2, 1), "file": _run(2.1, 2.0, 3)}
    )
    assert {f["key"]: f["verdict"] for f in rl.findings(noisy)}["repo_beats_file"] == ablation.TOO_SMALL


TINY = {"ablation.steps": 4, "ablation.evals": 2, "ablation.tasks": 4}


@pytest.mark.slow
def test_end_to_end_reuse_resume_and_findings(tmp_path, monkeypatch, resume_check):
    scale = get_scale("smoke", TINY)
    names = ["dependency", "file"]
    path = rl.repo_level_ablation(scale, names, tmp_path / "full", progress=False)
    results = rl.load_results(path)
    assert results["eval_steps"] == [2, 4] and results["points"] + results["skipped_points"] == 4
    assert results["repositories"] and results["window"] == scale.train.seq_len
    for name in names:
        run = results["settings"][name]
        assert run["repo_level"] == name and [e["step"] for e in run["evals"]] == [2, 4]
        last = run["evals"][-1]
        assert all(math.isfinite(last[m]) for m in rl.METRICS)
        assert all(len(last["items"][m]) == results["points"] for m in rl.METRICS)
        assert (tmp_path / "full" / name / "hf" / "config.json").exists()
    # Retrieval changes the prompt, so the ground-truth loss differs with and without it.
    last = results["settings"]["dependency"]["evals"][-1]["items"]
    assert last["loss_none"] != last["loss_retrieval"]

    judged = rl.findings(results)
    assert [f["key"] for f in judged] == [f.key for f in REPO_FINDINGS]
    by_key = {f["key"]: f for f in judged}
    assert by_key["order_matters"]["verdict"] == ablation.NOT_RUN  # random was not run
    assert all(
        by_key[k]["verdict"] in (ablation.AGREES, ablation.DISAGREES, ablation.TOO_SMALL)
        for k in by_key
        if k != "order_matters"
    )
    rows = rl.result_rows(results, judged)
    assert len(rows) == 2 * 2 * 3 + len(REPO_FINDINGS)
    assert {r["paper"] for r in rows if r["metric"] == "repo-level ablation file + retrieval: Python EM"} == {16.02}
    fig = rl.plot_repo_level_ablation(results, tmp_path / "repo.png")
    assert (tmp_path / "repo.png").stat().st_size > 10_000 and len(fig.axes[0].lines) == 2

    # More retrieved context, scored on the exported models: the grid's own budget gives the grid's losses back.
    own = results["crossfile_tokens"]
    budgets = rl.retrieval_budgets(scale, [own, 2 * own], tmp_path / "full")
    assert {(r["setting"], r["crossfile_tokens"]) for r in budgets} == {(n, b) for n in names for b in (own, 2 * own)}
    for name in names:
        last = results["settings"][name]["evals"][-1]
        at = {r["crossfile_tokens"]: r for r in budgets if r["setting"] == name}
        assert at[own]["loss_none"] == pytest.approx(last["loss_none"], abs=1e-4)
        assert at[own]["loss_retrieval"] == pytest.approx(last["loss_retrieval"], abs=1e-4)
        # Twice the budget keeps more retrieved lines and fewer in-file ones: another prompt, another loss.
        assert at[2 * own]["loss_retrieval"] != pytest.approx(at[own]["loss_retrieval"], abs=1e-6)
        assert at[2 * own]["ci95"] > 0
    with pytest.raises(FileNotFoundError, match="run the grid first"):
        rl.retrieval_budgets(scale, directory=tmp_path / "empty")

    # Reuse: finished runs are neither trained nor evaluated again.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(dslib.train, "train", no_training)
    assert rl.load_results(rl.repo_level_ablation(scale, names, tmp_path / "full", progress=False)) == results
    monkeypatch.undo()

    # Resume: a run killed between its evaluations continues from its step-2 checkpoint, to the same numbers.
    resume_check(
        lambda d: rl.load_results(rl.repo_level_ablation(scale, ["file"], d, progress=False)),
        "file",
        tmp_path / "cut",
        results,
        rl.METRICS,
    )
