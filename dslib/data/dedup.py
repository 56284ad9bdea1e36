"""Repository-level near-deduplication with MinHash and LSH (DeepSeek-Coder §2.3).

The paper treats "the concatenated code from the repository level as a single sample" and near-dedups
those samples; its MinHash settings are unpublished (FACTS §1c), so the defaults are BigCode's
SantaCoder ones: word 5-gram shingles, 256 permutations, Jaccard threshold 0.7; of each cluster the
first sample is kept. The work splits into two picklable steps that run per partition:

- :func:`minhash_signatures`, texts → ``uint32`` signatures. Words are found and hashed for a whole batch
  of texts at once with numpy (no Python string per word or per shingle), each 5-gram hash is a vectorised
  combination of its words' hashes, and rensa's R-MinHash (Rust; a seeded ``(a·h + b) >> 32`` permutation
  per slot) turns each text's shingle hashes into its signature.
- :func:`clusters_from_signatures`, signatures → clusters: LSH bands as numpy sort keys (:func:`band_keys`,
  which an engine grouping across partitions uses too), candidates confirmed by their estimated Jaccard,
  confirmed pairs joined transitively (as in BigCode's near-dedup).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import numpy as np
import rensa

from dslib.data.ngrams import fmix64, ngram_hashes, words

# Any change here that alters signatures bumps dslib.config.DEDUP_HASH_VERSION, so that cached corpora rebuild.
RENSA_ALGORITHM = 2  # rensa's R-MinHash version these signatures come from
if rensa.RMinHash.ALGORITHM_VERSION != RENSA_ALGORITHM:
    raise ImportError(
        f"rensa's R-MinHash is version {rensa.RMinHash.ALGORITHM_VERSION}, dslib.data.dedup expects {RENSA_ALGORITHM}: "
        "install the rensa range in requirements.txt"
    )

EMPTY = np.uint32(0xFFFFFFFF)  # the value of every slot of a signature with no shingles
CANDIDATE_RECALL = 0.9  # the LSH bands make a pair at the threshold a candidate with at least this probability
_BATCH = 1 << 21  # characters hashed per numpy pass (about 40 bytes of arrays each)
# Rows per rensa call: below its threshold for parallel rows (256), as its thread pool does not survive a fork
# (multiprocessing's, Spark's workers): the processes around the kernel do the parallel work.
_RENSA_ROWS = 255
_PLANE, _UNICODE = 0x10000, 0x110000  # the first plane's table takes ms, all of Unicode's 0.1 s
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD6E8FEB86659FD93))  # odd multipliers of a 64-bit mix


@cache
def _word_characters(top: int) -> np.ndarray:
    """Whether each code point below ``top`` is a word character of ``ngrams.WORD`` (``\\w``), from the regex itself."""
    every = np.arange(top, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    every = every.replace("\0", "\1")  # \0 and \1 are both non-word characters
    marked = re.sub(r"\w", "\0", every)
    return np.frombuffer(marked.encode("utf-32-le", "surrogatepass"), dtype=np.uint32) == 0


def _pieces(text: str) -> list[str]:
    """``text`` cut into pieces of about ``_BATCH`` characters, only at non-word characters (no word is split)."""
    pieces, start = [], 0
    while len(text) - start > _BATCH:
        cut = text.rfind("\n", start + _BATCH // 2, start + _BATCH)
        if cut < 0:
            match = re.compile(r"\W").search(text, start + _BATCH // 2)
            cut = match.start() if match else len(text)
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _batches(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive ranges of items of about ``_BATCH`` characters in all, at least one item each."""
    ranges, lo, size = [], 0, 0
    for i, length in enumerate(lengths):
        if i > lo and size + length > _BATCH:
            ranges.append((lo, i))
            lo, size = i, 0
        size += length
    return [*ranges, (lo, len(lengths))] if len(lengths) else ranges


def _word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hash of every word of ``texts`` in order, and the number of words of each text.

    A word hashes to the wrapping sum over its characters of a mix of (code point, position in the word):
    a few passes over the batch's characters, no Python object per word.
    """
    joined = "\0".join(texts)  # NUL is a non-word character, so no word spans two texts
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    inside = _word_characters(_PLANE if len(points) == 0 or points.max() < _PLANE else _UNICODE)[points]
    edges = np.flatnonzero(np.diff(inside, prepend=False, append=False))
    starts, lengths = edges[::2], edges[1::2] - edges[::2]
    first = np.cumsum(lengths) - lengths  # each word's first character among the word characters
    step = np.ones(int(lengths.sum()), dtype=np.uint64)
    step[first] = 1 - lengths[np.arange(len(first)) - 1].astype(np.uint64)  # back to 0 at each word's start
    step[:1] = 0
    values = np.cumsum(step, dtype=np.uint64) << np.uint64(21)  # 21 bits hold any code point
    values |= points[inside]
    values *= _MIX[0]
    values ^= values >> np.uint64(32)
    values *= _MIX[1]
    mixed = np.concatenate([[np.uint64(0)], np.cumsum(values, dtype=np.uint64)])
    hashes = mixed[first + lengths] - mixed[first]
    text_starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    counts = np.diff(np.searchsorted(starts, text_starts), append=len(starts))
    return hashes, counts


def shingle_hashes(texts: Sequence[str], ngram: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The uint64 hashes of every text's word ``ngram``-grams, flat, and the row offsets (``len(texts) + 1``).

    A text of fewer than ``ngram`` words has one shingle, all its words (as in :func:`shingles`); an empty one none.
    """
    pieces = [(i, piece) for i, text in enumerate(texts) for piece in _pieces(text)]
    parts, counts = [], np.zeros(len(texts), dtype=np.int64)
    for lo, hi in _batches([len(piece) for _, piece in pieces]):
        hashes, piece_counts = _word_hashes([piece for _, piece in pieces[lo:hi]])
        parts.append(hashes)
        np.add.at(counts, [i for i, _ in pieces[lo:hi]], piece_counts)
    words_ = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    doc = np.repeat(np.arange(len(texts)), counts)
    grams = ngram_hashes(words_, ngram)
    keep = doc[: len(grams)] == doc[ngram - 1 :]
    shingle_doc, shingle_hash = doc[: len(grams)][keep], grams[keep]
    short = np.flatnonzero((counts > 0) & (counts < ngram))
    if len(short):
        ends = np.cumsum(counts)
        extra = [ngram_hashes(words_[ends[i] - counts[i] : ends[i]], int(counts[i]))[0] for i in short]
        order = np.argsort(np.concatenate([shingle_doc, short]), kind="stable")
        shingle_hash = np.concatenate([shingle_hash, np.array(extra, dtype=np.uint64)])[order]
        shingle_doc = np.concatenate([shingle_doc, short])[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(shingle_doc, minlength=len(texts)))])
    return shingle_hash, offsets.astype(np.uint64)


def shingles(text: str, ngram: int = 5) -> set[str]:
    """The set of word ``ngram``-grams of ``text``, words joined by a space (a shorter text is one shingle).

    The readable reference for :func:`shingle_hashes`: tests and benchmarks take exact Jaccard from it.
    """
    tokens = words(text)
    if len(tokens) < ngram:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)}


def minhash_signatures(texts: Sequence[str], num_perm: int = 256, ngram: int = 5, seed: int = 1) -> np.ndarray:
    """MinHash signatures of ``texts`` as a ``[len(texts), num_perm]`` uint32 array (rows of ``EMPTY`` if no words).

    Texts go in batches of about ``_BATCH`` characters, so memory stays bounded on a partition of any size.
    """
    texts = list(texts)
    signatures = np.full((len(texts), num_perm), EMPTY, dtype=np.uint32)
    for lo, hi in _batches([len(text) for text in texts]):
        hashes, offsets = shingle_hashes(texts[lo:hi], ngram)
        for row in range(0, hi - lo, _RENSA_ROWS):
            bounds = offsets[row : row + _RENSA_ROWS + 1]
            flat = hashes[int(bounds[0]) : int(bounds[-1])]
            matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, bounds - bounds[0], num_perm, seed)
            signatures[lo + row : lo + row + len(bounds) - 1] = np.array(matrix.to_rows(), dtype=np.uint32)
    return signatures


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The MinHash estimate of the Jaccard similarity: the fraction of equal signature slots."""
    return float(np.mean(a == b))


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows)``: the fewest candidates such that a pair at ``threshold`` is one with ≥ CANDIDATE_RECALL.

    Every candidate is then confirmed by its estimated Jaccard, so extra candidates cost time, not precision
    (datasketch's balanced choice, 25 × 10 for 0.7 and 256, makes a pair at 0.7 a candidate half the time).
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= CANDIDATE_RECALL:
            return bands, rows
    return num_perm, 1


def band_keys(signatures: np.ndarray, threshold: float = 0.7) -> np.ndarray:
    """One uint64 key per LSH band of each signature, ``[rows, bands]`` (:func:`lsh_bands`).

    Two rows that share a key in some band are a candidate pair; an engine that groups rows by ``(band, key)``
    across partitions (Spark) finds the candidates :func:`clusters_from_signatures` finds in one process.
    """
    signatures = np.asarray(signatures, dtype=np.uint32)
    bands, rows = lsh_bands(threshold, signatures.shape[1])
    keys = np.empty((len(signatures), bands), dtype=np.uint64)
    for lo in range(0, len(signatures), 1 << 14):  # bounded memory: 16k rows widened to uint64 at a time
        block = signatures[lo : lo + (1 << 14), : bands * rows].reshape(-1, bands, rows).astype(np.uint64)
        keys[lo : lo + len(block)] = fmix64(block @ _multipliers(rows))
    return keys


def _band_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of positions ``(a, b)`` with equal ``keys``, ``a`` before ``b`` in sorted order."""
    if len(keys) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    run_start = np.flatnonzero(np.diff(keys[order], prepend=~keys[order[:1]]))
    run_end = np.append(run_start[1:], len(keys))
    later = np.repeat(run_end, run_end - run_start) - np.arange(len(keys)) - 1  # members after each in its run
    left = np.repeat(np.arange(len(keys)), later)
    right = left + 1 + np.arange(len(left)) - np.repeat(np.cumsum(later) - later, later)
    return order[left], order[right]


def clusters_from_signatures(signatures: np.ndarray, threshold: float = 0.7) -> list[list[int]]:
    """Groups of two or more rows whose signatures agree on at least ``threshold`` of their slots.

    Rows with equal signatures join at once; the distinct ones go through LSH (:func:`lsh_bands`), each
    candidate is confirmed by its estimated Jaccard, and confirmed pairs are joined transitively
    (union-find), as in BigCode's near-dedup. Rows with no shingles never match. Clusters are sorted
    lists of row indices, ordered by their first row.
    """
    signatures = np.asarray(signatures, dtype=np.uint32)
    n, num_perm = signatures.shape
    parent = np.arange(n)
    live = np.flatnonzero((signatures != EMPTY).any(axis=1))
    whole = fmix64(signatures[live].astype(np.uint64) @ _multipliers(num_perm))
    _, first, inverse = np.unique(whole, return_index=True, return_inverse=True)
    rep = live[first[inverse]]
    same = np.all(signatures[live] == signatures[rep], axis=1)  # a hash collision keeps its own row
    parent[live[same]] = rep[same]
    distinct = live[~same | (rep == live)]
    keys = band_keys(signatures[distinct], threshold)
    codes = [np.zeros(0, dtype=np.int64)]
    for band in range(keys.shape[1]):
        a, b = _band_pairs(keys[:, band])
        codes.append(distinct[np.minimum(a, b)] * n + distinct[np.maximum(a, b)])
    codes = np.sort(np.concatenate(codes))
    left, right = np.divmod(codes[np.diff(codes, prepend=-1) != 0], n)
    agree = np.zeros(len(left), dtype=bool)
    for lo in range(0, len(left), 1 << 14):
        i, j = left[lo : lo + (1 << 14)], right[lo : lo + (1 << 14)]
        agree[lo : lo + len(i)] = (signatures[i] == signatures[j]).mean(axis=1) >= threshold
    links = parent.tolist()
    for i, j in zip(left[agree].tolist(), right[agree].tolist(), strict=True):
        while links[i] != i:
            i = links[i]
        while links[j] != j:
            j = links[j]
        links[max(i, j)] = min(i, j)
    parent = np.array(links, dtype=np.int64)
    while not np.array_equal(parent, parent[parent]):
        parent = parent[parent]
    members = np.flatnonzero(parent != np.arange(n))
    roots = np.unique(parent[members])
    groups = {int(r): [int(r)] for r in roots}
    for i in members.tolist():
        groups[int(parent[i])].append(i)
    return [groups[int(r)] for r in roots]


@cache
def _multipliers(count: int) -> np.ndarray:
    """Fixed odd multipliers that combine ``count`` uint32 values into one uint64 key."""
    return np.random.default_rng(count).integers(0, 1 << 63, count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def near_duplicate_clusters(
    texts: Sequence[str], threshold: float = 0.7, num_perm: int = 256, ngram: int = 5, seed: int = 1
) -> list[list[int]]:
    """Clusters (two or more indices, sorted) of near-duplicate ``texts``; a pipeline keeps each cluster's first."""
    return clusters_from_signatures(minhash_signatures(texts, num_perm, ngram, seed), threshold)
