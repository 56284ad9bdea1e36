"""data.repo_level: the same files in every value, assembled as the value says; held-out repositories stay out."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from dslib.artifacts import read_manifest
from dslib.config import ConfigError, DataConfig, get_scale
from dslib.data.pipeline import _load_split, build_corpus, corpus_dir, corpus_label, load_corpus
from dslib.data.repo_level import content_digest, document_files, heldout_repositories, imports_before
from dslib.tokenizer import split_sample

# Real code: stdlib packages as repositories, each with imports between its own files.
PACKAGES = ("json", "email", "http", "urllib", "xmlrpc", "wsgiref")


def _repos(root: Path) -> Path:
    stdlib = Path(json.__file__).parents[1]
    for name in PACKAGES:
        shutil.copytree(stdlib / name, root / name / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _rows(directory: Path, split: str = "train") -> list[dict]:
    return list(_load_split(directory, split))


def _files(directory: Path, split: str = "train") -> dict[str, dict[str, str]]:
    """repo → {path: text} of a built corpus split, every document split back into files."""
    repos: dict[str, dict[str, str]] = {}
    for row in _rows(directory, split):
        pieces = split_sample(row["text"], row["paths"], row["languages"])
        for path, text in zip(row["paths"], pieces, strict=True):
            assert path not in repos.setdefault(row["repo"], {})
            repos[row["repo"]][path] = text
    return repos


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = _repos(tmp_path_factory.mktemp("repos"))
    out = {}
    for value in ("dependency", "random", "file"):
        config = DataConfig(source=str(root), num_proc=1, num_shards=2, heldout_fraction=0.2, repo_level=value)
        directory = tmp_path_factory.mktemp(value)
        build_corpus(config, directory)
        out[value] = directory
    return out


def test_every_value_keeps_the_same_files(built):
    files = {value: _files(directory) for value, directory in built.items()}
    assert files["dependency"] and files["dependency"] == files["random"] == files["file"]
    manifests = {value: read_manifest(directory) for value, directory in built.items()}
    for value, manifest in manifests.items():
        assert manifest["config"]["repo_level"] == value
        assert manifest["counts"]["funnel"]["repo_level"] == value
        funnel = manifest["counts"]["funnel"]
        assert funnel["kept"] == manifests["dependency"]["counts"]["funnel"]["kept"]
        assert manifest["counts"]["repositories"]["train"] == manifests["dependency"]["counts"]["repositories"]["train"]
    assert len({m["config_fingerprint"] for m in manifests.values()}) == 3


def test_dependency_random_and_file_documents(built):
    rows = {value: _rows(directory) for value, directory in built.items()}
    code = {value: [r for r in value_rows if r["source"] == "code"] for value, value_rows in rows.items()}
    files = _files(built["dependency"])
    assert {r["source"] for r in rows["dependency"]} == {"code", "english"}  # email's .rst: the mix's English
    # Algorithm 1 ordered the files before quality screening dropped some, so the order is checked by its edges:
    # it keeps most import edges (all but those of cycles), many more than a random order.
    random_code = {r["repo"]: r["paths"] for r in code["random"]}
    kept_dep = kept_random = 0
    for row in code["dependency"]:
        texts = {p: files[row["repo"]][p] for p in row["paths"]}
        kept, total = imports_before(texts, row["paths"])
        kept_dep, kept_random = kept_dep + kept, kept_random + imports_before(texts, random_code[row["repo"]])[0]
        assert kept >= 0.8 * total  # only the edges of import cycles go the other way
    assert kept_dep > kept_random
    shuffled = 0
    for dep, rand in zip(
        sorted(rows["dependency"], key=lambda r: (r["repo"], r["source"])),
        sorted(rows["random"], key=lambda r: (r["repo"], r["source"])),
        strict=True,
    ):
        assert sorted(dep["paths"]) == sorted(rand["paths"]) and (dep["repo"], dep["source"]) == (
            rand["repo"],
            rand["source"],
        )
        shuffled += dep["paths"] != rand["paths"]
    assert shuffled >= len(code["dependency"])  # every package has enough code files for a new order
    per_repo = Counter()
    for r in rows["dependency"]:
        per_repo[r["repo"]] += len(r["paths"])
    assert Counter(r["repo"] for r in rows["file"]) == per_repo
    assert all(len(r["paths"]) == 1 for r in rows["file"])


def test_random_order_is_seeded_and_per_repository():
    files = [f"f{i}.py" for i in range(20)]
    first = document_files("repo", files, "random", seed=0)
    assert first == document_files("repo", files, "random", seed=0)
    assert first != document_files("repo", files, "random", seed=1)
    assert first != document_files("other", files, "random", seed=0)
    assert sorted(first[0]) == sorted(files)
    with pytest.raises(ValueError, match="repo_level"):
        document_files("repo", files, "shuffled", seed=0)
    with pytest.raises(ConfigError, match="dependency, random, file"):
        DataConfig(repo_level="files")
    assert get_scale("smoke", ["data.repo_level=file"]).data.repo_level == "file"


def test_heldout_rule_is_a_hash_of_the_name():
    names = [f"repo{i}" for i in range(40)]
    held = heldout_repositories(names, 0.1, seed=0)
    assert len(held) == 4 and held == heldout_repositories(list(reversed(names)), 0.1, seed=0)
    assert held != heldout_repositories(names, 0.1, seed=1)
    assert heldout_repositories(["only"], 0.5, 0) == set() and len(heldout_repositories(["a", "b"], 0.01, 0)) == 1


def test_heldout_repositories_are_listed_and_no_copy_reaches_training(tmp_path):
    root = _repos(tmp_path / "repos")
    config = DataConfig(source=str(root), num_proc=1, num_shards=2, heldout_fraction=0.2)
    held = sorted(heldout_repositories(sorted(PACKAGES), config.heldout_fraction, config.seed))
    donor = root / held[0] / held[0]
    victim = next(p for p in sorted(donor.glob("*.py")) if p.stat().st_size > 2000)
    trainer = next(name for name in PACKAGES if name not in held)
    # A vendored copy with other line endings, trailing spaces and blank lines: the same content to a reader.
    copy = "\r\n".join(line + "  \n" for line in victim.read_text().splitlines())
    (root / trainer / "vendored.py").write_text(copy)
    assert content_digest(copy) == content_digest(victim.read_text())
    build_corpus(config, tmp_path / "out")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["counts"]["heldout"]["repositories"] == held
    assert f"{trainer}/vendored.py" in manifest["counts"]["decontamination"]["heldout_copies"]
    assert manifest["counts"]["funnel"]["dropped"]["heldout_copy"]["stage"] == "decontam"
    train = _files(tmp_path / "out")
    heldout = _files(tmp_path / "out", "heldout")
    assert set(heldout) == set(held) and not set(train) & set(held)
    held_digests = {content_digest(t) for files in heldout.values() for t in files.values()}
    assert not held_digests & {content_digest(t) for files in train.values() for t in files.values()}


def test_a_corpus_not_the_presets_gets_its_own_folders():
    assert corpus_label(get_scale("cpu")) == "" == corpus_label(get_scale("cpu", {"data.engine": "spark"}))
    labels = {corpus_label(get_scale("cpu", {"data.repo_level": v})) for v in ("random", "file")}
    labels.add(corpus_label(get_scale("cpu", {"data.heldout_repos": ("attrs",)})))
    assert len(labels) == 3 and all(label.startswith("-") and len(label) == 9 for label in labels)
    assert corpus_label(get_scale("smoke", {"data.repo_level": "file"})) != corpus_label(get_scale("cpu"))


@pytest.mark.slow
@pytest.mark.parametrize("value", ["dependency", "random", "file"])
def test_each_value_runs_through_tokenizer_packing_and_fim(tmp_path, monkeypatch, value):
    from dslib.packing import ensure_stream
    from dslib.tokenizer import ensure_tokenizer

    monkeypatch.setenv("DSLIB_HOME", str(tmp_path))
    overrides = {
        "data.source": str(_repos(tmp_path / "repos")),
        "data.num_proc": 1,
        "tokenizer.vocab_size": 600,
        "data.docs_folders": (),  # the packages only: the smoke preset adds /usr/share/doc
        "data.mix": "natural",  # every document once, so the stream counts them
        "fim.level": "document",
        "fim.fim_rate": 1.0,
    }
    scale = get_scale("smoke", {**overrides, "data.repo_level": value})
    corpus = load_corpus(scale)
    assert len(corpus) and {*corpus["repo"]} <= set(PACKAGES)
    tok = ensure_tokenizer(scale)
    artifacts = tmp_path / "artifacts" / "smoke"
    # One tokenizer for every value (the ablation's models share it), trained on the repository samples.
    (tokenizer,) = artifacts.glob("tokenizer*")
    assert read_manifest(tokenizer)["config"]["data"]["repo_level"] == "dependency"
    stream = ensure_stream(scale, "train")
    counts = read_manifest(stream)["counts"]
    assert counts["documents"] == len(corpus) and counts["fim_documents"] == len(corpus)  # FIM at rate 1
    # The artifacts of one value are never reused for another: each value's sit in folders of their own, and
    # building another value's leaves them as they were (two runs can share the scale at the same time).
    other = get_scale("smoke", {**overrides, "data.repo_level": "file" if value != "file" else "random"})
    built = {d: read_manifest(d)["created"] for d in (corpus_dir(scale), stream)}
    assert len(load_corpus(other)) != len(corpus)
    assert corpus_dir(other) != corpus_dir(scale) and ensure_stream(other, "train") != stream
    assert {d: read_manifest(d)["created"] for d in built} == built
    assert read_manifest(corpus_dir(scale))["config"]["repo_level"] == value
    assert read_manifest(corpus_dir(other))["config"]["repo_level"] == other.data.repo_level
    assert ensure_tokenizer(other).to_str() == tok.to_str() and [*artifacts.glob("tokenizer*")] == [tokenizer]
