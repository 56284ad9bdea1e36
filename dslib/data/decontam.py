"""Decontamination against benchmark test data (DeepSeek-Coder §2.4).

"We filter out any code segments that contain docstrings, questions, and solutions from sources such as
HumanEval, MBPP, GSM8K and MATH": a piece containing a 10-gram identical to test data is removed, and a
test string shorter than 10 grams but of at least 3 needs an exact match. The paper does not say what a
gram is; here it is a word (a ``\\w+`` run), so a 10-gram spans a line or two of code whatever its spacing,
and a 10-gram of numbers with at most one word (``0 0 0 …`` from an array literal, ``1 2 … 9 and``) is skipped
as not identifying. A
short test string matches when the piece contains it verbatim (as a whole-word run). HumanEval's prompts,
canonical solutions and tests, and by default every other file the evaluation suite ships in
``dslib/eval/data`` (:data:`SHIPPED`: HumanEval in eight languages, MBPP, LeetCode, GSM8K, MATH and the other
PAL-Math sets) are indexed; further files in their usual jsonl forms can be added.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dslib.data.ngrams import ngram_hashes, word_hashes, words
from dslib.eval import data as eval_data

# The text fields of each benchmark's jsonl rows (a list field contributes each of its strings).
BENCHMARK_FIELDS: dict[str, tuple[str, ...]] = {
    "HumanEval": ("prompt", "canonical_solution", "test"),
    "MBPP": ("text", "prompt", "code", "test_list", "challenge_test_list", "test_setup_code"),
    "GSM8K": ("question", "answer"),
    "MATH": ("problem", "solution"),
    "LeetCode": ("prompt", "test"),
    "GSM-Hard": ("input", "code"),
    "SVAMP": ("Body", "Question"),
    "ASDiv": ("body", "question"),
    "MAWPS": ("input",),
}
_ID_FIELDS = ("task_id", "unique_id", "id", "ID", "idx")
HUMANEVAL_LANGUAGES = ("python", "cpp", "java", "php", "ts", "cs", "sh", "js")
# Everything the evaluation suite ships (dslib/eval/data/README.md): name → (file, benchmark whose fields it has).
SHIPPED: dict[str, tuple[str, str]] = {
    **{
        f"humaneval-{lang}": (f"humaneval/humaneval-{lang}.jsonl", f"HumanEval-{lang}".removesuffix("-python"))
        for lang in HUMANEVAL_LANGUAGES
    },
    "mbpp": ("mbpp/mbpp.jsonl", "MBPP"),  # all 974 problems: the few-shot, validation and training ids too
    "leetcode": ("leetcode/20240121-Jul.jsonl", "LeetCode"),
    "gsm8k": ("pal-math/datasets/gsm8k/test.json", "GSM8K"),
    "math": ("pal-math/datasets/math/test.json", "MATH"),
    "gsm-hard": ("pal-math/datasets/gsm-hard/test.json", "GSM-Hard"),
    "svamp": ("pal-math/datasets/svamp/test.json", "SVAMP"),
    "asdiv": ("pal-math/datasets/asdiv/test.json", "ASDiv"),
    "mawps": ("pal-math/datasets/mawps/test.json", "MAWPS"),
}


# A bit per value of a hash's low 24 bits (2 MB): most of a piece's n-grams are ruled out by one gather from it,
# so only the few that pass are looked up by binary search among the (a million and more) benchmark n-grams.
_FILTER_MASK = np.uint64((1 << 24) - 1)


def _bit_filter(keys: np.ndarray) -> np.ndarray:
    bits = (keys & _FILTER_MASK).astype(np.int64)
    bitmap = np.zeros(1 << 21, dtype=np.uint8)
    np.bitwise_or.at(bitmap, bits >> 3, (1 << (bits & 7)).astype(np.uint8))
    return bitmap


@dataclass(frozen=True)
class Hit:
    """A benchmark string found in a piece: which item, by which rule, and the matched words."""

    item: str  # "HumanEval/0:canonical_solution"
    rule: str  # "10gram" or "exact"
    ngram: str

    def __str__(self) -> str:
        return self.item


class Decontaminator:
    """Finds test data in a piece of text: any shared ``ngram``-gram, or the whole of a shorter test string."""

    def __init__(self, ngram: int = 10, min_ngram: int = 3):
        self.ngram, self.min_ngram = ngram, min_ngram
        self._items: list[tuple[str, tuple[str, ...], str]] = []  # (item name, words, stripped text)
        self._long: dict[int, tuple[int, int]] = {}  # n-gram hash → (item index, word offset)
        # Short strings by the hash of their first ``min_ngram`` words, so that one lookup of ``min_ngram``-grams
        # finds every candidate whatever its length (one pass over a piece, not one per length).
        self._short: dict[int, list[int]] = {}
        self._sorted: list[tuple] | None = None  # lookup arrays and bit filters, rebuilt after add()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: str, text: str) -> None:
        """Add one test string (a prompt, a solution, a test); strings of fewer than ``min_ngram`` words are ignored."""
        tokens = tuple(words(text))
        if len(tokens) < self.min_ngram:
            return
        index = len(self._items)
        self._sorted = None
        self._items.append((item, tokens, text.strip()))
        hashes = word_hashes(list(tokens))
        if len(tokens) >= self.ngram:
            for offset, value in enumerate(ngram_hashes(hashes, self.ngram).tolist()):
                if sum(not t.isdigit() for t in tokens[offset : offset + self.ngram]) > 1:
                    self._long.setdefault(value, (index, offset))
        else:
            bucket = self._short.setdefault(int(ngram_hashes(hashes, self.min_ngram)[0]), [])
            if all(self._items[other][1] != tokens for other in bucket):  # the first of identical strings names it
                bucket.append(index)

    def add_rows(self, benchmark: str, rows: Iterable[dict], fields: Iterable[str] | None = None) -> None:
        """Add the text fields of benchmark rows (``fields`` defaults to the benchmark's known ones)."""
        kind = "HumanEval" if benchmark.startswith("HumanEval") else benchmark  # HumanEval-cpp has HumanEval's fields
        fields = tuple(fields or BENCHMARK_FIELDS.get(kind, ()))
        for number, row in enumerate(rows):
            ident = next((row[k] for k in _ID_FIELDS if k in row), number)
            ident = str(ident).removeprefix(f"{benchmark}/").removeprefix("Python/")
            for name in fields:
                value = row.get(name)
                for j, text in enumerate(value if isinstance(value, list) else [value]):
                    if isinstance(text, str):
                        self.add(f"{benchmark}/{ident}:{name}" + (f"[{j}]" if isinstance(value, list) else ""), text)

    def add_jsonl(self, path: str | Path, benchmark: str | None = None) -> None:
        """Add a benchmark file (``.jsonl`` or ``.jsonl.gz``); the benchmark is guessed from its fields if not named."""
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        if benchmark is None:
            keys = set().union(*(row.keys() for row in rows)) if rows else set()
            benchmark = max(BENCHMARK_FIELDS, key=lambda b: len(keys & set(BENCHMARK_FIELDS[b])))
            if not keys & set(BENCHMARK_FIELDS[benchmark]):
                raise ValueError(
                    f"{path}: no known benchmark fields in {sorted(keys)}; expected one of {BENCHMARK_FIELDS}"
                )
        self.add_rows(benchmark, rows)

    @classmethod
    def from_benchmarks(
        cls,
        files: Iterable[str | Path] = (),
        ngram: int = 10,
        min_ngram: int = 3,
        benchmarks: Iterable[str] = ("all",),
    ) -> Decontaminator:
        """The shipped ``benchmarks`` (:data:`SHIPPED` names; ``"all"`` = every one) and benchmark jsonl ``files``."""
        benchmarks = tuple(benchmarks)
        names = list(SHIPPED) if "all" in benchmarks else benchmarks
        unknown = [name for name in names if name not in SHIPPED]
        if unknown:
            raise ValueError(f"unknown benchmark(s) {unknown}; choose from: all, {', '.join(SHIPPED)}")
        decontaminator = cls(ngram, min_ngram)
        for name in names:
            file, benchmark = SHIPPED[name]
            decontaminator.add_rows(benchmark, eval_data.read_jsonl(file))
        for path in files:
            decontaminator.add_jsonl(path)
        return decontaminator

    def find(self, text: str) -> Hit | None:
        """The first test string (by position in ``text``) that ``text`` contains, or ``None``."""
        tokens = words(text)
        if len(tokens) < self.min_ngram:
            return None
        hashes = word_hashes(tokens)
        best: tuple[int, Hit] | None = None
        verbatim: dict[int, bool] = {}  # whether a short item's text is in ``text``: one scan per item, not per match
        for n, rule, keys, table, bitmap in self._tables():
            grams = ngram_hashes(hashes, n)
            if not len(grams):
                continue
            bits = (grams & _FILTER_MASK).astype(np.int64)
            maybe = np.flatnonzero((bitmap[bits >> 3] >> (bits & 7).astype(np.uint8)) & 1)
            found = maybe[keys[np.minimum(np.searchsorted(keys, grams[maybe]), len(keys) - 1)] == grams[maybe]]
            for position in found.tolist():
                if best is not None and position >= best[0]:
                    break
                entry = table[int(grams[position])]
                candidates = [(index, 0) for index in entry] if rule == "exact" else [entry]
                for index, offset in candidates:
                    item, item_words, raw = self._items[index]
                    length = len(item_words) if rule == "exact" else n
                    window = tuple(tokens[position : position + length])
                    # Rule out a hash collision; a short string must also appear verbatim.
                    if window != item_words[offset : offset + length]:
                        continue
                    if rule == "exact" and not verbatim.setdefault(index, raw in text):
                        continue
                    best = (position, Hit(item, rule, " ".join(window)))
                    break
                if best is not None and best[0] == position:
                    break
        return best[1] if best else None

    def _tables(self) -> list[tuple[int, str, np.ndarray, dict, np.ndarray]]:
        if self._sorted is None:
            tables = [(self.ngram, f"{self.ngram}gram", self._long), (self.min_ngram, "exact", self._short)]
            self._sorted = []
            for n, rule, table in tables:
                if table:
                    keys = np.sort(np.fromiter(table, dtype=np.uint64, count=len(table)))
                    self._sorted.append((n, rule, keys, table, _bit_filter(keys)))
        return self._sorted

    def match(self, text: str) -> str | None:
        """The name of the benchmark item ``text`` contains (e.g. ``"HumanEval/12:prompt"``), or ``None``."""
        hit = self.find(text)
        return hit.item if hit else None
