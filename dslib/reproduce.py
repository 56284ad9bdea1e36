"""``python -m dslib reproduce``: execute the notebooks in order at one scale and gather the results table."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.auto import tqdm

from dslib.artifacts import artifact_dir, project_root
from dslib.config import ConfigError, get_scale
from dslib.results import results_table

CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The ordered notebooks (``NN_name.ipynb``), optionally those whose number is in ``only``."""
    found = sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {o.strip().zfill(2) for o in only}
        unknown = wanted - {p.name[:2] for p in found}
        if unknown:
            raise SystemExit(
                f"no notebook numbered {', '.join(sorted(unknown))}; have: {', '.join(p.name for p in found)}"
            )
        found = [p for p in found if p.name[:2] in wanted]
    return found


def run_notebook(path: Path, scale: str, out_dir: Path, timeout: int | None = None) -> Path:
    """Execute one notebook with ``DSLIB_SCALE=scale``, cell by cell with a progress bar; save the executed copy."""
    nb = nbformat.read(path, as_version=4)
    code_cells = sum(cell.cell_type == "code" for cell in nb.cells)
    bar = tqdm(total=code_cells, desc=path.stem, unit="cell")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=lambda **_: bar.update(1),
    )
    target = out_dir / path.name
    previous = os.environ.get("DSLIB_SCALE")
    os.environ["DSLIB_SCALE"] = scale  # the kernel inherits it
    try:
        client.execute()
    finally:
        bar.close()
        nbformat.write(nb, target)
        if previous is None:
            os.environ.pop("DSLIB_SCALE")
        else:
            os.environ["DSLIB_SCALE"] = previous
    return target


def reproduce(scale: str | None = None, only: list[str] | None = None, force: bool = False) -> int:
    """Run every notebook in order; at the first failing cell print it and its traceback and return 1."""
    scale_name = get_scale(scale).name
    if force:
        root = project_root() / "artifacts" / scale_name
        if only:  # the other notebooks' stages (corpus, checkpoints, ablation runs) can hold hours of work
            raise ConfigError(
                f"--force deletes every artifact of scale {scale_name!r} ({root}), the stages other notebooks "
                "built included, so it does not combine with --only. Cached stages rebuild themselves when "
                f"their config changes; to redo one stage, delete its folder under {root}."
            )
        if root.exists():
            size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
            print(f"--force: deleting {root} ({size / 2**20:,.0f} MiB)", flush=True)
        shutil.rmtree(root, ignore_errors=True)
    out_dir = artifact_dir(scale_name, "notebooks")
    paths = notebooks(only)
    if not paths:
        print("no notebooks found under notebooks/", file=sys.stderr)
        return 1
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {path.name} at scale {scale_name}", flush=True)
        start = time.perf_counter()
        try:
            run_notebook(path, scale_name, out_dir)
        except CellExecutionError as err:
            print(f"\n{path.name} failed; executed copy kept at {out_dir / path.name}\n", file=sys.stderr)
            print(str(err), file=sys.stderr)
            return 1
        print(f"    done in {time.perf_counter() - start:.0f} s", flush=True)
    table = project_root() / "artifacts" / scale_name / "results.md"
    table.write_text(results_table(scale_name))
    print(f"executed notebooks: {out_dir}\nfigures: {project_root() / 'figures' / scale_name}\nresults: {table}")
    return 0


def clean_notebook(path: Path) -> None:
    """Keep only the outputs nbval compares (cells starting ``# NBVAL_CHECK_OUTPUT``) and drop timings."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if not cell.source.lstrip().startswith(CHECK_OUTPUT):
            # nbval treats a checked cell without an execution count as unrun, so only the others lose theirs.
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)
