"""The packed training stream: FIM per document, each as BOS … EOS, cut into fixed-length sequences.

DeepSeek-Coder §3.1 applies FIM "at the document level before the packing process". :func:`build_stream`
does exactly that, once per split and FIM setting: documents (repository samples) in a seeded random order,
each transformed by :func:`dslib.fim.encode_fim` with a generator seeded by ``(seed, document index)``
(so the draws do not depend on order or batching), each opened by BOS and closed by EOS, written as one flat
token file. BOS comes first because the released tokenizer (``add_bos_token``) and so every inference prompt
starts with it; a model that never saw BOS in training would meet an untrained embedding at position 0.

With ``FIMConfig.level="context"`` (Bavarian et al. 2022, SantaCoder) the stream is built without FIM and
FIM applies to each training sequence as it is read: :class:`dslib.fim.ContextFIM` transforms each document
fragment between its BOS/EOS tokens with probability ``fim_rate``, drawing from a generator seeded by
``(seed, epoch, sequence index)``, and the result is cut back to ``seq_len + 1`` tokens (the sentinels
lengthen it), so the sequences stay the same for any ranks × workers split and on resume.

A training sequence is ``seq_len + 1`` consecutive tokens starting at a multiple of ``seq_len`` (neighbours
share one token, as in Megatron's GPTDataset): fed ``x[:-1]`` to predict ``x[1:]``, the model sees every
token of the stream as a label exactly once per epoch. The last ``< seq_len`` tokens that fill no sequence
are left out and counted.

:class:`PackedDataset` visits the sequences of epoch ``e`` in the order of a permutation seeded by
``(seed, e)``. Item ``g`` of the endless run goes to rank ``g % world_size``; a rank groups its items into
batches of ``batch_size`` and DataLoader worker ``w`` of ``W`` takes batches ``w, w + W, …``, the order in
which a DataLoader collects them, so a rank sees the same batches whatever its number of workers, and every
sequence goes to exactly one (rank, worker) per epoch. ``state_dict()["position"]`` counts the items all
ranks consumed together (DDP ranks consume in lockstep); :meth:`PackedDataset.load_state_dict` continues
from there, under any world size. Iterate through :class:`PackedLoader` (``dataset.loader(num_workers)``),
which counts what the training loop received, when DataLoader workers are used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from dslib.artifacts import ensure, fingerprint, read_manifest, write_manifest
from dslib.config import FIM_MODES, FIMConfig, Scale, resolve
from dslib.data.mix import mix_order, realised_shares
from dslib.data.pipeline import corpus_label, language_subset, load_corpus
from dslib.fim import DEEPSEEK, ContextFIM, FIMSplit, Sentinel, Sentinels, encode_fim
from dslib.tokenizer import BOS, ensure_tokenizer
from dslib.training.parallel import rank_and_world

TOKENS_FILE = "tokens.bin"
STREAM_FORMAT = 2  # 2: each document opens with BOS; a change here rebuilds cached streams
DOCUMENTS_FILE = "documents.npy"  # per document in stream order: start, length (EOS included), mode code
MODE_CODES = {None: 0, **{mode: i + 1 for i, mode in enumerate(FIM_MODES)}}
NO_FIM = FIMConfig(fim_rate=0.0)


def encode_documents(
    texts: Sequence[str],
    tok: Tokenizer,
    fim: FIMConfig | None,
    indices: Sequence[int],
    seed: int = 0,
    sentinels: Sentinels = DEEPSEEK,
) -> tuple[list[list[int]], list[FIMSplit | None]]:
    """Each document's training ids (BOS, FIM'd text, EOS) and its FIM split; ``indices`` seed the draws."""
    fim = NO_FIM if fim is None else fim
    for i, text in zip(indices, texts, strict=True):
        if not isinstance(text, str):
            raise TypeError(f"document {i} is {type(text).__name__}, not str")
    rngs = [np.random.default_rng((seed, int(i))) for i in indices]
    ids, splits = encode_fim(
        texts,
        tok,
        rngs,
        fim.fim_rate,
        fim.mode,
        sentinels=sentinels,
        granularity=fim.granularity,
        msp_noise_density=fim.msp_noise_density,
        msp_mean_span=fim.msp_mean_span,
    )
    eos, bos = tok.token_to_id(sentinels.eos), tok.token_to_id(BOS)
    if eos is None:
        raise KeyError(f"the tokenizer has no end-of-sentence token {sentinels.eos!r}")
    ids = [[bos, *doc, eos] if bos is not None else [*doc, eos] for doc in ids]
    return ids, splits


def _text_batches(corpus: Sequence[str] | datasets.Dataset, order: np.ndarray, size: int) -> Iterator[tuple]:
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        if isinstance(corpus, datasets.Dataset):
            yield idx, list(corpus.select(idx)["text"])
        else:
            yield idx, [corpus[int(i)] for i in idx]


def build_stream(
    corpus: Sequence[str] | datasets.Dataset,
    tok: Tokenizer,
    directory: str | Path,
    fim: FIMConfig | None = None,
    seed: int = 0,
    sentinels: Sentinels = DEEPSEEK,
    batch_size: int = 64,
    mix: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Write the FIM'd, EOS-joined token stream of ``corpus`` (texts, or a Dataset with ``text``); return counts.

    With ``mix`` weights (§2's data mix) and a Dataset with ``source`` and ``size`` columns, the documents are
    sampled by :func:`dslib.data.mix.mix_order` (a repeated document keeps its FIM draw) and the counts record
    each source's realised share of the tokens.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if tok.get_vocab_size() <= 1 << 16 else np.uint32
    sources = corpus["source"] if mix is not None else None
    if sources is not None:
        order = mix_order(sources, corpus["size"], mix, seed)
    else:
        order = np.random.default_rng(seed).permutation(len(corpus))
    documents = np.zeros((len(order), 3), dtype=np.int64)
    total, row = 0, 0
    with open(directory / TOKENS_FILE, "wb") as out, tqdm(total=len(order), desc="FIM + packing", unit="doc") as bar:
        for idx, texts in _text_batches(corpus, order, batch_size):
            ids, splits = encode_documents(texts, tok, fim, idx, seed, sentinels)
            for doc, split in zip(ids, splits, strict=True):
                documents[row] = (total, len(doc), MODE_CODES[split.mode if split else None])
                total += len(doc)
                row += 1
            out.write(np.concatenate([np.asarray(d, dtype=dtype) for d in ids]).tobytes() if ids else b"")
            bar.update(len(idx))
    np.save(directory / DOCUMENTS_FILE, documents)
    fim_docs = documents[:, 2] > 0
    mixed = {"mix": realised_shares([sources[i] for i in order], documents[:, 1])} if sources is not None else {}
    return {
        **mixed,
        "documents": len(order),
        "tokens": total,
        "dtype": np.dtype(dtype).name,
        "fim_documents": int(fim_docs.sum()),
        "fim_tokens": int(documents[fim_docs, 1].sum()),
        **{f"{mode}_documents": int((documents[:, 2] == code).sum()) for mode, code in MODE_CODES.items() if mode},
    }


def stream_label(split: str, fim: FIMConfig) -> str:
    """A readable folder name for a split's stream under a FIM setting, e.g. ``train_psm_fim0.5_1a2b3c4d``."""
    modes = fim.mode if isinstance(fim.mode, dict) else {fim.mode: 1.0}
    mode = "+".join(f"{m}{w:g}" if len(modes) > 1 else m for m, w in sorted(modes.items()))
    return f"{split}_{mode}_fim{fim.fim_rate:g}_{fingerprint(fim)[:8]}"


def ensure_stream(
    scale: Scale | str | None = None, split: str = "train", fim: FIMConfig | None = None, seed: int | None = None
) -> Path:
    """The folder of the scale's packed stream for ``split`` and ``fim`` (default: the scale's), built when missing.

    At ``fim.level="context"`` that is the stream without FIM (:data:`NO_FIM`); :func:`packed_dataset` adds FIM.

    Under ``torchrun`` with a process group, rank 0 builds while the others wait at a barrier.
    """
    scale = resolve(scale)
    fim = scale.fim if fim is None else fim
    fim = NO_FIM if fim.level == "context" else fim  # context-level FIM is applied as sequences are read
    seed = scale.train.seed if seed is None else seed
    rank, _ = rank_and_world()
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()

    def build_all() -> Path:
        corpus = load_corpus(scale, split)
        tok = ensure_tokenizer(scale)
        # The data mix (§2) shapes what training sees; held-out data stays as it is, every document once.
        mix = scale.data.mix_weights if split == "train" else None
        languages = {}
        if scale.ablation.languages:  # the ablation's subset (§3.1.2: Python), both splits alike, with no mix
            corpus, mix = language_subset(corpus, scale.ablation.languages), None
            languages = {"languages": list(scale.ablation.languages)}
        config = {
            **languages,
            "split": split,
            "mix": mix,
            "fim": fim,
            "seed": seed,
            "corpus": corpus._fingerprint,
            "tokenizer": fingerprint(tok.to_str()),
            "format": STREAM_FORMAT,
        }

        def build(directory: Path) -> None:
            start = time.perf_counter()
            counts = build_stream(corpus, tok, directory, fim, seed, mix=mix)
            write_manifest(
                directory,
                config,
                inputs={"corpus": config["corpus"], "tokenizer": config["tokenizer"]},
                counts=counts,
                timings={"build_s": time.perf_counter() - start},
            )

        subset = "_" + "+".join(scale.ablation.languages).lower() if scale.ablation.languages else ""
        # A folder per seed: the ablations' seed replicas train side by side (or in two processes), and one
        # folder for all seeds would be rebuilt, under a reader's feet, each time the seed changed.
        seeded = f"_seed{seed}" if seed else ""
        stage = f"packed/{stream_label(split, fim)}{subset}{seeded}{corpus_label(scale)}"
        return ensure(scale.name, stage, config, build)

    if not distributed:
        return build_all()
    directory = build_all() if rank == 0 else None
    torch.distributed.barrier()
    return directory if rank == 0 else build_all()


class PackedDataset(IterableDataset):
    """Fixed-length ``LongTensor`` sequences of ``seq_len + 1`` tokens from a packed stream, sharded and resumable.

    ``tokens`` is a 1-D id array or a folder written by :func:`build_stream`. ``epochs=None`` never ends (the
    training loop stops at its step budget); with a number the stream ends after that many epochs.
    ``context_fim`` applies context-level FIM to each sequence (see the module docstring).
    """

    def __init__(
        self,
        tokens: np.ndarray | str | Path,
        seq_len: int,
        *,
        batch_size: int = 1,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epochs: int | None = None,
        context_fim: ContextFIM | None = None,
    ):
        super().__init__()
        if isinstance(tokens, (str, Path)):
            manifest = read_manifest(Path(tokens))
            if manifest is None or not (Path(tokens) / TOKENS_FILE).exists():
                raise FileNotFoundError(f"{tokens} holds no packed stream (no manifest or {TOKENS_FILE})")
            self.path, self._tokens = Path(tokens), None
            self.dtype, self.num_tokens = np.dtype(manifest["counts"]["dtype"]), int(manifest["counts"]["tokens"])
        else:
            self.path, self._tokens = None, np.asarray(tokens)
            if self._tokens.ndim != 1 or not np.issubdtype(self._tokens.dtype, np.integer):
                raise ValueError(f"tokens must be a 1-D integer array, got {self._tokens.dtype} {self._tokens.shape}")
            self.dtype, self.num_tokens = self._tokens.dtype, len(self._tokens)
        if seq_len <= 0 or batch_size <= 0 or world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(
                f"need seq_len, batch_size > 0 and 0 <= rank < world_size; got {seq_len}, "
                f"{batch_size}, rank {rank} of {world_size}"
            )
        if epochs is not None and epochs <= 0:
            raise ValueError(f"epochs={epochs} must be positive (or None for an endless stream)")
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.rank, self.world_size, self.epochs = rank, world_size, epochs
        self.context_fim = context_fim
        self.num_sequences = (self.num_tokens - 1) // seq_len
        if self.num_sequences == 0:
            raise ValueError(f"a stream of {self.num_tokens} tokens holds no sequence of seq_len + 1 = {seq_len + 1}")
        self._position = 0  # global item where the next iteration starts
        self._consumed = 0  # items this rank yielded since, when iterated in this process

    @classmethod
    def from_dir(cls, directory: str | Path, seq_len: int, **kwargs: Any) -> PackedDataset:
        return cls(Path(directory), seq_len, **kwargs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self.path is not None:
            state["_tokens"] = None  # workers reopen the memory map instead of pickling its contents
        return state

    def tokens(self) -> np.ndarray:
        """The whole stream (memory-mapped when it lives in a folder)."""
        if self._tokens is None:
            self._tokens = np.memmap(self.path / TOKENS_FILE, dtype=self.dtype, mode="r", shape=(self.num_tokens,))
        return self._tokens

    def order(self, epoch: int) -> np.ndarray:
        """The sequence ids in the order epoch ``epoch`` visits them."""
        return np.random.default_rng((self.seed, epoch)).permutation(self.num_sequences)

    def sequence(self, index: int, epoch: int = 0) -> torch.Tensor:
        """Sequence ``index`` of the stream: tokens ``[index·seq_len, (index+1)·seq_len]``, with context-level FIM
        drawn for ``epoch`` when the dataset has it."""
        return torch.from_numpy(self.fim_sequence(index, epoch)[0])

    def fim_sequence(self, index: int, epoch: int = 0) -> tuple[np.ndarray, list[FIMSplit | None]]:
        """Sequence ``index``'s ids in ``epoch`` and the FIM split of each of its document fragments (none
        without context-level FIM): the draws come from a generator seeded by ``(seed, epoch, index)``."""
        start = index * self.seq_len
        ids = self.tokens()[start : start + self.seq_len + 1].astype(np.int64)
        if self.context_fim is None:
            return ids, []
        transformed, splits = self.context_fim(ids, np.random.default_rng((self.seed, epoch, index)))
        return np.asarray(transformed[: self.seq_len + 1], dtype=np.int64), splits

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        self._position, self._consumed = self._position + self._consumed * self.world_size, 0
        start, end = self._position, None if self.epochs is None else self.epochs * self.num_sequences
        epoch, order = -1, None
        batch = worker
        while True:
            for item in range(batch * self.batch_size, (batch + 1) * self.batch_size):
                g = start + item * self.world_size + self.rank
                if end is not None and g >= end:
                    return
                if g // self.num_sequences != epoch:
                    epoch = g // self.num_sequences
                    order = self.order(epoch)
                sequence = self.sequence(int(order[g % self.num_sequences]), epoch)
                self._consumed = item + 1
                yield sequence
            batch += workers

    def _state(self, position: int) -> dict:
        return {
            "position": position,
            "epoch": position // self.num_sequences,
            "num_sequences": self.num_sequences,
            "num_tokens": self.num_tokens,
            "seq_len": self.seq_len,
            "seed": self.seed,
        }

    def state_dict(self) -> dict:
        """Where the run stands: ``position`` = items consumed by all ranks together, plus what must match."""
        return self._state(self._position + self._consumed * self.world_size)

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from :meth:`state_dict` on any rank of a run with any world size)."""
        for key in ("seq_len", "num_tokens", "seed", "num_sequences"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"cannot resume: the saved stream has {key}={state.get(key)!r}, this one {getattr(self, key)!r}"
                )
        self._position, self._consumed = int(state["position"]), 0

    def loader(self, num_workers: int = 0, pin_memory: bool = False) -> PackedLoader:
        """A :class:`PackedLoader` over this dataset (batches of ``batch_size``)."""
        return PackedLoader(self, num_workers=num_workers, pin_memory=pin_memory)


class PackedLoader:
    """A DataLoader over a :class:`PackedDataset` that counts the batches the training loop received.

    Its ``state_dict()`` is the dataset's, at the position of the last batch handed out; DataLoader workers
    run ahead (prefetch), so the dataset object alone cannot know it.
    """

    def __init__(self, dataset: PackedDataset, num_workers: int = 0, pin_memory: bool = False):
        self.dataset, self.num_workers, self.pin_memory = dataset, num_workers, pin_memory
        self._position = dataset.state_dict()["position"]

    def __iter__(self) -> Iterator[torch.Tensor]:
        self.dataset.load_state_dict(self.state_dict())  # the workers start where this loader stands
        loader = DataLoader(
            self.dataset, batch_size=self.dataset.batch_size, num_workers=self.num_workers, pin_memory=self.pin_memory
        )
        for batch in loader:
            self._position += len(batch) * self.dataset.world_size
            yield batch

    def state_dict(self) -> dict:
        return self.dataset._state(self._position)

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)
        self._position = int(state["position"])


def packed_dataset(
    scale: Scale | str | None = None,
    split: str = "train",
    fim: FIMConfig | None = None,
    *,
    seq_len: int | None = None,
    batch_size: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    seed: int | None = None,
    epochs: int | None = None,
) -> PackedDataset:
    """The scale's packed ``split`` with ``fim`` (default ``scale.fim``), built when missing.

    At ``fim.level="context"`` the sequences come from the stream without FIM and get FIM as they are read.

    Defaults: ``seq_len`` and ``batch_size`` (the micro-batch) and ``seed`` from ``scale.train``; ``rank`` and
    ``world_size`` from the process group (or ``$RANK``/``$WORLD_SIZE``). For held-out left-to-right loss,
    pass ``fim=dslib.packing.NO_FIM`` and ``epochs=1``.
    """
    scale = resolve(scale)
    fim = scale.fim if fim is None else fim
    seed = scale.train.seed if seed is None else seed
    dist_rank, dist_world = rank_and_world()
    context_fim = None
    if fim.level == "context":
        context_fim = ContextFIM(ensure_tokenizer(scale), fim)
    return PackedDataset.from_dir(
        ensure_stream(scale, split, fim, seed),
        scale.train.seq_len if seq_len is None else seq_len,
        batch_size=scale.train.micro_batch_size if batch_size is None else batch_size,
        seed=seed,
        rank=dist_rank if rank is None else rank,
        world_size=dist_world if world_size is None else world_size,
        epochs=epochs,
        context_fim=context_fim,
    )


def context_statistics(dataset: PackedDataset, max_sequences: int | None = 4096) -> dict:
    """Context-level FIM as epoch 0 delivers it, over up to ``max_sequences`` evenly spaced sequences: the share
    of fragments long enough to split that were transformed, of sequences whose labels hold a middle sentinel
    (``sequence_rate``) or any sentinel, and the transformed fragments that are whole documents (BOS … EOS)."""
    cf = dataset.context_fim
    if cf is None:
        raise ValueError("context_statistics needs a dataset with context-level FIM")
    n = dataset.num_sequences if max_sequences is None else min(max_sequences, dataset.num_sequences)
    mid, sentinels = cf.ids[Sentinel.MID], [cf.ids[s] for s in Sentinel]
    fragments = transformed = holding_mid = holding_any = whole = 0
    for index in tqdm(np.linspace(0, dataset.num_sequences - 1, n).round().astype(int), desc="context FIM", unit="seq"):
        raw = dataset.tokens()[index * dataset.seq_len : (index + 1) * dataset.seq_len + 1]
        ids, splits = dataset.fim_sequence(int(index))
        for (a, b), split in zip(cf.fragments(raw), splits, strict=True):
            fragments += b - a >= cf.MIN_FRAGMENT
            transformed += split is not None
            whole += split is not None and a > 0 and b < len(raw)  # BOS before it and EOS after: a whole document
        holding_mid += bool(np.isin(ids[1:], mid).any())
        holding_any += bool(np.isin(ids[1:], sentinels).any())
    return {
        "fragments": fragments,
        "fim_fragments": transformed,
        "fragment_rate": transformed / max(fragments, 1),
        "sequences": int(n),
        "sequence_rate": holding_mid / n,
        "sentinel_sequence_rate": holding_any / n,
        "whole_fim_documents": whole,
    }


def stream_statistics(
    dataset: PackedDataset,
    sentinels: Sentinels = DEEPSEEK,
    tok: Tokenizer | None = None,
    max_sequences: int | None = 4096,
) -> dict:
    """FIM rates of a packed stream built by :func:`build_stream`: per document, per token and per sequence.

    The per-sequence rate (sequences holding a FIM middle sentinel) is what document-level FIM delivers at
    the context level; Bavarian et al. explain its gap to ``fim_rate`` by long documents spanning contexts.
    With context-level FIM the stream itself has none, and :func:`context_statistics` (over up to
    ``max_sequences`` sequences) gives the fragment and sequence rates.
    """
    if dataset.path is None:
        raise ValueError("stream_statistics needs a dataset read from a build_stream folder")
    documents = np.load(dataset.path / DOCUMENTS_FILE)
    counts = read_manifest(dataset.path)["counts"]
    fim_docs = documents[:, 2] > 0
    stats = {
        "documents": len(documents),
        "fim_documents": int(fim_docs.sum()),
        "document_rate": float(fim_docs.mean()) if len(documents) else 0.0,
        "token_rate": counts["fim_tokens"] / max(counts["tokens"], 1),
        **{f"{m}_documents": int((documents[:, 2] == c).sum()) for m, c in MODE_CODES.items() if m},
    }
    if dataset.context_fim is not None:
        stats.update(context_statistics(dataset, max_sequences))
    elif tok is not None:
        mid = tok.token_to_id(sentinels.mid)
        used = dataset.num_sequences * dataset.seq_len + 1
        positions = np.flatnonzero(dataset.tokens()[:used] == mid)
        # A sequence's labels are tokens [i·T + 1, (i+1)·T]: count each middle sentinel in the one predicting it.
        holding = np.unique((np.maximum(positions, 1) - 1) // dataset.seq_len)
        stats["sequences"] = dataset.num_sequences
        stats["sequence_rate"] = len(holding) / dataset.num_sequences
    return stats
