"""Repository-level near-dedup (DeepSeek-Coder §2.3): signatures against datasketch and exact Jaccard."""

import random
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from dslib.data.dedup import (
    EMPTY,
    estimated_jaccard,
    lean_minhash,
    minhash_signatures,
    near_duplicate_clusters,
    shingle_hash,
    shingle_hashes,
    shingles,
)

DATASKETCH = Path(__import__("datasketch").__file__).parent
REAL_TEXTS = [(DATASKETCH / name).read_text() for name in ("minhash.py", "lsh.py", "lshforest.py", "hashfunc.py")]


def exact_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def datasketch_signature(text, hashfunc=shingle_hash, num_perm=256, seed=1):
    minhash = MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc)
    for shingle in shingles(text):  # the per-shingle update loop the vectorised version replaces
        minhash.update(shingle.encode())
    return minhash


@pytest.mark.parametrize(
    "text",
    [*REAL_TEXTS, "one two", "a b c d e", "", "   \n"],
    ids=["minhash", "lsh", "lshforest", "hashfunc", "2w", "5w", "empty", "blank"],
)
def test_signatures_equal_datasketch_on_the_same_shingle_hashes(text):
    ours = minhash_signatures([text])[0]
    assert np.array_equal(ours, datasketch_signature(text).hashvalues)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["def", "x", "return", "self", "0", "é", "ünïcode", "_a1"]), max_size=40))
def test_shingle_hashes_are_the_hashes_of_the_shingles(tokens):
    text = " ".join(tokens)
    assert shingle_hashes(text).tolist() == sorted({shingle_hash(s) for s in shingles(text)})


def test_batching_does_not_change_signatures():
    big = "\n".join(REAL_TEXTS) * 3  # more shingles than one batch
    texts = [REAL_TEXTS[0], "", big, "tiny text", *REAL_TEXTS[1:]]
    together = minhash_signatures(texts)
    one_by_one = np.stack([minhash_signatures([t])[0] for t in texts])
    assert np.array_equal(together, one_by_one)
    assert np.all(together[1] == EMPTY)


def _variant(words: list[str], rng: random.Random, keep: float) -> str:
    """A copy of a document with roughly (1 - keep) of its words replaced."""
    return " ".join(w if rng.random() < keep else f"w{rng.randrange(10**6)}" for w in words)


def test_estimated_jaccard_tracks_exact_jaccard_and_datasketch():
    rng = random.Random(0)
    words = " ".join(REAL_TEXTS).split()
    ours_errors, datasketch_errors = [], []
    for keep in np.linspace(0.8, 1.0, 12):
        start = rng.randrange(len(words) - 800)
        base = " ".join(words[start : start + 800])
        other = _variant(words[start : start + 800], rng, keep)
        exact = exact_jaccard(shingles(base), shingles(other))
        sig = minhash_signatures([base, other])
        ours = estimated_jaccard(sig[0], sig[1])
        # datasketch with its own default hash (SHA-1) on the same shingles: an independent estimate.
        reference = datasketch_signature(base, hashfunc=None).jaccard(datasketch_signature(other, hashfunc=None))
        assert abs(ours - exact) < 0.1 and abs(reference - exact) < 0.1
        ours_errors.append(abs(ours - exact))
        datasketch_errors.append(abs(reference - exact))
        assert lean_minhash(sig[0]).jaccard(lean_minhash(sig[1])) == pytest.approx(ours)
    # 256 permutations: standard error ≤ 0.031; both estimators are unbiased to within noise.
    assert np.mean(ours_errors) < 0.035 and np.mean(datasketch_errors) < 0.035


def test_near_duplicate_clusters_agree_with_brute_force():
    rng = random.Random(1)
    words = " ".join(REAL_TEXTS).split()
    docs = []
    for start in (0, 1500, 3000):
        chunk = words[start : start + 600]
        docs += [" ".join(chunk), _variant(chunk, rng, 0.99)]
    docs += [_variant(words[4000:4600], rng, 0.7), " ".join(words[4000:4600])]  # far apart: J ≈ 0.2
    docs.append("")
    clusters = near_duplicate_clusters(docs, threshold=0.7)
    sets = [shingles(d) for d in docs]
    pairs = {(i, j) for i in range(len(docs)) for j in range(i + 1, len(docs)) if sets[i] and sets[j]}
    close = {p for p in pairs if exact_jaccard(sets[p[0]], sets[p[1]]) >= 0.8}  # 0.83 to 0.97 here
    far = {p for p in pairs if exact_jaccard(sets[p[0]], sets[p[1]]) < 0.5}
    assert close == {(0, 1), (2, 3), (4, 5)} and (6, 7) in far
    together = {(c[i], c[j]) for c in clusters for i in range(len(c)) for j in range(i + 1, len(c))}
    assert close <= together and not far & together
    assert clusters == [[0, 1], [2, 3], [4, 5]]


def test_exact_copies_cluster_and_empty_texts_do_not():
    assert near_duplicate_clusters(["a b c d e f", "x", "a b c d e f", "", ""]) == [[0, 2]]
