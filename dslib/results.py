"""The results table: our numbers beside the paper's, gathered from every notebook of a run."""

from __future__ import annotations

import json
from pathlib import Path

from dslib.artifacts import artifact_dir


def record(scale: str, notebook: str, rows: list[dict]) -> Path:
    """Store a notebook's result rows for ``python -m dslib reproduce`` to gather.

    Each row holds ``metric``, ``ours`` and, where the paper reports one, ``paper``, ``source`` and ``note``.
    """
    for row in rows:
        missing = {"metric", "ours"} - row.keys()
        if missing:
            raise ValueError(f"result row {row} lacks {sorted(missing)}")
    path = artifact_dir(scale, "results") / f"{notebook}.json"
    path.write_text(json.dumps(rows, indent=2, default=str))
    return path


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def results_table(scale: str) -> str:
    """A Markdown table of every recorded row, notebook by notebook."""
    lines = [
        f"# Results at scale `{scale}`",
        "",
        "| notebook | metric | ours | paper | source | note |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(artifact_dir(scale, "results").glob("*.json")):
        for row in json.loads(path.read_text()):
            cells = [path.stem, row["metric"], row["ours"], row.get("paper"), row.get("source"), row.get("note")]
            lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
