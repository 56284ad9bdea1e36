"""The paper's evaluation files (DeepSeek-Coder §4, Tables 3, 5 and 8), shipped inside the package.

Copied unchanged from the DeepSeek-Coder repository's ``Evaluation/`` folder and stored gzip-compressed;
``README.md`` beside this file gives each file's source and licence. Paths are relative to this folder, as
in that README (``"humaneval/humaneval-cpp.jsonl"``, ``"pal-math/datasets/gsm8k/test.json"``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from dslib import jsonl

ROOT = Path(__file__).parent


def path(name: str) -> Path:
    """The shipped file ``name`` (its ``.gz`` form when it is stored compressed); a clear error if absent."""
    for candidate in (ROOT / name, ROOT / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no evaluation file {name!r} in {ROOT} (see README.md there for what ships)")


def read_text(name: str) -> str:
    """The whole text of a shipped file, decompressed."""
    file = path(name)
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8") as handle:
        return handle.read()


def read_jsonl(name: str) -> list[dict]:
    """The records of a shipped JSON-lines file, in order; a malformed line is an error naming its number."""
    return jsonl.read_jsonl(path(name))
