"""JSON-lines files, read the same way everywhere: shipped benchmarks, saved generations, fine-tuning data.

Blank lines are skipped; a line that is not a JSON object is an error naming the file and line, never a
silent skip. A run killed while appending leaves its last line cut off: readers of such files pass
``cut_last_ok=True`` and that one line is skipped with a warning.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def read_jsonl(path: str | Path, cut_last_ok: bool = False, error: type[Exception] = ValueError) -> list[dict]:
    """The JSON objects of ``path`` (``.gz`` is decompressed), in order; bad lines raise ``error``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if cut_last_ok and number == len(lines):
                log.warning("%s:%d: incomplete last record skipped (%s)", path, number, err.msg)
                continue
            raise error(f"{path}:{number}: not a JSON record ({err.msg})") from None
        if not isinstance(record, dict):
            raise error(f"{path}:{number}: a record must be a JSON object, got {type(record).__name__}")
        records.append(record)
    return records
