"""The packed stream: no token lost or duplicated across ranks × workers, exact resume, special ids only from FIM."""

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from dslib.artifacts import write_manifest
from dslib.config import ConfigError, FIMConfig
from dslib.data.mix import mix_order
from dslib.fim import ContextFIM, Sentinel, recover_document
from dslib.packing import NO_FIM, PackedDataset, build_stream, stream_label, stream_statistics
from dslib.tokenizer import ADDED_TOKENS, BOS, EOS, FIM_BEGIN, FIM_END, FIM_HOLE, encode_text, train_tokenizer

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
    # Another seed's stream has a folder of its own, and building it leaves the first one as it was.
    other = ensure_stream("smoke", "heldout", NO_FIM, seed=1)
    assert other != first and other.name == f"{first.name}_seed1"
    assert json.loads((first / "manifest.json").read_text())["created"] == created
    assert json.loads((other / "manifest.json").read_text())["config"]["seed"] == 1


# ----------------------------------------------------------------------------------------------------------
# Context-level FIM (Bavarian et al. 2022; SantaCoder): FIM on each document fragment of a training sequence


def _context(tmp_path: Path, fim: FIMConfig, **kwargs) -> PackedDataset:
    directory = tmp_path if (tmp_path / "tokens.bin").exists() else _build(tmp_path, NO_FIM)
    return PackedDataset(directory, SEQ_LEN, context_fim=ContextFIM(tokenizer(), fim), **kwargs)


def _raw(ds: PackedDataset, index: int) -> np.ndarray:
    return np.asarray(ds.tokens()[index * SEQ_LEN : (index + 1) * SEQ_LEN + 1], dtype=np.int64)


def _undo(piece: list[int], ids: dict) -> list[list[int]]:
    """The original order of a transformed fragment's parts, parsed on ids: c0 m1 c1 … mk ck."""
    pre, suf, mid = ids[Sentinel.PRE], ids[Sentinel.SUF], ids[Sentinel.MID]
    assert piece[0] == pre and piece.count(pre) == 1 and piece.count(mid) == 1
    head, tail = piece[1 : piece.index(mid)], piece[piece.index(mid) + 1 :]

    def parts(seq):
        out = [[]]
        for i in seq:
            out.append([]) if i == suf else out[-1].append(i)
        return out

    kept, masked = parts(head), parts(tail)
    assert len(kept) == len(masked) + 1
    return [p for c, m in zip(kept, masked, strict=False) for p in (c, m)] + [kept[-1]]


@pytest.mark.parametrize("granularity", ["token", "char"])
@pytest.mark.parametrize("mode", ["psm", "spm", "msp"])
def test_context_fim_at_rate_one_transforms_every_fragment_and_undoes_exactly(tmp_path, granularity, mode):
    fim = FIMConfig(fim_rate=1.0, mode=mode, granularity=granularity, level="context")
    ds = _context(tmp_path, fim, seed=2)
    cf, tok = ds.context_fim, tokenizer()
    boundaries = set(cf.boundaries)
    for index in range(ds.num_sequences):
        raw = _raw(ds, index)
        ids, splits = ds.fim_sequence(index, epoch=1)
        full, again = cf(raw, np.random.default_rng((2, 1, index)))
        assert ids.tolist() == full[: SEQ_LEN + 1] and again == splits  # the sequence is the cut-back transform
        fragments = cf.fragments(raw)
        splittable = [b - a >= cf.MIN_FRAGMENT for a, b in fragments]
        assert [s is not None for s in splits] == splittable
        if not any(splittable):
            assert ids.tolist() == raw.tolist()
            continue
        assert cf.ids[Sentinel.PRE] in ids.tolist()
        # BOS/EOS stay where they were relative to the fragments; each fragment comes back from its layout.
        cut = [k for k, i in enumerate(full) if i in boundaries]
        assert [full[k] for k in cut] == [int(i) for i in raw if i in boundaries]
        out = [(a, b) for a, b in zip([0, *(k + 1 for k in cut)], [*cut, len(full)], strict=True) if b > a]
        assert len(out) == len(fragments)
        for (a, b), (c, d), split in zip(fragments, out, splits, strict=True):
            original, piece = raw[a:b].tolist(), full[c:d]
            if split is None:
                assert piece == original
                continue
            restored = _undo(piece, cf.ids)
            if granularity == "token" or "\ufffd" in tok.decode(original, skip_special_tokens=False):
                assert sum(restored, []) == original
            else:  # character level: the pieces were re-encoded, the text is the fragment's
                text = "".join(tok.decode(p, skip_special_tokens=False) for p in restored)
                assert text == tok.decode(original, skip_special_tokens=False)


@pytest.mark.parametrize("mode", ["psm", "msp"])
def test_context_fim_never_forges_sentinels_from_literal_text(mode):
    tok = tokenizer()
    literal = corpus()[-2]
    cf = ContextFIM(tok, FIMConfig(fim_rate=1.0, mode=mode, level="context"))
    raw = np.array([tok.token_to_id(BOS), *encode_text(tok, [literal])[0], tok.token_to_id(EOS)])
    assert not set(raw.tolist()) & {cf.ids[s] for s in Sentinel}
    for seed in range(20):
        full, [split] = cf(raw, np.random.default_rng(seed))
        assert split is not None and full[0] == raw[0] and full[-1] == raw[-1]
        restored = _undo(full[1:-1], cf.ids)  # exactly one begin and one end sentinel: the inserted ones
        assert "".join(tok.decode(p, skip_special_tokens=False) for p in restored) == literal
        assert sum(i == cf.ids[Sentinel.SUF] for i in full) == len(split.cuts) - 1  # k spans: 2k - 1 holes


def test_context_fim_rate_is_binomial(tmp_path):
    ds = _context(tmp_path, FIMConfig(fim_rate=0.5, mode={"psm": 1, "spm": 1}, level="context"))
    trials = hits = 0
    for epoch in range(3):
        for index in range(ds.num_sequences):
            raw = _raw(ds, index)
            _, splits = ds.fim_sequence(index, epoch)
            eligible = [b - a >= ds.context_fim.MIN_FRAGMENT for a, b in ds.context_fim.fragments(raw)]
            trials += sum(eligible)
            hits += sum(s is not None for s, e in zip(splits, eligible, strict=True) if e)
            assert all(s is None for s, e in zip(splits, eligible, strict=True) if not e)
    assert trials > 500
    assert abs(hits / trials - 0.5) <= 4 * np.sqrt(0.25 / trials)
    assert stream_statistics(ds)["fim_documents"] == 0  # the stream itself holds no FIM


def test_context_fim_is_the_same_for_any_split_and_resumes_exactly(tmp_path):
    fim = FIMConfig(fim_rate=0.5, level="context")
    ds = _context(tmp_path, fim, seed=5)
    reference = list(PackedDataset(ds.tokens(), SEQ_LEN, seed=5, epochs=2, context_fim=ds.context_fim))
    assert any(not torch.equal(ds.sequence(i, 0), ds.sequence(i, 1)) for i in range(ds.num_sequences))  # fresh draws
    sharded = Counter()
    for rank in range(2):
        batches = list(_context(tmp_path, fim, seed=5, batch_size=4, rank=rank, world_size=2, epochs=2).loader(2))
        single = list(_context(tmp_path, fim, seed=5, batch_size=4, rank=rank, world_size=2, epochs=2).loader(0))
        assert all(torch.equal(a, b) for a, b in zip(batches, single, strict=True))
        sharded.update(tuple(s.tolist()) for b in batches for s in b)
    assert sharded == Counter(tuple(s.tolist()) for s in reference)
    loader = _context(tmp_path, fim, seed=5, batch_size=4).loader(2)
    first = [b for _, b in zip(range(ds.num_sequences // 4 + 2), loader, strict=False)]  # into epoch 1
    resumed = _context(tmp_path, fim, seed=5, batch_size=4, epochs=2).loader(2)
    resumed.load_state_dict(json.loads(json.dumps(loader.state_dict())))
    seen = [s for b in first for s in b] + [s for b in resumed for s in b]
    assert len(seen) == len(reference) and all(torch.equal(a, b) for a, b in zip(seen, reference, strict=True))


def test_fim_level_and_stream_labels():
    with pytest.raises(ConfigError, match="document, context"):
        FIMConfig(level="sequence")
    # Streams built before the FIM ablation's settings left FIMConfig keep their folders (labels recorded then).
    assert stream_label("train", FIMConfig()) == "train_psm_fim0.5_a312fe45"
    assert stream_label("train", FIMConfig(level="context")) == "train_psm_fim0.5_431f062f"
    joint = FIMConfig(level="context", mode={"psm": 0.5, "spm": 0.5})
    assert stream_label("heldout", joint) == "heldout_psm0.5+spm0.5_fim0.5_abe743eb"


def test_mixed_stream_samples_sources_by_weight_and_records_token_shares(tmp_path):
    """§2's mix: documents drawn by mix_order, each written whole, and the realised token shares counted."""
    texts = corpus()[:12]
    sources = ["english" if i % 4 == 0 else "code" for i in range(len(texts))]
    table = datasets.Dataset.from_dict({"text": texts, "source": sources, "size": [len(t.encode()) for t in texts]})
    counts = build_stream(table, tokenizer(), tmp_path, NO_FIM, seed=3, mix={"code": 0.5, "english": 0.5})
    expected = mix_order(sources, table["size"], {"code": 0.5, "english": 0.5}, 3)
    assert counts["documents"] == len(expected)
    docs = _documents(np.fromfile(tmp_path / "tokens.bin", dtype=counts["dtype"]))
    assert [tokenizer().decode(d) for d in docs] == [texts[i] for i in expected]
    mix = counts["mix"]
    assert set(mix) == {"code", "english"} and mix["code"]["tokens"] + mix["english"]["tokens"] == counts["tokens"]
    assert mix["english"]["documents"] == sum(sources[i] == "english" for i in expected)
    assert abs(mix["english"]["share"] - 0.5) < 0.2  # bytes are the sampler's unit, tokens what is recorded
