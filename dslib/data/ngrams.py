"""Word n-grams as stable 64-bit hashes, computed for a whole document at once with numpy.

Near-dedup (§2.3) and decontamination (§2.4) both compare documents by their word n-grams. Each distinct
word is hashed once (BLAKE2b, so the values do not change between processes, unlike ``hash()``); an
n-gram's hash is a fixed random linear combination of its words' hashes (wrapping uint64 arithmetic)
passed through the MurmurHash3 64-bit finaliser, all n-grams of a document in one vectorised step.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

# Words as BigCode's near-dedup splits them (``[^A-Za-z_0-9]``), extended to Unicode letters and digits.
WORD = re.compile(r"\w+")
MAX_NGRAM = 64

# One odd multiplier per position in the n-gram, so that "a b" and "b a" hash apart.
_POSITION = np.random.default_rng(0x5EED).integers(0, 1 << 63, MAX_NGRAM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_FMIX64 = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def words(text: str) -> list[str]:
    return WORD.findall(text)


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def word_hashes(tokens: list[str]) -> np.ndarray:
    """One uint64 per word, each distinct word hashed once."""
    table = {word: _word_hash(word) for word in set(tokens)}
    return np.fromiter((table[t] for t in tokens), dtype=np.uint64, count=len(tokens))


def fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection that mixes every input bit into every output bit)."""
    shift, m1, m2 = _FMIX64
    values = values ^ (values >> shift)
    values = values * m1
    values = values ^ (values >> shift)
    values = values * m2
    return values ^ (values >> shift)


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """The uint64 hash of every run of ``n`` consecutive words (``len - n + 1`` values; none if shorter)."""
    if not 0 < n <= MAX_NGRAM:
        raise ValueError(f"n-gram length {n} must be between 1 and {MAX_NGRAM}")
    count = len(hashes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    combined = hashes[:count] * _POSITION[0]
    for j in range(1, n):
        combined += hashes[j : j + count] * _POSITION[j]
    return fmix64(combined)
