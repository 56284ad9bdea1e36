"""``python -m dslib.eval CHECKPOINT --tasks ...``: generations saved before scoring, resumed, re-scored alone."""

import json
import shutil

import pytest
import torch

from dslib.config import EvalConfig, ModelConfig
from dslib.eval import report, suite
from dslib.eval.data import read_jsonl
from dslib.eval.tasks.mbpp import MBPP
from dslib.model import Transformer, to_hf
from dslib.tokenizer import save_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random-weight checkpoint in the released format, with a tokenizer trained on HumanEval."""
    texts = [p["prompt"] + p["canonical_solution"] for p in read_jsonl("humaneval/humaneval-python.jsonl")]
    tokenizer = train_tokenizer(texts, vocab_size=400, show_progress=False)
    config = ModelConfig(
        vocab_size=512,
        bos_token_id=413,
        eos_token_id=414,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt")
    to_hf(Transformer(config), path)
    save_tokenizer(tokenizer, path)
    return path


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_resume_and_score_only_round_trip(checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    args = [str(checkpoint), "--tasks", "humaneval-python,leetcode,gsm8k", "--limit", "2", "--out", str(out)]
    args += ["--max-new-tokens", "3", "--device", "cpu", "--batch-size", "2"]
    assert report.main(args) == 0
    saved = lines(out / "generations.jsonl")
    assert [(r["task"], r["instruct"]) for r in saved[::2]] == [
        ("humaneval-python", False),
        ("leetcode", True),  # Table 5 is Instruct-only: chat format even for a base checkpoint
        ("gsm8k", False),
    ]
    assert {r["checkpoint"] for r in saved} == {str(checkpoint)} and len({r["parameters"] for r in saved}) == 1
    table = (out / "table.md").read_text()
    assert "| humaneval-python | 0 | 34.8 | [P] Table 3, DeepSeek-Coder-Base 1.3B | 2 problems, 2 samples |" in table
    assert "| leetcode | 0 | 7.2 | [P] Table 5, DeepSeek-Coder-Instruct 1.3B |" in table
    assert "| tabmwp | unavailable: " in table
    first = (out / "scores.json").read_text()
    # A second run finds every sample saved and generates nothing; the file only ever grows.
    assert report.main(args) == 0
    assert lines(out / "generations.jsonl") == saved
    # Re-scoring without a model gives the same scores.
    assert report.main(["--score-only", str(out / "generations.jsonl")]) == 0
    assert json.loads((out / "scores.json").read_text()) == json.loads(first)
    capsys.readouterr()


def test_score_only_scores_known_correct_generations_in_full(tmp_path):
    """Hand-made generations in the saved format: right ones score 100%, wrong ones 0%, per task."""
    he = {p["task_id"]: p for p in read_jsonl("humaneval/humaneval-python.jsonl")}
    mbpp = {p["task_id"]: p for p in read_jsonl("mbpp/mbpp_test.jsonl")}
    record = {"completion_id": 0, "instruct": False}
    records = [
        {
            **record,
            "task": "humaneval-python",
            "task_id": "Python/2",
            "generation": he["Python/2"]["canonical_solution"],
        },
        {**record, "task": "mbpp", "task_id": 12, "generation": "\n" + mbpp[12]["code"] + "\n[DONE]\nblah"},
        {**record, "task": "mbpp", "task_id": 13, "generation": "def count_common(words):\n    return []\n[DONE]"},
        {
            **record,
            "task": "gsm8k",
            "task_id": "gsm8k/0",
            "generation": "```python\ndef solution():\n    return 18\n```",
        },
    ]
    path = tmp_path / "generations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = suite.evaluate(None, None, tmp_path, EvalConfig(), score_only=path, progress=False)
    scores = result["scores"]
    assert scores["humaneval-python"]["pass@1"] == 1.0 and scores["gsm8k"]["pass@1"] == 1.0
    assert scores["mbpp"]["pass@1"] == 0.5 and scores["mbpp"]["problems"] == 2
    verdicts = {(r["task"], str(r["task_id"])): r for r in result["results"]}
    assert verdicts[("mbpp", "13")]["status"] == "failed"


def test_saved_generations_are_never_lost_or_misread(tmp_path, caplog):
    good = {"task": "mbpp", "task_id": 11, "completion_id": 0, "instruct": False, "generation": "x"}
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:20])  # a run killed mid-line
    assert suite.read_generations(path) == [good]
    assert "incomplete last record" in caplog.text
    path.write_text(json.dumps(good)[:20] + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match="g.jsonl:1: not a JSON record"):
        suite.read_generations(path)
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "generation"}) + "\n")
    with pytest.raises(ValueError, match="g.jsonl: record 1: a generation record needs"):
        suite.read_generations(path)


def test_checkpoint_without_tokenizer_is_a_clear_error(checkpoint, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(checkpoint, bare)
    (bare / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no tokenizer.json"):
        suite.evaluate(bare, ["mbpp"], tmp_path / "out", progress=False)
    with pytest.raises(SystemExit):
        report.main(["--tasks", "mbpp"])  # neither a checkpoint nor --score-only
    with pytest.raises(SystemExit):
        report.main([str(bare), "--tasks", "mbpp", "--out", str(tmp_path / "cli")])
    assert "has no tokenizer.json" in capsys.readouterr().err


def test_generations_of_another_checkpoint_are_not_mixed(checkpoint, tmp_path):
    other = {"task": "mbpp", "task_id": 11, "completion_id": 0, "instruct": False, "generation": "", "checkpoint": "/x"}
    (tmp_path / "generations.jsonl").write_text(json.dumps(other) + "\n")
    with pytest.raises(ValueError, match="holds generations of /x"):
        suite.evaluate(checkpoint, ["mbpp"], tmp_path, progress=False)


def test_a_task_without_its_toolchain_is_unavailable_not_zero(tmp_path, monkeypatch):
    class NoToolchain(MBPP):
        def unavailable(self):
            return "python3 is missing: apt-get install python3"

    monkeypatch.setattr(suite, "get_task", lambda name: NoToolchain())
    record = {"task": "mbpp", "task_id": 11, "completion_id": 0, "instruct": False, "generation": ""}
    scores, results = suite.score([record], progress=False)
    assert scores == {"mbpp": {"unavailable": "python3 is missing: apt-get install python3"}} and results == []
    row = suite.table_rows(scores, None)[0]
    assert row["ours"] == "unavailable: python3 is missing: apt-get install python3" and row["paper"] == 46.2


def test_base_and_chat_generations_are_not_scored_together(tmp_path):
    base = {"task": "mbpp", "task_id": 11, "completion_id": 0, "instruct": False, "generation": ""}
    scores, _ = suite.score([base, {**base, "instruct": True}], progress=False)
    assert "both the base and the chat format" in scores["mbpp"]["error"]
    path = tmp_path / "generations.jsonl"
    path.write_text(json.dumps(base) + "\n")
    with pytest.raises(ValueError, match="holds mbpp generations in the base format"):
        suite.generate(None, object(), ["mbpp"], path, instruct=True, limit=1, progress=False)


def test_table_rows_add_table3s_mean_when_all_eight_languages_are_scored():
    names = [f"humaneval-{lang}" for lang in ("python", "cpp", "java", "php", "ts", "cs", "sh", "js")]
    scores = {n: {"pass@1": 0.25 if n == "humaneval-python" else 0.5, "problems": 1, "samples": 1} for n in names}
    rows = suite.table_rows(scores, 6_700_000_000)
    assert rows[0]["paper"] == 49.4 and rows[0]["source"] == "[P] Table 3, DeepSeek-Coder-Base 6.7B"
    assert rows[-1] == {"task": "humaneval (8-language mean)", "ours": 46.9, "paper": 44.7, "source": "[P] Table 3 Avg"}
    del scores["humaneval-sh"]
    assert all("mean" not in r["task"] for r in suite.table_rows(scores, None))
