"""BM25 retrieval of cross-file context as CrossCodeEval builds it (Ding et al. 2023; DeepSeek-Coder Table 7).

A repository's files are cut into ``chunk_lines``-line chunks with a ``chunk_stride``-line sliding window;
the query is the last ``query_lines`` non-empty lines of the prefix; chunks are ranked by Okapi BM25 on
``\\w+`` words, exactly as ``rank_bm25.BM25Okapi`` ranks them (the library CrossCodeEval used), and the top
``top_k`` that fit ``crossfile_tokens`` go before the prefix as comments headed by their file paths.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from dslib.config import CrossFileConfig
from dslib.data.languages import path_comment

_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """BM25's terms: the ``\\w+`` words of a text."""
    return _WORD.findall(text)


class BM25:
    """Okapi BM25 scored exactly as ``rank_bm25.BM25Okapi`` scores it (``k1``, ``b``, and a negative idf raised
    to ``epsilon`` × the mean idf), with postings in numpy arrays so that a query costs a few array additions."""

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        lengths = np.array([len(d) for d in documents], dtype=np.float64)
        flat = [t for d in documents for t in d]
        self.vocabulary: dict[str, int] = {t: i for i, t in enumerate(dict.fromkeys(flat))}
        term_ids = np.array([self.vocabulary[t] for t in flat], dtype=np.int64)
        doc_ids = np.repeat(np.arange(len(documents), dtype=np.int64), lengths.astype(np.int64))
        pairs, tf = np.unique(term_ids * max(len(documents), 1) + doc_ids, return_counts=True)
        terms, docs = np.divmod(pairs, max(len(documents), 1))
        df = np.bincount(terms, minlength=len(self.vocabulary)).astype(np.float64)
        idf = np.log(len(documents) - df + 0.5) - np.log(df + 0.5)
        if len(idf):
            idf[idf < 0] = epsilon * idf.mean()
        average = lengths.mean() if len(documents) else 0.0
        norm = k1 * (1 - b + b * lengths / average) if average else np.full(len(documents), k1 * (1 - b))
        self.docs = docs
        self.weights = idf[terms] * tf * (k1 + 1) / (tf + norm[docs])
        self.starts = np.searchsorted(terms, np.arange(len(self.vocabulary) + 1))
        self.size = len(documents)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        scores = np.zeros(self.size)
        for term, count in Counter(query).items():
            term_id = self.vocabulary.get(term)
            if term_id is not None:
                a, b = self.starts[term_id], self.starts[term_id + 1]
                scores[self.docs[a:b]] += count * self.weights[a:b]
        return scores

    def top(self, query: Sequence[str], k: int, exclude: np.ndarray | None = None) -> list[int]:
        """The ``k`` best documents, best first (ties by index), leaving out those where ``exclude`` is true."""
        return rank(self.scores(query), k, exclude)


def rank(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> list[int]:
    """The indices of the ``k`` highest ``scores``, best first (ties by index), leaving out ``exclude``."""
    if exclude is not None:
        scores = np.where(exclude, -np.inf, scores)
    k = min(k, len(scores) - (int(exclude.sum()) if exclude is not None else 0))
    if k <= 0:
        return []
    # Only the scores from the k-th best up need sorting.
    candidates = np.flatnonzero(scores >= np.partition(scores, len(scores) - k)[len(scores) - k])
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]].tolist()


class Retriever:
    """A repository's files in CrossCodeEval's chunks, indexed once for every completion point of the repository."""

    def __init__(self, files: Mapping[str, str], config: CrossFileConfig | None = None):
        config = self.config = config or CrossFileConfig()
        self.lines = {path: text.split("\n") for path, text in files.items()}
        self.chunks: list[tuple[str, int]] = []  # (path, first line)
        documents = []
        for path in sorted(self.lines):
            lines = self.lines[path]
            # Each line's words once; a chunk's words are a slice (overlapping chunks share lines).
            words = [tokens(line) for line in lines]
            flat = [w for line in words for w in line]
            offsets = np.concatenate(([0], np.cumsum([len(line) for line in words])))
            for start in range(0, len(lines), config.chunk_stride):
                end = min(start + config.chunk_lines, len(lines))
                if any(line.strip() for line in lines[start:end]):
                    self.chunks.append((path, start))
                    documents.append(flat[offsets[start] : offsets[end]])
                if end >= len(lines):
                    break
        self.paths = np.array([path for path, _ in self.chunks], dtype=object)
        self.index = BM25(documents)

    def text(self, path: str, start: int) -> str:
        return "\n".join(self.lines[path][start : start + self.config.chunk_lines])

    def query(self, prefix: str) -> list[str]:
        """The terms of the prefix's last ``query_lines`` non-empty lines."""
        lines = [line for line in prefix.split("\n") if line.strip()]
        return tokens("\n".join(lines[-self.config.query_lines :]))

    def retrieve(
        self, point: Mapping, top_k: int | None = None, count_tokens: Callable[[str], int] | None = None
    ) -> list[dict]:
        """The best chunks for ``point`` (never from its own file), best first, each ``path``, ``text``, ``line``
        and ``score``; with ``count_tokens``, only those that fit ``crossfile_tokens`` together. With
        ``next_chunk`` each match gives the ``chunk_lines`` lines after it instead (itself when it ends its file)."""
        top_k = self.config.top_k if top_k is None else top_k
        if not self.chunks:
            return []
        scores = self.index.scores(self.query(point["prefix"]))
        found, used = [], 0
        for i in rank(scores, top_k, exclude=self.paths == point["path"]):
            path, start = self.chunks[i]
            if self.config.next_chunk and start + self.config.chunk_lines < len(self.lines[path]):
                start += self.config.chunk_lines
            chunk = dict(path=path, line=start, text=self.text(path, start), score=float(scores[i]))
            if count_tokens is not None:
                cost = count_tokens(_commented(chunk, point.get("language")))
                if used + cost > self.config.crossfile_tokens:
                    continue
                used += cost
            found.append(chunk)
        return found


def _commented(chunk: Mapping, language: str | None) -> str:
    lines = [chunk["path"], *chunk["text"].split("\n")]
    return "".join(path_comment(line, language) + "\n" for line in lines)


def crossfile_text(chunks: Sequence[Mapping], language: str | None) -> str:
    """The retrieved chunks as comments, each headed by its file's path, to go before the prefix."""
    return "".join(_commented(chunk, language) for chunk in chunks)
