"""Repository-level near-dedup (DeepSeek-Coder §2.3): shingles, signatures and clusters against independent references.

The references: the readable string shingles (``shingles``), exact Jaccard on them, datasketch's own MinHash
and LSH, and brute-force clustering over every pair.
"""

import multiprocessing
import pickle
import random
import sysconfig
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from dslib.config import DEDUP_HASH_VERSION, ConfigError, DataConfig
from dslib.data import dedup
from dslib.data.dedup import (
    EMPTY,
    band_keys,
    clusters_from_signatures,
    estimated_jaccard,
    lsh_bands,
    minhash_signatures,
    near_duplicate_clusters,
    shingle_hashes,
    shingles,
)

DATASKETCH = Path(__import__("datasketch").__file__).parent
REAL_TEXTS = [(DATASKETCH / name).read_text() for name in ("minhash.py", "lsh.py", "lshforest.py", "hashfunc.py")]
STDLIB = Path(sysconfig.get_paths()["stdlib"])
ODD_TEXTS = [
    "",
    "   \n",
    "one",
    "a b c d",
    "a b c d e",
    "ünïcode wörds 日本語 テスト é",
    "x\0y\0z",
    "lone \ud800 surrogate",
    "astral 𝑥𝑦 😀 words",  # beyond the first plane: 𝑥𝑦 is one word, the emoji none
]


def exact_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def text_hashes(text: str) -> set[int]:
    hashes, offsets = shingle_hashes([text])
    assert offsets.tolist() == [0, len(hashes)]
    return set(hashes.tolist())


def brute_force_clusters(signatures: np.ndarray, threshold: float) -> list[list[int]]:
    """Every pair compared: groups of rows joined by estimated Jaccard >= threshold (empty rows never)."""
    parent = list(range(len(signatures)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in combinations(range(len(signatures)), 2):
        live = not np.all(signatures[i] == EMPTY) and not np.all(signatures[j] == EMPTY)
        if live and estimated_jaccard(signatures[i], signatures[j]) >= threshold:
            parent[max(root(i), root(j))] = min(root(i), root(j))
    groups = {}
    for i in range(len(signatures)):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def fork(text: str, every: int) -> str:
    """A copy of ``text`` with a comment added to every ``every``-th line."""
    return "\n".join(line + " # edited" if i % every == 0 else line for i, line in enumerate(text.splitlines()))


@pytest.mark.parametrize("text", [*REAL_TEXTS, *ODD_TEXTS])
def test_shingle_hashes_are_one_hash_per_string_shingle(text):
    # Each string shingle, hashed on its own, is one of the text's hashes, and nothing else is.
    expected = {int(shingle_hashes([s])[0][0]) for s in shingles(text)}
    assert text_hashes(text) == expected
    assert len(expected) == len(shingles(text))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["def", "x", "return", "self", "0", "é", "ünïcode", "_a1", "日本", "+", "\n"]), max_size=40
    )
)
def test_shingle_hashes_match_string_shingles_on_any_word_sequence(tokens):
    text = " ".join(tokens)
    assert text_hashes(text) == {int(shingle_hashes([s])[0][0]) for s in shingles(text)}


def test_batches_and_pieces_do_not_change_hashes(monkeypatch):
    texts = [REAL_TEXTS[0], "", "\n".join(REAL_TEXTS) * 3, "tiny text", *ODD_TEXTS, *REAL_TEXTS[1:]]
    together = minhash_signatures(texts)
    one_by_one = np.stack([minhash_signatures([t])[0] for t in texts])
    monkeypatch.setattr(dedup, "_BATCH", 5_000)  # long texts cut in pieces, many batches
    assert np.array_equal(minhash_signatures(texts), together)
    assert np.array_equal(together, one_by_one)
    assert np.all(together[1] == EMPTY) and not np.any(np.all(together[2:4] == EMPTY, axis=1))


def test_a_text_without_newlines_is_cut_between_words(monkeypatch):
    text = " ".join(f"w{i}" for i in range(5_000))
    whole = text_hashes(text)
    monkeypatch.setattr(dedup, "_BATCH", 1_000)
    assert text_hashes(text) == whole and len(whole) == 4_996


def test_signatures_are_rensas_over_the_same_hashes():
    hashes, offsets = shingle_hashes(REAL_TEXTS)
    rows = [hashes[offsets[i] : offsets[i + 1]].tolist() for i in range(len(REAL_TEXTS))]
    reference = dedup.rensa.RMinHash.digest_matrix_from_token_hash_sets(rows, 256, 1).to_rows()
    assert np.array_equal(minhash_signatures(REAL_TEXTS), np.array(reference, dtype=np.uint32))


def test_estimated_jaccard_is_as_close_to_exact_as_datasketch():
    rng = random.Random(0)
    words = " ".join(REAL_TEXTS).split()
    ours, theirs = [], []
    for keep in np.linspace(0.5, 1.0, 40):
        start = rng.randrange(len(words) - 800)
        base = words[start : start + 800]
        other = " ".join(w if rng.random() < keep else f"w{rng.randrange(10**6)}" for w in base)
        base = " ".join(base)
        exact = exact_jaccard(shingles(base), shingles(other))
        signatures = minhash_signatures([base, other])
        ours.append(abs(estimated_jaccard(signatures[0], signatures[1]) - exact))
        # datasketch with its own hash (SHA-1) and permutations on the same string shingles: an independent estimate.
        a, b = MinHash.bulk([[s.encode() for s in shingles(base)], [s.encode() for s in shingles(other)]], num_perm=256)
        theirs.append(abs(a.jaccard(b) - exact))
    # 256 permutations: standard error <= 0.031; both estimators are unbiased to within noise.
    assert max(ours) < 0.1 and np.mean(ours) < 0.025
    assert np.mean(ours) <= np.mean(theirs) + 0.005


def test_lsh_bands_make_a_pair_at_the_threshold_a_likely_candidate():
    assert lsh_bands(0.7, 256) == (36, 7)  # datasketch's balanced choice is 25 x 10
    for threshold in (0.5, 0.7, 0.85, 1.0):
        bands, rows = lsh_bands(threshold, 256)
        assert bands * rows <= 256
        assert 1 - (1 - threshold**rows) ** bands >= dedup.CANDIDATE_RECALL
        fewer = (256 // (rows + 1), rows + 1)  # one more row per band would miss the recall target
        assert rows == 256 or 1 - (1 - threshold ** fewer[1]) ** fewer[0] < dedup.CANDIDATE_RECALL


def test_band_keys_are_equal_exactly_where_a_band_is_and_do_not_depend_on_the_partition():
    rng = np.random.default_rng(1)
    signatures = rng.integers(0, 2**32 - 1, (40, 256), dtype=np.uint32)
    signatures[1, 7:14] = signatures[0, 7:14]  # rows 0 and 1 share band 1 (7 rows a band at 0.7)
    keys = band_keys(signatures)
    assert keys.shape == (40, 36)
    pairs = combinations(range(40), 2)
    equal = {(i, j, band) for i, j in pairs for band in range(36) if keys[i, band] == keys[j, band]}
    assert equal == {(0, 1, 1)}
    assert np.array_equal(np.concatenate([band_keys(signatures[:13]), band_keys(signatures[13:])]), keys)


def test_clusters_equal_brute_force_on_signatures():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**32 - 1, (12, 256), dtype=np.uint32)
    rows = [base[i // 3].copy() for i in range(36)]  # 12 families of 3
    for k, row in enumerate(rows):  # members agree on 100%, 85% or 75% of their slots with the family's base
        changed = rng.choice(256, size=[0, 38, 64][k % 3], replace=False)
        row[changed] = rng.integers(0, 2**32 - 1, len(changed), dtype=np.uint32)
    signatures = np.stack([*rows, np.full(256, EMPTY, dtype=np.uint32), np.full(256, EMPTY, dtype=np.uint32)])
    order = rng.permutation(len(signatures))
    signatures = signatures[order]
    clusters = clusters_from_signatures(signatures, threshold=0.7)
    assert clusters == brute_force_clusters(signatures, 0.7)
    assert len(clusters) == 12 and all(len(c) == 3 for c in clusters)


def test_exact_copies_cluster_and_empty_texts_do_not():
    assert near_duplicate_clusters(["a b c d e f", "x", "a b c d e f", "", ""]) == [[0, 2]]
    assert near_duplicate_clusters([]) == [] and near_duplicate_clusters([""]) == []
    assert near_duplicate_clusters(["ünïcode wörds 日本語 テスト"] * 3 + ["lone \ud800 surrogate"]) == [[0, 1, 2]]
    copies = clusters_from_signatures(minhash_signatures(["same text here"] * 2_000))
    assert copies == [list(range(2_000))]


def test_real_files_with_planted_near_duplicates_agree_with_exact_jaccard_and_datasketch():
    files = sorted(p for p in STDLIB.glob("*.py") if 4_000 <= p.stat().st_size <= 30_000)
    texts = [p.read_text(encoding="utf-8") for p in random.Random(0).sample(files, 30)]
    texts += [fork(texts[i], every) for i, every in zip(range(15), [2, 3, 5, 10, 20, 40, 80] * 3, strict=False)]
    sets = [shingles(t) for t in texts]
    exact = {(i, j): exact_jaccard(sets[i], sets[j]) for i, j in combinations(range(len(texts)), 2)}
    clusters = near_duplicate_clusters(texts)
    together = {p for c in clusters for p in combinations(c, 2)}
    minhashes = MinHash.bulk([[s.encode() for s in x] for x in sets], num_perm=256)
    lsh, theirs = MinHashLSH(threshold=0.7, num_perm=256), set()
    for i, m in enumerate(minhashes):
        theirs |= {(j, i) for j in lsh.query(m) if m.jaccard(minhashes[j]) >= 0.7}
        lsh.insert(i, m)
    clear = {p for p, j in exact.items() if j >= 0.8}
    far = {p for p, j in exact.items() if j < 0.6}
    assert len(clear) >= 5 and clear <= together and not far & together
    assert clear <= theirs and {p for p in theirs if p in clear or p in far} == clear
    assert clusters == brute_force_clusters(minhash_signatures(texts), 0.7)


def _signatures_in_a_worker(texts):
    return minhash_signatures(texts)


def test_kernel_pickles_and_gives_the_same_signatures_in_another_process():
    texts = [*REAL_TEXTS, *ODD_TEXTS]
    for function in (minhash_signatures, clusters_from_signatures, near_duplicate_clusters):
        assert pickle.loads(pickle.dumps(function)) is function
    # A fresh interpreter (spawn) with its own string-hash seed: hashes must not depend on the process.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        elsewhere = pool.apply(_signatures_in_a_worker, (texts,))
    assert np.array_equal(elsewhere, minhash_signatures(texts))
    assert pickle.loads(pickle.dumps(elsewhere)).dtype == np.uint32


def test_a_forked_worker_computes_signatures_after_its_parent_did():
    # A native thread pool started in the parent would be gone in a forked child: its next parallel call hangs.
    texts = [" ".join(f"w{7 * i + j}" for j in range(60)) for i in range(1_500)]
    here = minhash_signatures(texts)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        elsewhere = pool.apply_async(_signatures_in_a_worker, (texts,)).get(timeout=120)
    assert np.array_equal(elsewhere, here)


def test_the_hash_version_is_part_of_the_data_config():
    assert DataConfig().dedup_hash_version == DEDUP_HASH_VERSION
    with pytest.raises(ConfigError, match="dedup_hash_version"):
        DataConfig(dedup_hash_version=DEDUP_HASH_VERSION - 1)
