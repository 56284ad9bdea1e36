"""dslib.ablation through its first user, the FIM ablation (DeepSeek-Coder §3.1.2, Figure 3): the grid, task
fitting, the middle loss against a brute-force reference, the findings rule on hand-made curves, and a tiny
end-to-end run that is reused, resumed and redone exactly when it should be."""

import dataclasses
import math
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.collections import PathCollection

import dslib.ablation.fim as ex
import dslib.ablation.fim_findings as ff
import dslib.train
from dslib import ablation
from dslib.config import AblationConfig, ModelConfig, get_scale
from dslib.eval.generation import encode
from dslib.eval.humaneval import load_problems
from dslib.eval.infilling import single_line_tasks
from dslib.eval.likelihood import middle_losses, middle_token_losses
from dslib.fim import fim_prompt
from dslib.model import Transformer
from dslib.paper import FIM_FINDINGS
from dslib.tokenizer import encode_text, ensure_tokenizer, train_tokenizer

# ------------------------------------------------------------------------------------------------- the grid


def test_grid_is_the_issues_grid():
    # Issue 9: the paper's four (FIM 0%, 50% PSM, 100% PSM, 50% MSP), 50% SPM, 50% joint PSM+SPM, and the PSM
    # rate sweep 0.25 / 0.5 / 0.9 (Bavarian et al.); psm_0.5 serves both.
    assert ex.FIM_GRID == {
        "fim_0": (0.0, "psm"),
        "psm_0.5": (0.5, "psm"),
        "psm_1.0": (1.0, "psm"),
        "msp_0.5": (0.5, "msp"),
        "spm_0.5": (0.5, "spm"),
        "joint_0.5": (0.5, {"psm": 0.5, "spm": 0.5}),
        "psm_0.25": (0.25, "psm"),
        "psm_0.9": (0.9, "psm"),
    }
    assert ex.PAPER_SETTINGS == ("fim_0", "psm_0.5", "psm_1.0", "msp_0.5")
    assert {ex.FIM_GRID[s][0] for s in ex.RATE_SWEEP} == {0.0, 0.25, 0.5, 0.9, 1.0}
    assert {f.key for f in FIM_FINDINGS} == set(ff.COMPARISONS)


def test_settings_differ_only_in_fim_rate_mode_and_the_controls_seed():
    scale = get_scale("smoke")
    scales = ablation.setting_scales(ex.FIM, scale)
    assert list(scales) == [*ex.FIM_GRID, ex.CONTROL]
    for name, run in scales.items():
        assert dataclasses.replace(run.fim, fim_rate=0.5, mode="psm") == dataclasses.replace(scale.fim)
        assert (run.fim.fim_rate, run.fim.mode) == ex.FIM_GRID.get(name, ex.FIM_GRID["fim_0"])
        assert run.model == scale.model and run.data == scale.data and run.tokenizer == scale.tokenizer
        assert run.train.max_steps == scale.ablation.steps
        assert run.train.tokens_per_step == scale.train.tokens_per_step
        assert run.train.seed == scale.train.seed + (name == ex.CONTROL)
    with pytest.raises(ValueError, match="unknown FIM ablation settings"):
        ablation.setting_scales(ex.FIM, scale, ["psm_0.7"])


def test_the_grid_takes_its_seeds_and_settings_from_the_config():
    scale = get_scale("smoke", {"ablation.seeds": 3, "ablation.settings": ["fim_0", "psm_1.0"]})
    scales = ablation.setting_scales(ex.FIM, scale)
    # seed by seed, so an interrupted grid has whole seeds; no extra control once there are seeds
    assert list(scales) == ["fim_0", "psm_1.0", "fim_0_seed1", "psm_1.0_seed1", "fim_0_seed2", "psm_1.0_seed2"]
    assert [scales[f"psm_1.0{s}"].train.seed for s in ("", "_seed1", "_seed2")] == [0, 1, 2]
    assert {scales[n].fim.fim_rate for n in ("psm_1.0", "psm_1.0_seed2")} == {1.0}
    assert ex.FIM.settings["psm_1.0_seed2"].control_of == "psm_1.0"
    with pytest.raises(ValueError, match="AblationConfig.settings"):
        ex.grid(get_scale("smoke", {"ablation.settings": ["psm_0.7"]}))
    with pytest.raises(ValueError, match="more than the grid's"):
        ex.grid(get_scale("smoke", {"ablation.seeds": ex.MAX_SEEDS + 1}))


@given(steps=st.integers(1, 5000), evals=st.integers(1, 20))
@settings(max_examples=200, deadline=None)
def test_every_evaluation_step_gets_a_checkpoint(steps, evals):
    config = AblationConfig(steps=steps, evals=evals)
    points = ablation.eval_steps(config)
    train = ablation.setting_scale(
        get_scale("smoke", {"ablation.steps": steps, "ablation.evals": evals}), ablation.Setting()
    ).train
    assert points[-1] == steps and points == sorted(set(points)) and len(points) <= evals
    # train() checkpoints every checkpoint_every steps and at max_steps: each segment must end on one.
    assert all(p % train.checkpoint_every == 0 or p == train.max_steps for p in points)


def test_evaluation_steps_by_hand():
    assert ablation.eval_steps(AblationConfig(steps=12, evals=2)) == [6, 12]
    assert ablation.eval_steps(AblationConfig(steps=10, evals=3)) == [3, 6, 10]
    assert ablation.eval_steps(AblationConfig(steps=8000, evals=8))[:2] == [1000, 2000]


# ------------------------------------------------------------------------------------ tasks and middle loss


@lru_cache(maxsize=1)
def tiny_tokenizer():
    problems = load_problems().values()
    return train_tokenizer((p["prompt"] + p["canonical_solution"] for p in problems), vocab_size=600)


@lru_cache(maxsize=1)
def tiny_model():
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=640,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        bos_token_id=tok.token_to_id("<｜begin▁of▁sentence｜>"),
        eos_token_id=tok.token_to_id("<｜end▁of▁sentence｜>"),
    )
    return Transformer(config).eval()


@pytest.mark.parametrize("limit", [40, 64, 100, 200, 10_000])
def test_fit_task_cuts_prefix_left_and_suffix_right_to_the_window(limit):
    tok = tiny_tokenizer()
    for task in single_line_tasks()[::97]:
        fitted = ex.fit_task(task, tok, limit)
        middle = len(encode_text(tok, [task["middle"]])[0])
        if fitted is None:
            assert limit - middle - ex.PROMPT_SPECIALS - ex.TOKEN_SLACK < ex.MIN_CONTEXT
            continue
        assert fitted["middle"] == task["middle"] and fitted["task_id"] == task["task_id"]
        assert task["prefix"].endswith(fitted["prefix"]) and task["suffix"].startswith(fitted["suffix"])
        for mode in ("psm", "spm"):
            prompt = encode(tok, fim_prompt(fitted["prefix"], fitted["suffix"], mode))
            assert len(prompt) + middle <= limit
        if limit == 10_000:
            assert fitted == task  # a task that fits is left whole


def test_middle_loss_matches_an_unbatched_reference():
    tok, model = tiny_tokenizer(), tiny_model()
    tasks = [ex.fit_task(t, tok, 200) for t in single_line_tasks()[:: 1033 // 7]]
    for mode in ("psm", "spm"):
        batched = middle_losses(model, tok, tasks, mode, batch_size=3)
        per_token = middle_token_losses(model, tok, tasks, mode, batch_size=3)
        for task, loss, losses in zip(tasks, batched, per_token, strict=True):
            # Reference: the whole training-format string, one sequence, no padding; the log-probability
            # of each middle token by hand.
            prompt = encode(tok, fim_prompt(task["prefix"], task["suffix"], mode))
            middle = encode_text(tok, [task["middle"]])[0]
            with torch.no_grad():
                logp = F.log_softmax(model(torch.tensor([prompt + middle]))[0].double(), -1)
            nll = [-logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(middle)]
            assert losses == pytest.approx(nll, rel=1e-5)
            assert loss == pytest.approx(sum(nll) / len(nll), rel=1e-5)


# ----------------------------------------------------------------------------------- findings on curves


def curves(final: dict[str, dict[str, list[float]]], earlier: dict | None = None) -> dict:
    """A results dict as fim_ablation writes it, from each setting's per-item values at its last evaluation."""
    runs = {}
    for name, items in final.items():
        point = {"step": 10, **{m: float(np.mean(v)) for m, v in items.items()}, "items": items}
        runs[name] = {"evals": [*(earlier or {}).get(name, []), point], "fim_rate": 0.5, "mode": "psm"}
    return {"scale": "test", "settings": runs}


def em(hits: int, n: int = 100) -> list[float]:
    return [1.0] * hits + [0.0] * (n - hits)


def loss(level: float, n: int = 100, spread: float = 0.01) -> list[float]:
    return list(level + spread * np.sin(np.arange(n)))  # paired items: the same wiggle in every run


def verdicts(results: dict) -> dict[str, str]:
    return {f["key"]: f["verdict"] for f in ff.fim_findings(results)}


def paper_like() -> dict[str, dict[str, list[float]]]:
    """The paper's and Bavarian et al.'s picture: FIM helps infilling, 100% is best there and worst at
    completion, PSM beats MSP, rates up to 90% cost no left-to-right loss, SPM infills at least as well as PSM,
    joint training works in both formats, a PSM-only model handles SPM prompts and an SPM-only model fails PSM
    prompts."""
    spec = {  # setting: EM PSM, EM SPM, middle loss PSM, middle loss SPM, L2R loss
        "fim_0": (0, 0, 5.0, 5.0, 3.000),
        "psm_0.25": (20, 15, 3.5, 3.6, 3.001),
        "psm_0.5": (30, 25, 3.2, 3.3, 3.002),
        "psm_0.9": (40, 35, 3.0, 3.1, 3.003),
        "psm_1.0": (60, 50, 2.8, 2.9, 3.300),
        "msp_0.5": (10, 8, 4.0, 4.1, 3.002),
        "spm_0.5": (2, 40, 4.8, 3.0, 3.002),
        "joint_0.5": (30, 32, 3.2, 3.1, 3.002),
        ex.CONTROL: (1, 0, 5.01, 5.01, 3.001),
    }
    return {
        name: {
            "infill_em_psm": em(e_psm),
            "infill_em_spm": em(e_spm),
            "middle_loss_psm": loss(m_psm),
            "middle_loss_spm": loss(m_spm),
            "l2r_loss": loss(l2r),
        }
        for name, (e_psm, e_spm, m_psm, m_spm, l2r) in spec.items()
    }


def test_findings_agree_with_a_paper_like_run():
    found = ff.fim_findings(curves(paper_like()))
    assert {f["key"]: f["verdict"] for f in found} == {f.key: ablation.AGREES for f in FIM_FINDINGS}
    basis = {f["key"]: f["basis"] for f in found}
    assert basis["fim100_best_infilling"] == "infill_em_psm" and basis["no_l2r_cost_to_90"] == "l2r_loss"
    assert basis["fim100_worst_completion"] == "l2r_loss"  # no HumanEval at this scale


def test_findings_disagree_when_the_numbers_go_the_other_way():
    run = paper_like()
    run["psm_1.0"] = run["msp_0.5"] | {"l2r_loss": loss(2.9)}  # 100% FIM: weak infilling, the best completion
    run["msp_0.5"] = paper_like()["psm_1.0"] | {"l2r_loss": loss(3.0)}
    run["psm_0.9"]["l2r_loss"] = loss(3.2)  # 90% costs 6.7%, beyond the 1% tolerance
    run["joint_0.5"]["infill_em_spm"] = em(0)  # joint training fails SPM prompts
    run["joint_0.5"]["middle_loss_spm"] = loss(5.5)
    run["spm_0.5"] = run["psm_0.5"] | {"infill_em_psm": em(45)}  # an SPM-only model better at PSM prompts,
    # and worse with its own SPM prompts than PSM with PSM prompts (3.3 against 3.2 nats)
    run["psm_0.5"] = run["psm_0.5"] | {"infill_em_spm": em(0), "middle_loss_spm": loss(5.5)}  # PSM-only fails SPM
    assert verdicts(curves(run)) == {f.key: ablation.DISAGREES for f in FIM_FINDINGS}


def test_exact_match_ties_fall_back_to_the_middle_loss():
    run = paper_like()
    for name in run:  # tiny models: nobody infills a line exactly
        run[name]["infill_em_psm"] = run[name]["infill_em_spm"] = em(0)
    found = {f["key"]: f for f in ff.fim_findings(curves(run))}
    assert found["fim100_best_infilling"]["verdict"] == ablation.AGREES
    assert found["fim100_best_infilling"]["basis"] == "middle_loss_psm"
    assert found["fim100_best_infilling"]["by_metric"] == {
        "infill_em_psm": ablation.TOO_SMALL,
        "middle_loss_psm": ablation.AGREES,
    }
    assert found["joint_transfer"]["basis"] == "middle_loss"


def test_a_finding_no_metric_decides_shows_every_comparison():
    run = paper_like()
    for name in run:  # exact match all zero, and 100% FIM no better than 50% PSM by the middle loss
        run[name]["infill_em_psm"] = run[name]["infill_em_spm"] = em(0)
    run["psm_1.0"]["middle_loss_psm"] = run["psm_0.5"]["middle_loss_psm"]
    found = {f["key"]: f for f in ff.fim_findings(curves(run))}["fim100_best_infilling"]
    assert found["verdict"] == ablation.TOO_SMALL
    assert found["basis"] == "infill_em_psm / middle_loss_psm"
    assert found["evidence"].startswith("infill_em_psm: psm_1.0 0.000 vs fim_0 0.000")
    assert "middle_loss_psm: psm_1.0" in found["evidence"]


def test_everything_is_too_small_to_tell_without_a_fim_effect():
    run = paper_like()
    for name in run:  # every model alike, up to noise
        run[name] = {m: (em(1) if m.startswith("infill") else loss(4.0)) for m in run[name]}
    run["psm_1.0"]["middle_loss_psm"] = loss(3.0)  # a difference alone does not make a finding
    found = ff.fim_findings(curves(run))
    assert all(f["verdict"] == ablation.TOO_SMALL for f in found)
    assert all("no clear FIM effect" in f["evidence"] for f in found)


def test_differences_within_noise_are_too_small_to_tell():
    # Sampling noise: 3 vs 1 hits out of 100 tasks is below two paired standard errors.
    c = ablation.compare(em(3), em(1), ex.METRICS["infill_em_psm"])
    assert c["sign"] == 0 and c["se"] == pytest.approx(np.std([1.0] * 2 + [0.0] * 98, ddof=1) / 10)
    assert ablation.compare(em(30), em(1), ex.METRICS["infill_em_psm"])["sign"] == 1
    # The floor: a loss 0.5% lower is never clear, however small its standard error.
    assert ablation.compare(loss(2.985, spread=0), loss(3.0, spread=0), ex.METRICS["l2r_loss"])["sign"] == 0
    assert ablation.compare(loss(2.9, spread=0), loss(3.0, spread=0), ex.METRICS["l2r_loss"])["sign"] == 1
    # The same 0.1 gain with item-to-item noise of ±2 nats is within two standard errors (0.28).
    assert ablation.compare(loss(2.9, spread=2), loss(3.0, spread=0), ex.METRICS["l2r_loss"])["sign"] == 0
    # The seed gap: a gain no larger than the distance between two seeds of FIM 0% is too small to tell.
    run = paper_like()
    run[ex.CONTROL]["middle_loss_psm"] = loss(3.5)  # reseeding alone moved the middle loss by 1.5 nats
    for name in run:
        run[name]["infill_em_psm"] = em(0)
    found = {f["key"]: f for f in ff.fim_findings(curves(run))}
    assert ablation.seed_gap(ex.FIM, curves(run), "middle_loss_psm") == pytest.approx(1.5)
    assert found["psm50_beats_msp50"]["by_metric"]["middle_loss_psm"] == ablation.TOO_SMALL  # 0.8 < 1.5


def test_no_cost_needs_a_clear_bound_and_missing_runs_are_not_run():
    run = paper_like()
    run["psm_0.9"]["l2r_loss"] = loss(3.02, spread=0.5)  # +0.7% on average, but too noisy to bound below 1%
    assert verdicts(curves(run))["no_l2r_cost_to_90"] == ablation.TOO_SMALL
    partial = {k: v for k, v in paper_like().items() if k in ("fim_0", "psm_0.5")}
    found = {f["key"]: f for f in ff.fim_findings(curves(partial))}
    assert (
        found["psm50_beats_msp50"]["verdict"] == ablation.NOT_RUN
        and "msp_0.5" in found["psm50_beats_msp50"]["evidence"]
    )


def test_tables_rows_and_figure(tmp_path):
    earlier = {name: [{"step": 5, "infill_em_psm": 0.0, "l2r_loss": 4.0}] for name in paper_like()}
    results = curves(paper_like(), earlier)
    table = {row["setting"]: row for row in ex.final_table(results)}
    assert table["psm_1.0"]["infill_em_psm"] == 0.6 and table["psm_1.0"]["step"] == 10
    rows = ex.result_rows(results, ff.fim_findings(results))
    assert len(rows) == 3 * len(ex.FIM_GRID) + len(FIM_FINDINGS)  # the seed control is not a result
    assert all({"metric", "ours", "paper", "source", "note"} <= row.keys() for row in rows)
    fig = ex.plot_fim_ablation(results, tmp_path / "fim.png")
    assert (tmp_path / "fim.png").stat().st_size > 10_000
    assert len(fig.axes[0].lines) == len(results["settings"])
    # Evaluated once: each metric by setting, a dot per run and a bar at the mean of each setting's seeds.
    once = curves(paper_like())
    fig = ex.plot_fim_ablation(once, tmp_path / "once.png")
    bases = [n for n in once["settings"] if not ex.SETTINGS[n].control_of]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == bases
    dots = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == len(once["settings"])


def test_seeds_pool_into_the_band_and_say_how_many_would_decide():
    # Two seeds per setting; seed means 3.0/3.2 (fim_0) and 2.88/3.08 (psm_0.5): pooled seed sd = 0.1414 by hand.
    runs = {
        "fim_0": loss(3.0, spread=0),
        "fim_0_seed1": loss(3.2, spread=0),
        "psm_0.5": loss(2.88, spread=0),
        "psm_0.5_seed1": loss(3.08, spread=0),
    }
    results = curves({n: {"l2r_loss": v} for n, v in runs.items()})
    assert ablation.seed_sd(ex.FIM, results, "l2r_loss") == pytest.approx(math.sqrt(0.04 / 2))
    c, text = ablation.findings.compare_settings(ex.FIM, results, "psm_0.5", "fim_0", "l2r_loss")
    assert c["gain"] == pytest.approx(0.12) and c["seeds"] == (2, 2)
    assert c["band"] == pytest.approx(2 * math.sqrt(0.02) * math.sqrt(1 / 2 + 1 / 2)) and c["sign"] == 0
    # Z·sd·√(2/n) < 0.12 with se = 0: n > 2·0.02·4 / 0.0144 = 11.1
    assert c["seeds_needed"] == 12 and "~12 seeds" in text
    # A gain within the floor cannot be decided by seeds.
    assert ablation.seeds_needed({"gain": 0.01, "se": 0.0, "floor": 0.03}, 0.1) is None


def test_the_primary_metric_decides_at_a_named_scale():
    results = curves(paper_like()) | {"scale": "cpu"}  # exact match agrees, but cpu is decided on the loss
    results["settings"]["psm_1.0"]["evals"][-1]["items"]["middle_loss_psm"] = loss(3.2)
    found = {f["key"]: f for f in ff.fim_findings(results)}["fim100_best_infilling"]
    assert found["basis"] == "middle_loss_psm" and found["verdict"] == ablation.TOO_SMALL
    assert found["by_metric"]["infill_em_psm"] == ablation.AGREES
    gpu = {f["key"]: f for f in ff.fim_findings(curves(paper_like()) | {"scale": "gpu"})}
    assert gpu["fim100_best_infilling"]["verdict"] == ablation.NOT_RUN  # pass@1 was not evaluated
    assert all(set(p) == {"smoke", "cpu", "gpu", "paper"} for p in ff.PRIMARY.values())


# ------------------------------------------------------------------------------------------- end to end


TINY = {
    "ablation.steps": 4,
    "ablation.evals": 2,
    "ablation.tasks": 4,
    "ablation.generation_tasks": 2,
    "ablation.heldout_lines": 3,
    "ablation.heldout_sequences": 8,
    "ablation.humaneval": True,
    "eval.humaneval_limit": 2,
}


@pytest.mark.slow
def test_two_settings_end_to_end_reuse_resume_and_redo(tmp_path, monkeypatch, resume_check):
    scale = get_scale("smoke", TINY)
    path = ex.fim_ablation(scale, ["fim_0", "psm_0.5"], tmp_path / "full", progress=False)
    results = ex.load_results(path)
    assert results["eval_steps"] == [2, 4] and results["tasks"] + results["skipped_tasks"] == 4
    timings = results["timings"]
    assert timings["eval_share"] == pytest.approx(timings["eval_s"] / (timings["train_s"] + timings["eval_s"]))
    for name in ("fim_0", "psm_0.5"):
        run = results["settings"][name]
        assert [e["step"] for e in run["evals"]] == [2, 4]
        assert all(math.isfinite(e[m]) for e in run["evals"] for m in ex.METRICS)
        assert len(run["evals"][-1]["items"]["l2r_loss"]) == 8
        assert len(run["evals"][-1]["items"]["infill_pass_spm"]) == 2
        assert len(run["evals"][-1]["items"]["heldout_middle_loss_psm"]) == results["heldout_lines"] > 0
        assert (tmp_path / "full" / name / "hf" / "config.json").exists()
        assert not (tmp_path / "full" / name / "checkpoints").exists()
    rate = "fragment_rate" if scale.fim.level == "context" else "document_rate"
    assert results["streams"]["fim_0"][rate] == 0 < results["streams"]["psm_0.5"][rate]

    # The first-token split, from each run's exported weights: the first tokens and the later ones, weighted by
    # their counts, give back the middle loss the run recorded at its last evaluation, task by task.
    split = {row["setting"]: row for row in ex.first_token_losses(scale, tmp_path / "full")}
    assert list(split) == ["fim_0", "psm_0.5"]
    tok = ensure_tokenizer(scale)
    tasks, _ = ex.ablation_tasks(scale, tok)
    counts = [len(ids) for ids in encode_text(tok, [t["middle"] for t in tasks])]
    for name, row in split.items():
        for mode in ("psm", "spm"):
            recorded = results["settings"][name]["evals"][-1]["items"][f"middle_loss_{mode}"]
            total = row[f"first_{mode}"] * len(tasks) + row[f"later_{mode}"] * (sum(counts) - len(tasks))
            assert total == pytest.approx(sum(m * c for m, c in zip(recorded, counts, strict=True)), rel=1e-4)
    with pytest.raises(FileNotFoundError, match="no finished run"):
        ex.first_token_losses(scale, tmp_path / "full", ["psm_1.0"])

    # Two workers, each run in its own process with one thread: the same runs, the same numbers.
    parallel = get_scale("smoke", {**TINY, "ablation.workers": 2})
    two = ex.load_results(ex.fim_ablation(parallel, ["fim_0", "psm_0.5"], tmp_path / "parallel", progress=False))
    assert two["timings"]["workers"] == 2 and results["timings"]["workers"] == 1
    for name in ("fim_0", "psm_0.5"):
        ours, theirs = results["settings"][name], two["settings"][name]
        assert ours["fingerprint"] == theirs["fingerprint"]
        for e, f in zip(ours["evals"], theirs["evals"], strict=True):
            for metric, values in e["items"].items():
                assert f["items"][metric] == pytest.approx(values, rel=1e-3, abs=1e-6), (name, metric)

    # Reuse: a finished run is neither retrained nor re-evaluated.
    stamps = {n: (tmp_path / "full" / n / ablation.RUN_FILE).stat().st_mtime_ns for n in ("fim_0", "psm_0.5")}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(dslib.train, "train", no_training)
    assert ex.load_results(ex.fim_ablation(scale, ["fim_0", "psm_0.5"], tmp_path / "full", progress=False)) == results
    assert stamps == {n: (tmp_path / "full" / n / ablation.RUN_FILE).stat().st_mtime_ns for n in stamps}
    monkeypatch.undo()

    # Resume: a run killed part-way between its evaluations continues from its last checkpoint (step 2,
    # where it was evaluated), not from scratch, and reaches the same numbers as the uninterrupted run.
    resume_check(
        lambda d: ex.load_results(ex.fim_ablation(scale, ["psm_0.5"], d, progress=False)),
        "psm_0.5",
        tmp_path / "cut",
        results,
        ex.METRICS,
    )

    # Redo: another evaluation config invalidates the finished run.
    other = get_scale("smoke", {**TINY, "ablation.heldout_sequences": 4})
    redone = ex.load_results(ex.fim_ablation(other, ["fim_0"], tmp_path / "full", progress=False))
    assert len(redone["settings"]["fim_0"]["evals"][-1]["items"]["l2r_loss"]) == 4


# ------------------------------------------------------------------------------------ a second experiment


def test_a_second_experiment_needs_only_its_grid_hook_and_comparisons():
    # The repository-level ablation's shape (settings differ in a data field, a cross-file metric): nothing
    # of the FIM ablation is needed to define it, run it or judge it.
    grid = {
        "dependency": ablation.Setting({"data.max_repos": 8}, paper=True),
        "file": ablation.Setting({"data.max_repos": 4}),
        "dependency_seed1": ablation.Setting({"data.max_repos": 8}, seed=1, control_of="dependency"),
    }
    metrics = {"crossfile_em": ablation.Metric("cross-file exact match", True, 0.02)}
    repo = ablation.Experiment("repo_ablation", "repository-level ablation", grid, metrics, ablation.Evaluation)
    scales = ablation.setting_scales(repo, get_scale("smoke"))
    assert scales["file"].data.max_repos == 4 and scales["dependency_seed1"].train.seed == 1
    assert scales["dependency"].train.max_steps == get_scale("smoke").ablation.steps

    claim = dataclasses.make_dataclass("Claim", ["key", "claim", "source"])("dep", "dependency order helps", "§2.2")
    test = {
        "dep": ablation.Comparison(
            ("dependency", "file"),
            ("crossfile_em",),
            lambda r, m: ablation.directional(repo, r, m, [("dependency", "file")], +1),
        )
    }
    runs = {"dependency": em(40), "file": em(10), "dependency_seed1": em(38)}
    results = {
        "settings": {
            n: {"evals": [{"step": 1, "crossfile_em": np.mean(v), "items": {"crossfile_em": v}}]}
            for n, v in runs.items()
        }
    }
    [found] = ablation.judge(repo, results, [claim], test)
    assert found["verdict"] == ablation.AGREES and found["basis"] == "crossfile_em"
    assert ablation.seed_gap(repo, results, "crossfile_em") == pytest.approx(0.02)
    # A reseeded twin as far from its setting as the effect makes the effect too small to tell.
    results["settings"]["dependency_seed1"]["evals"][0]["crossfile_em"] = 0.05
    assert ablation.judge(repo, results, [claim], test)[0]["verdict"] == ablation.TOO_SMALL
    rows = ablation.finding_rows([found])
    assert rows[0]["ours"] == ablation.AGREES and rows[0]["paper"] == "holds"
