"""The shipped evaluation files hold what the benchmarks' README says, byte for byte after decompression."""

import gzip
from pathlib import Path

import pytest

from dslib.eval import data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"

COUNTS = {
    "humaneval/humaneval-python.jsonl": 164,
    "humaneval/humaneval-cpp.jsonl": 161,
    "humaneval/humaneval-java.jsonl": 158,
    "humaneval/humaneval-php.jsonl": 161,
    "humaneval/humaneval-ts.jsonl": 159,
    "humaneval/humaneval-cs.jsonl": 158,
    "humaneval/humaneval-sh.jsonl": 158,
    "humaneval/humaneval-js.jsonl": 161,
    "mbpp/mbpp.jsonl": 974,
    "mbpp/mbpp_test.jsonl": 500,
    "leetcode/20240121-Jul.jsonl": 180,
    "pal-math/datasets/gsm8k/test.json": 1319,
    "pal-math/datasets/math/test.json": 5000,
}


@pytest.mark.parametrize("name,count", sorted(COUNTS.items()))
def test_record_counts_match_the_provenance_readme(name, count):
    assert len(data.read_jsonl(name)) == count


def test_mbpp_test_rows_are_ids_11_to_510():
    assert sorted(row["task_id"] for row in data.read_jsonl("mbpp/mbpp_test.jsonl")) == list(range(11, 511))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the project's shared/ folder is not beside this checkout")
def test_shipped_files_equal_the_source_files():
    for packed in sorted(data.ROOT.rglob("*.gz")):
        relative = packed.relative_to(data.ROOT).with_suffix("")
        assert gzip.decompress(packed.read_bytes()) == (SHARED / relative).read_bytes(), relative


def test_missing_file_and_malformed_line_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no evaluation file 'nope.jsonl'"):
        data.path("nope.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    monkeypatch.setattr(data, "ROOT", tmp_path)
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        data.read_jsonl("bad.jsonl")
