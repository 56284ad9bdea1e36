"""Repository-level near-deduplication with MinHash and LSH (DeepSeek-Coder §2.3).

The paper treats "the concatenated code from the repository level as a single sample" and near-dedups
those samples; its MinHash settings are unpublished (FACTS §1c), so the defaults are BigCode's
SantaCoder ones: word 5-gram shingles, 256 permutations, Jaccard threshold 0.7. Signatures use
datasketch's ``affine32`` permutation scheme (MurmurHash3 pre-mix, then ``a·h + b mod 2^32``) with the
permutations datasketch itself draws, so a signature equals ``datasketch.MinHash(...).hashvalues`` for
the same shingle hashes; but all shingles of a batch of documents are permuted at once as one numpy
matrix instead of one ``update`` call per shingle. datasketch's ``MinHashLSH`` (with its own choice of
bands and rows for the threshold) finds the candidate pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from dslib.data.ngrams import ngram_hashes, word_hashes, words

SCHEME = "affine32"
EMPTY = np.uint32(0xFFFFFFFF)  # the value of every slot of a signature with no shingles
_BATCH = 4096  # shingles permuted per matrix: (num_perm × 4096) uint32 stays inside the CPU cache
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))


def shingles(text: str, ngram: int = 5) -> set[str]:
    """The set of word ``ngram``-grams of ``text``, words joined by a space (a shorter text is one shingle)."""
    tokens = words(text)
    if len(tokens) < ngram:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)}


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """The distinct 32-bit hashes of :func:`shingles` (``text``'s shingles), computed without building strings."""
    tokens = words(text)
    if not tokens:
        return np.zeros(0, dtype=np.uint32)
    hashes = ngram_hashes(word_hashes(tokens), min(ngram, len(tokens)))
    return np.unique((hashes >> np.uint64(32)).astype(np.uint32))


def shingle_hash(shingle: str | bytes) -> int:
    """The hash :func:`shingle_hashes` gives one shingle; pass it as ``hashfunc`` to ``datasketch.MinHash``."""
    text = shingle.decode() if isinstance(shingle, bytes) else shingle
    tokens = text.split(" ")
    return int(ngram_hashes(word_hashes(tokens), len(tokens))[0] >> np.uint64(32))


def _fmix32(values: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2 = _FMIX32
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s1)


@cache
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32)[:, None], b.astype(np.uint32)[:, None]


def _permuted_min(hashes: np.ndarray, starts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Min over each segment of ``hashes`` (segments begin at ``starts``) of every permutation: [segments, perm]."""
    a, b = _permutations(num_perm, seed)
    values = a * _fmix32(hashes)[None, :]
    values += b
    return np.minimum.reduceat(values, starts, axis=1).T


def minhash_signatures(texts: Sequence[str], num_perm: int = 256, ngram: int = 5, seed: int = 1) -> np.ndarray:
    """MinHash signatures of ``texts`` as a ``[len(texts), num_perm]`` uint32 array, shingles permuted in batches."""
    signatures = np.full((len(texts), num_perm), EMPTY, dtype=np.uint32)
    pending: list[tuple[int, np.ndarray]] = []
    pending_size = 0

    def flush():
        nonlocal pending, pending_size
        if pending:
            rows = [i for i, _ in pending]
            lengths = np.array([len(h) for _, h in pending])
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            signatures[rows] = _permuted_min(np.concatenate([h for _, h in pending]), starts, num_perm, seed)
        pending, pending_size = [], 0

    for i, text in enumerate(texts):
        hashes = shingle_hashes(text, ngram)
        if len(hashes) >= _BATCH:
            for lo in range(0, len(hashes), _BATCH):
                chunk = _permuted_min(hashes[lo : lo + _BATCH], np.array([0]), num_perm, seed)[0]
                np.minimum(signatures[i], chunk, out=signatures[i])
        elif len(hashes):
            pending.append((i, hashes))
            pending_size += len(hashes)
            if pending_size >= _BATCH:
                flush()
    flush()
    return signatures


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The MinHash estimate of the Jaccard similarity: the fraction of equal signature slots."""
    return float(np.mean(a == b))


def lean_minhash(signature: np.ndarray, seed: int = 1) -> LeanMinHash:
    """A datasketch ``LeanMinHash`` holding ``signature``, for ``MinHashLSH`` or datasketch's own estimators."""
    return LeanMinHash(seed=seed, hashvalues=signature, scheme=SCHEME)


def clusters_from_signatures(signatures: np.ndarray, threshold: float = 0.7, seed: int = 1) -> list[list[int]]:
    """Groups of two or more rows whose signatures agree on at least ``threshold`` of their slots.

    Candidate pairs come from datasketch's ``MinHashLSH`` (bands and rows chosen by datasketch for the
    threshold); each candidate is confirmed by its estimated Jaccard similarity, and confirmed pairs are
    joined transitively (union-find), as in BigCode's near-dedup. Rows with no shingles never match.
    Clusters are sorted lists of row indices, ordered by their first row.
    """
    lsh = MinHashLSH(threshold=threshold, num_perm=signatures.shape[1])
    parent = list(range(len(signatures)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, signature in enumerate(signatures):
        if np.all(signature == EMPTY):
            continue
        minhash = lean_minhash(signature, seed)
        for j in lsh.query(minhash):
            if estimated_jaccard(signature, signatures[j]) >= threshold:
                parent[max(root(i), root(j))] = min(root(i), root(j))
        lsh.insert(i, minhash)
    groups: dict[int, list[int]] = {}
    for i in range(len(signatures)):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def near_duplicate_clusters(
    texts: Sequence[str], threshold: float = 0.7, num_perm: int = 256, ngram: int = 5, seed: int = 1
) -> list[list[int]]:
    """Clusters (two or more indices, sorted) of near-duplicate ``texts``; a pipeline keeps each cluster's first."""
    return clusters_from_signatures(minhash_signatures(texts, num_perm, ngram, seed), threshold, seed)
