"""The data mix of DeepSeek-Coder §2 (87% code, 10% English, 3% Chinese): sampling by weight, realised shares."""

from collections import Counter

import numpy as np
import pytest

from dslib.config import MIX_PRESETS, ConfigError, DataConfig
from dslib.data.mix import docs_repositories, mix_order, realised_shares, source_weights


def _shares(order, sources, sizes):
    total = Counter()
    for i in order:
        total[sources[i]] += sizes[i]
    return {s: v / sum(total.values()) for s, v in total.items()}


def test_paper_mix_without_chinese_renormalises_and_reaches_the_shares():
    rng = np.random.default_rng(0)
    sources = ["code"] * 900 + ["english"] * 30  # English is 3% of the documents and of the bytes
    sizes = rng.integers(500, 1500, len(sources)).tolist()
    weights = MIX_PRESETS["paper"]
    assert source_weights(weights, {"code", "english"}) == pytest.approx({"code": 87 / 97, "english": 10 / 97})
    order = mix_order(sources, sizes, weights, seed=1)
    shares = _shares(order, sources, sizes)
    assert shares["english"] == pytest.approx(10 / 97, abs=0.01) and shares["code"] == pytest.approx(87 / 97, abs=0.01)
    counts = Counter(order.tolist())
    assert max(counts[i] for i in range(900, 930)) >= 3  # the scarce source repeats
    assert max(counts[i] for i in range(900)) == 1  # the plentiful one never does
    assert sum(sizes[i] for i in order) == pytest.approx(sum(sizes), rel=0.01)  # the total stays the corpus's
    assert np.array_equal(order, mix_order(sources, sizes, weights, seed=1))  # seeded
    assert not np.array_equal(order, mix_order(sources, sizes, weights, seed=2))


def test_natural_mix_packs_every_document_once():
    sources, sizes = ["code", "english", "code"], [10, 20, 30]
    order = mix_order(sources, sizes, MIX_PRESETS["natural"], seed=0)
    assert sorted(order.tolist()) == [0, 1, 2]


def test_bad_sources_and_weights_are_refused():
    with pytest.raises(ValueError, match="unknown source"):
        mix_order(["code", "klingon"], [1, 1], {"code": 1.0})
    with pytest.raises(ConfigError, match="mix"):
        DataConfig(mix="nope")
    with pytest.raises(ConfigError, match="weights >= 0"):
        DataConfig(mix={"code": -1.0})
    assert DataConfig(mix={"code": 0.5, "english": 0.5}).mix_weights == {"code": 0.5, "english": 0.5}


def test_realised_shares_count_tokens_per_source():
    shares = realised_shares(["code", "english", "code"], [70, 20, 10])
    assert shares == {
        "code": {"documents": 2, "tokens": 80, "share": 0.8},
        "english": {"documents": 1, "tokens": 20, "share": 0.2},
    }


def test_docs_repositories_list_prose_files_per_subfolder(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "README.md").write_text("# pkg\n")
    (tmp_path / "pkg" / "guide.rst").write_text("Guide\n=====\n")
    (tmp_path / "pkg" / "changelog.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "empty").mkdir()
    repos, missing = docs_repositories([str(tmp_path), str(tmp_path / "nope")], ("Markdown", "reStructuredText"))
    assert [(r.name.split("/")[-1], [f.path for f in r.files]) for r in repos] == [("pkg", ["README.md", "guide.rst"])]
    assert all(r.name.startswith("docs-") for r in repos) and missing == [str(tmp_path / "nope")]
