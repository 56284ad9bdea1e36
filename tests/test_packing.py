"""The packed stream: no token lost or duplicated across ranks × workers, exact resume, special ids only from FIM."""

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from dslib.artifacts import write_manifest
from dslib.config import FIMConfig
from dslib.fim import recover_document
from dslib.packing import NO_FIM, PackedDataset, build_stream, stream_statistics
from dslib.tokenizer import ADDED_TOKENS, BOS, EOS, FIM_BEGIN, FIM_END, FIM_HOLE, train_tokenizer

SEQ_LEN = 32


@lru_cache(maxsize=1)
def corpus() -> list[str]:
    texts = [p.read_text() for p in sorted(Path(json.__file__).parent.glob("*.py"))]
    # Small documents too, and one that spells the sentinels and EOS literally: it must stay plain text.
    return [*texts, "", "x = 1\n", f"s = '{FIM_HOLE}{FIM_BEGIN}{FIM_END}{EOS}<|EOT|>'\n", "é😀" * 40]


@lru_cache(maxsize=1)
def tokenizer():
    return train_tokenizer(corpus()[:5], vocab_size=400, show_progress=False)


def _build(tmp_path: Path, fim: FIMConfig | None, seed: int = 0) -> Path:
    counts = build_stream(corpus(), tokenizer(), tmp_path, fim, seed, batch_size=3)
    write_manifest(tmp_path, {"fim": str(fim), "seed": seed}, counts=counts)
    return tmp_path


def _documents(stream: np.ndarray) -> list[list[int]]:
    eos, bos = tokenizer().token_to_id(EOS), tokenizer().token_to_id(BOS)
    ends = np.flatnonzero(stream == eos)
    starts = np.concatenate(([-1], ends[:-1])) + 1
    assert all(stream[a] == bos for a in starts)  # every document opens with BOS
    return [stream[a + 1 : b].tolist() for a, b in zip(starts, ends, strict=True)]


@pytest.mark.parametrize(
    "fim", [NO_FIM, FIMConfig(fim_rate=0.5), FIMConfig(fim_rate=1.0, mode={"psm": 1, "spm": 1, "msp": 1})]
)
def test_stream_holds_every_document_once_in_seeded_order(tmp_path, fim):
    ds = PackedDataset(_build(tmp_path, fim, seed=4), SEQ_LEN)
    stream = np.asarray(ds.tokens())
    assert stream[-1] == tokenizer().token_to_id(EOS)
    docs = _documents(stream)
    order = np.random.default_rng(4).permutation(len(corpus()))
    assert len(docs) == len(corpus())
    special = {tokenizer().token_to_id(t) for t in (FIM_BEGIN, FIM_HOLE, FIM_END)}
    for doc, index in zip(docs, order, strict=True):
        decoded = tokenizer().decode(doc, skip_special_tokens=False)
        if special & set(doc):
            # Sentinel ids appear only in FIM documents, and only in the FIM layout.
            assert doc[0] == tokenizer().token_to_id(FIM_BEGIN) and doc.count(tokenizer().token_to_id(FIM_END)) == 1
            if FIM_BEGIN not in corpus()[index]:
                assert recover_document(decoded) == corpus()[index]
        else:
            assert decoded == corpus()[index]
    added = {tokenizer().token_to_id(t) for t in ADDED_TOKENS}
    n_special = sum(1 for i in stream if i in added)
    fim_docs = sum(1 for d in docs if special & set(d))
    assert fim_docs == stream_statistics(ds)["fim_documents"]
    if fim.fim_rate == 0:
        assert n_special == 2 * len(docs)  # BOS and EOS around each document, nothing else


def _reference(ds: PackedDataset) -> list[torch.Tensor]:
    return list(PackedDataset(ds.tokens(), ds.seq_len, seed=ds.seed, epochs=1))


def test_sequences_cover_the_stream_exactly_once(tmp_path):
    ds = PackedDataset(_build(tmp_path, FIMConfig()), SEQ_LEN)
    stream = torch.from_numpy(np.asarray(ds.tokens()).astype(np.int64))
    sequences = _reference(ds)
    assert len(sequences) == ds.num_sequences == (len(stream) - 1) // SEQ_LEN
    assert all(s.shape == (SEQ_LEN + 1,) and s.dtype == torch.long for s in sequences)
    # Sorted by where they start, the label halves x[1:] tile the stream's tokens 1 .. N·T exactly.
    starts = [int(np.flatnonzero(ds.order(0) == i)[0]) for i in range(ds.num_sequences)]
    by_start = [sequences[k] for k in starts]
    assert torch.equal(torch.cat([s[1:] for s in by_start]), stream[1 : ds.num_sequences * SEQ_LEN + 1])
    assert torch.equal(torch.cat([s[:-1] for s in by_start]), stream[: ds.num_sequences * SEQ_LEN])


def _run(directory, rank, world, workers, batch_size=4, epochs=1, seed=0):
    ds = PackedDataset(directory, SEQ_LEN, batch_size=batch_size, rank=rank, world_size=world, seed=seed, epochs=epochs)
    return [b for b in ds.loader(num_workers=workers)]


def test_ranks_times_workers_use_every_sequence_exactly_once(tmp_path):
    directory = _build(tmp_path, FIMConfig())
    reference = Counter(tuple(s.tolist()) for s in _reference(PackedDataset(directory, SEQ_LEN)))
    sharded = Counter()
    for rank in range(2):
        batches = _run(directory, rank, 2, workers=2)
        # A rank's batches do not depend on its number of workers.
        single = _run(directory, rank, 2, workers=0)
        assert len(batches) == len(single) and all(torch.equal(a, b) for a, b in zip(batches, single, strict=True))
        sharded.update(tuple(s.tolist()) for b in batches for s in b)
    assert sharded == reference


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_the_uninterrupted_run(tmp_path, workers):
    directory = _build(tmp_path, FIMConfig())
    n_batches = 2 * PackedDataset(directory, SEQ_LEN, batch_size=4).num_sequences // 4 + 3  # crosses an epoch

    def fresh():
        return PackedDataset(directory, SEQ_LEN, batch_size=4, seed=1).loader(num_workers=workers)

    uninterrupted = []
    for batch in fresh():
        uninterrupted.append(batch)
        if len(uninterrupted) == n_batches:
            break
    first, loader = [], fresh()
    for batch in loader:
        first.append(batch)
        if len(first) == 7:
            break
    state = json.loads(json.dumps(loader.state_dict()))  # survives a checkpoint file
    resumed = fresh()
    resumed.load_state_dict(state)
    rest = []
    for batch in resumed:
        rest.append(batch)
        if len(first) + len(rest) == n_batches:
            break
    assert all(torch.equal(a, b) for a, b in zip(first + rest, uninterrupted, strict=True))


def test_resume_under_another_world_size_keeps_exactly_once(tmp_path):
    directory = _build(tmp_path, FIMConfig())
    reference = Counter(tuple(s.tolist()) for s in _reference(PackedDataset(directory, SEQ_LEN)))
    seen, states = Counter(), []
    for rank in range(2):
        loader = PackedDataset(directory, SEQ_LEN, batch_size=2, rank=rank, world_size=2, epochs=1).loader()
        for i, batch in enumerate(loader):
            seen.update(tuple(s.tolist()) for s in batch)
            if i == 4:
                break
        states.append(loader.state_dict())
    assert states[0] == states[1]
    single = PackedDataset(directory, SEQ_LEN, batch_size=2, epochs=1)
    single.load_state_dict(states[0])
    seen.update(tuple(s.tolist()) for s in single)
    assert seen == reference


def test_same_seed_same_sequences_other_seed_other_order(tmp_path):
    a = _build(tmp_path / "a", FIMConfig(), seed=0)
    b = _build(tmp_path / "b", FIMConfig(), seed=0)
    c = _build(tmp_path / "c", FIMConfig(), seed=1)
    assert np.array_equal(PackedDataset(a, SEQ_LEN).tokens(), PackedDataset(b, SEQ_LEN).tokens())
    assert not np.array_equal(PackedDataset(a, SEQ_LEN).tokens(), PackedDataset(c, SEQ_LEN).tokens())
    first = [next(iter(PackedDataset(a, SEQ_LEN, seed=s))) for s in (0, 0, 1)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])


def test_mismatched_state_is_refused(tmp_path):
    directory = _build(tmp_path, FIMConfig())
    state = PackedDataset(directory, SEQ_LEN).state_dict()
    with pytest.raises(ValueError, match="seq_len"):
        PackedDataset(directory, SEQ_LEN * 2).load_state_dict(state)


def test_bad_inputs_fail_clearly(tmp_path):
    with pytest.raises(TypeError, match="document 1 is NoneType"):
        build_stream(["a", None], tokenizer(), tmp_path, NO_FIM)
    with pytest.raises(ValueError, match="holds no sequence"):
        PackedDataset(np.arange(10), 16)
    with pytest.raises(FileNotFoundError, match="no packed stream"):
        PackedDataset(tmp_path / "missing", 16)


def test_direct_iteration_resumes_too(tmp_path):
    directory = _build(tmp_path, FIMConfig())
    ds = PackedDataset(directory, SEQ_LEN, seed=3)
    it = iter(ds)
    head = [next(it) for _ in range(5)]
    state = ds.state_dict()
    resumed = PackedDataset(directory, SEQ_LEN, seed=3)
    resumed.load_state_dict(state)
    it2 = iter(resumed)
    tail = [next(it2) for _ in range(5)]
    reference = iter(PackedDataset(directory, SEQ_LEN, seed=3))
    assert all(torch.equal(a, next(reference)) for a in head + tail)


@pytest.mark.slow
def test_packed_dataset_builds_the_scale_stream_once():
    from dslib.packing import ensure_stream, packed_dataset
    from dslib.tokenizer import ensure_tokenizer

    first = ensure_stream("smoke", "heldout", NO_FIM)
    created = json.loads((first / "manifest.json").read_text())["created"]
    ds = packed_dataset("smoke", "heldout", NO_FIM, seq_len=16, batch_size=2, rank=1, world_size=2, epochs=1)
    assert ds.path == first and json.loads((first / "manifest.json").read_text())["created"] == created
    assert (ds.rank, ds.world_size, ds.batch_size) == (1, 2, 2)
    tok = ensure_tokenizer("smoke")
    sentinels = {tok.token_to_id(t) for t in (FIM_BEGIN, FIM_HOLE, FIM_END)}
    assert not sentinels & set(np.unique(ds.tokens()).tolist())
    assert len(list(ds)) == ds.num_sequences // 2
