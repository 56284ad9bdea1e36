"""Sources (DeepSeek-Coder §2 crawl): .gitignore against git itself, bad files, the environment, the hub schema."""

import os
import shutil
import subprocess
import sysconfig

import pytest

from dslib.data import sources
from dslib.data.sources import (
    GitIgnore,
    Repository,
    SourceFile,
    hub_dataset,
    local_repos,
    python_environment,
    read_text,
    select_repositories,
)

GITIGNORE_ROOT = """
# a comment
*.log
!keep.log
build/
/root_only.txt
docs/**/*.md
**/tmp
a/**/b
foo?.txt
[abc].c
[!x]y.c
\\#hash
*.bak
!important.bak
"""
GITIGNORE_SUB = """
!*.log
deep/
"""
FILES = [
    "x.log", "keep.log", "src/y.log", "build/out.o", "src/build/z.o", "build", "root_only.txt",
    "src/root_only.txt", "docs/a.md", "docs/guide/b.md", "docs/guide/deep/c.md", "README.md", "tmp/t.txt",
    "src/tmp/u.txt", "a/b/f.txt", "a/x/y/b/g.txt", "a/c.txt", "foo1.txt", "foo12.txt", "a.c", "d.c", "ay.c",
    "xy.c", "#hash", "plain.txt", "x.bak", "important.bak", "sub/s.log", "sub/deep/d.txt", "sub/other/deep/e.txt",
    "sub/keep.txt", "sub/build/k.txt",
]  # fmt: skip


def _make_tree(root, files):
    for rel in files:
        path = root / rel
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}\n")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git as the reference")
def test_gitignore_matches_git(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _make_tree(repo, [f for f in FILES if f != "build"])
    (repo / ".gitignore").write_text(GITIGNORE_ROOT)
    (repo / "sub" / ".gitignore").write_text(GITIGNORE_SUB)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    [ours] = local_repos(repo)
    assert sorted(f.path for f in ours.files) == sorted(listed)
    assert not any(f.path.startswith(".git/") for f in ours.files)


def test_gitignore_rules_by_hand():
    spec = GitIgnore(["*.py[co]", "/dist", "logs/", "!logs/keep"])
    assert spec.match("a/b.pyc", False) and spec.match("b.pyo", False)
    assert spec.match("b.py", False) is None
    assert spec.match("dist", True) and spec.match("sub/dist", True) is None
    assert spec.match("logs", True) and spec.match("logs", False) is None


def test_local_repos_lists_every_folder_and_loose_files(tmp_path):
    for name in ("beta", "alpha"):
        _make_tree(tmp_path / name, ["main.py", "pkg/util.py"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "loose.py").write_text("x = 1\n")
    repos = local_repos(tmp_path)
    assert [r.name for r in repos] == sorted(["alpha", "beta", "empty", tmp_path.name])
    by_name = {r.name: r for r in repos}
    assert [f.path for f in by_name["alpha"].files] == ["main.py", "pkg/util.py"]
    assert by_name["empty"].files == ()
    assert [f.path for f in by_name[tmp_path.name].files] == ["loose.py"]
    with pytest.raises(FileNotFoundError, match="not a directory"):
        local_repos(tmp_path / "missing")


def test_read_text_names_every_problem(tmp_path, monkeypatch):
    (tmp_path / "ok.py").write_text("print('hi')\n")
    (tmp_path / "bin.dat").write_bytes(b"\x7fELF\x00\x01\x02")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "big.py").write_text("x = 1\n" * 100)
    (tmp_path / "blank.py").write_text("  \n\n")
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbfx = 1\n")
    (tmp_path / "locked.py").write_text("secret = 1\n")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken.py")
    os.symlink(tmp_path / "loop.py", tmp_path / "loop.py")
    os.symlink(tmp_path / "ok.py", tmp_path / "link.py")
    os.symlink(tmp_path, tmp_path / "cycle")
    os.mkfifo(tmp_path / "pipe")

    real_open = open

    def deny_locked(path, *args, **kwargs):  # root may read any file, so refuse this one by hand
        if str(path).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(sources, "open", deny_locked, raising=False)
    [repo] = local_repos(tmp_path)
    outcome = {f.path: read_text(f, max_bytes=300)[1] for f in repo.files}
    assert outcome == {
        "ok.py": None,
        "bin.dat": "binary",
        "latin1.txt": "not_utf8",
        "big.py": "too_large",
        "blank.py": "empty",
        "bom.py": None,
        "locked.py": "unreadable",
        "broken.py": "broken_symlink",
        "loop.py": "symlink_loop",
        "link.py": None,
        "cycle": "symlink_dir",
        "pipe": "not_regular",
    }
    by_path = {f.path: f for f in repo.files}
    assert read_text(by_path["bom.py"], 300) == ("x = 1\n", None, 9)  # the BOM is counted, not kept
    assert read_text(by_path["link.py"], 300)[0] == "print('hi')\n"


def test_python_environment_is_real_and_deterministic():
    repos = python_environment()
    names = [r.name for r in repos]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert {"datasketch", "numpy", "tree-sitter"} <= set(names)
    stdlib = next(r for r in repos if r.name.startswith("cpython-stdlib-"))
    paths = {f.path for f in stdlib.files}
    assert {"os.py", "json/__init__.py"} <= paths
    assert not any(p.startswith(("site-packages/", "dist-packages/")) or "__pycache__" in p for p in paths)
    datasketch = next(r for r in repos if r.name == "datasketch")
    assert "datasketch/minhash.py" in {f.path for f in datasketch.files}
    minhash = next(f for f in datasketch.files if f.path == "datasketch/minhash.py")
    assert minhash.size == os.path.getsize(minhash.location)
    assert sysconfig.get_paths()["stdlib"] in stdlib.origin


def test_select_repositories_is_seeded_and_respects_budgets():
    repos = [Repository(f"r{i}", (SourceFile(f"f{i}.py", size=10 * (i + 1)),)) for i in range(20)]
    picked, report = select_repositories(repos, max_repos=5, seed=0)
    again, _ = select_repositories(list(reversed(repos)), max_repos=5, seed=0)
    other, _ = select_repositories(repos, max_repos=5, seed=1)
    assert [r.name for r in picked] == [r.name for r in again] == sorted(r.name for r in picked)
    assert [r.name for r in picked] != [r.name for r in other]
    assert report == dict(
        available=20, over_byte_budget=0, over_max_repos=15, selected=5, selected_bytes=report["selected_bytes"]
    )
    budgeted, report = select_repositories(repos, max_total_bytes=100)
    assert sum(r.size for r in budgeted) <= 100 and report["selected"] + report["over_byte_budget"] == 20
    assert all(r.size > 100 - sum(b.size for b in budgeted) for r in repos if r not in budgeted)


STACK_ROWS = [
    dict(
        content="import util\nprint(util.x)\n", max_stars_repo_path="main.py", max_stars_repo_name="o/a", lang="Python"
    ),
    dict(content="x = 1\n", max_stars_repo_path="util.py", max_stars_repo_name="o/a", lang="Python"),
    dict(content="fn main() {}\n", max_stars_repo_path="src/main.rs", max_stars_repo_name="o/b", lang="Rust"),
    dict(content="(define x 1)\n", max_stars_repo_path="lib.weird", max_stars_repo_name="o/b", lang="Racket"),
]


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_hub_dataset_groups_the_stack_schema(tmp_path, fmt):
    import datasets

    table = datasets.Dataset.from_list(STACK_ROWS)
    path = tmp_path / f"data.{fmt}l" if fmt == "json" else tmp_path / "data.parquet"
    table.to_json(path) if fmt == "json" else table.to_parquet(path)
    repos = hub_dataset(fmt, data_files=str(path))
    assert [r.name for r in repos] == ["o/a", "o/b"]
    assert [f.path for f in repos[0].files] == ["main.py", "util.py"]
    assert repos[1].files[0].language == "Racket" and repos[1].files[0].content == b"(define x 1)\n"
    assert len(hub_dataset(fmt, data_files=str(path), max_files=1)[0].files) == 1


def test_hub_dataset_accepts_path_and_repo_name_columns_and_rejects_others(tmp_path):
    import datasets

    rows = [{"content": "x = 1\n", "path": "a.py", "repo_name": "o/c"}]
    datasets.Dataset.from_list(rows).to_parquet(tmp_path / "ok.parquet")
    assert hub_dataset("parquet", data_files=str(tmp_path / "ok.parquet"))[0].name == "o/c"
    datasets.Dataset.from_list([{"text": "x"}]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="The Stack's columns"):
        hub_dataset("parquet", data_files=str(tmp_path / "bad.parquet"))
