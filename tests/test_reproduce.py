import json
import os
import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from dslib.artifacts import ensure, fingerprint, read_manifest, write_manifest
from dslib.reproduce import clean_notebook


def _write(path, *sources):
    nbformat.write(new_notebook(cells=[new_code_cell(s) for s in sources]), path)


def _reproduce(home, *args):
    env = {**os.environ, "DSLIB_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "dslib", "reproduce", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_reproduce_runs_in_order_and_gathers_results(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _write(
        tmp_path / "notebooks" / "01_first.ipynb",
        "import os, dslib.results\nscale = os.environ['DSLIB_SCALE']",
        "dslib.results.record(scale, '01_first', [{'metric': 'answer', 'ours': 42, 'paper': 41, 'source': 'T1'}])",
    )
    _write(tmp_path / "notebooks" / "02_second.ipynb", "open('order.txt', 'w').write('second ran')")
    proc = _reproduce(tmp_path, "--scale", "smoke")
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "artifacts" / "smoke" / "results.md").read_text()
    assert "| 01_first | answer | 42 | 41 | T1 |" in table
    executed = tmp_path / "artifacts" / "smoke" / "notebooks"
    assert sorted(p.name for p in executed.iterdir()) == ["01_first.ipynb", "02_second.ipynb"]
    assert (tmp_path / "notebooks" / "order.txt").read_text() == "second ran"  # cwd is notebooks/


def test_reproduce_stops_at_first_failing_cell(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _write(tmp_path / "notebooks" / "01_bad.ipynb", "x = 1", "raise ValueError('cell two broke')", "y = 2")
    _write(tmp_path / "notebooks" / "02_never.ipynb", "open('never.txt', 'w')")
    proc = _reproduce(tmp_path, "--scale", "smoke")
    assert proc.returncode == 1
    assert "raise ValueError('cell two broke')" in proc.stderr and "ValueError" in proc.stderr
    assert not (tmp_path / "notebooks" / "never.txt").exists()


def test_reproduce_only_selects_and_rejects_unknown(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _write(tmp_path / "notebooks" / "01_a.ipynb", "open('a.txt', 'w')")
    _write(tmp_path / "notebooks" / "02_b.ipynb", "open('b.txt', 'w')")
    assert _reproduce(tmp_path, "--only", "02").returncode == 0
    assert (tmp_path / "notebooks" / "b.txt").exists() and not (tmp_path / "notebooks" / "a.txt").exists()
    bad = _reproduce(tmp_path, "--only", "07")
    assert bad.returncode != 0 and "no notebook numbered 07" in bad.stderr


def test_force_with_only_is_refused_and_deletes_nothing(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _write(tmp_path / "notebooks" / "01_a.ipynb", "open('a.txt', 'w')")
    kept = tmp_path / "artifacts" / "smoke" / "pretrain" / "model.pt"  # another notebook's hours of training
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"weights")
    refused = _reproduce(tmp_path, "--only", "01", "--force")
    assert refused.returncode == 2 and "does not combine with --only" in refused.stderr
    assert kept.read_bytes() == b"weights" and not (tmp_path / "notebooks" / "a.txt").exists()
    forced = _reproduce(tmp_path, "--force")
    assert forced.returncode == 0 and "--force: deleting" in forced.stdout
    assert not kept.exists() and (tmp_path / "notebooks" / "a.txt").exists()


def test_clean_notebook_keeps_only_checked_outputs(tmp_path):
    nb = new_notebook(
        cells=[
            new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", execution_count=1),
            new_code_cell("print(2)", execution_count=2),
        ]
    )
    nb.cells[0].outputs = [new_output("stream", name="stdout", text="1\n")]
    nb.cells[1].outputs = [new_output("stream", name="stdout", text="2\n")]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    clean_notebook(path)
    cleaned = nbformat.read(path, as_version=4)
    assert [len(c.outputs) for c in cleaned.cells] == [1, 0]
    assert [c.execution_count for c in cleaned.cells] == [1, None]  # nbval skips checked cells without a count


def test_ensure_builds_once_and_rebuilds_on_config_change(tmp_path, monkeypatch):
    monkeypatch.setenv("DSLIB_HOME", str(tmp_path))
    calls = []

    def build(directory):
        calls.append(directory)
        (directory / "out.txt").write_text("data")
        write_manifest(directory, {"n": len(calls)}, counts={"files": 1})

    config = {"n": 1}
    first = ensure("smoke", "stage", config, build)
    assert ensure("smoke", "stage", config, build) == first and len(calls) == 1
    manifest = read_manifest(first)
    assert manifest["config_fingerprint"] == fingerprint(config) and manifest["counts"] == {"files": 1}
    (first / "leftover.txt").write_text("partial")
    ensure("smoke", "stage", {"n": 2}, build)
    assert len(calls) == 2 and not (first / "leftover.txt").exists()
    assert json.loads((first / "manifest.json").read_text())["config"] == {"n": 2}


def test_fingerprint_tracks_file_contents(tmp_path):
    (tmp_path / "a").write_text("one")
    before = fingerprint(tmp_path)
    (tmp_path / "a").write_text("two")
    assert fingerprint(tmp_path) != before
