"""A fixed, learnable token stream for training tests and benchmarks (our tooling, not the paper's data)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import torch


class SyntheticStream:
    """A fixed, learnable token stream: sequence ``i`` is the same on every machine and Python version.

    Each sequence is a run of short "documents", each a random motif of 2–8 tokens (from the first 256 ids)
    repeated, then EOS: the loss falls fast from ``log(vocab)`` towards ``log(256)`` (unigrams) and below it once
    the model copies motifs in context. Like :class:`dslib.packing.PackedDataset`, item ``g`` goes to rank
    ``g % world``, so one process and several see the same global batches, and iterating yields batches of
    ``batch_size`` sequences of ``seq_len + 1`` tokens. Not training data: it pins the golden loss curve, the
    multi-process test and the benchmark independently of the corpus.
    """

    def __init__(
        self,
        seq_len: int,
        vocab_size: int,
        eos_id: int,
        *,
        batch_size: int = 1,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.seq_len, self.vocab_size, self.eos_id, self.seed = seq_len, vocab_size, eos_id, seed
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.position = 0  # items consumed by all ranks together

    def sequence(self, index: int) -> torch.Tensor:
        rng = random.Random(f"{self.seed}:{index}")  # str seeds hash with SHA-512: stable across versions
        tokens: list[int] = []
        alphabet = min(256, self.eos_id)
        while len(tokens) < self.seq_len + 1:
            motif = [rng.randrange(alphabet) for _ in range(rng.randrange(2, 9))]
            tokens += (motif * 64)[: rng.randrange(16, 65)] + [self.eos_id]
        return torch.tensor(tokens[: self.seq_len + 1], dtype=torch.long)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            items = range(self.position, self.position + self.batch_size * self.world_size, self.world_size)
            self.position += self.batch_size * self.world_size
            yield torch.stack([self.sequence(g + self.rank) for g in items])

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]
