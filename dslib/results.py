"""The results table: our numbers beside the paper's, gathered from every notebook of a run.

Each stage has a function that returns its rows (``dslib.data.report.result_rows``, ``dslib.tokenizer.result_rows``,
``dslib.fim.result_rows``, ``dslib.ablation.fim.result_rows``, ``dslib.model_analysis.result_rows``,
``dslib.training.metrics.result_rows``, ``dslib.eval.crossfile.result_rows``,
``dslib.ablation.repo_level.result_rows``, ``dslib.instruct.finetune.result_rows``); a notebook ends with
:func:`closing_table` of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dslib.artifacts import artifact_dir


def result_row(metric: str, ours: Any, paper: Any = None, source: str | None = None, note: str | None = None) -> dict:
    """One result row: our number beside the paper's (``None`` where the paper reports none)."""
    return {"metric": metric, "ours": ours, "paper": paper, "source": source, "note": note}


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


def closing_table(scale: str, notebook: str, rows: list[dict]) -> pd.DataFrame:
    """A notebook's closing "ours beside the paper" table: :func:`record` the rows, and return them to show."""
    record(scale, notebook, rows)
    return pd.DataFrame(rows, columns=["metric", "ours", "paper", "source", "note"]).set_index("metric")
