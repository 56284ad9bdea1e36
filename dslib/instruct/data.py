"""Instruction data for §3.7: rows from JSONL, a Hugging Face dataset or the shipped MBPP pairs, encoded with the
response-only mask, and the stream of padded micro-batches the training loop consumes.

The paper's 2B tokens of instruction data are unreleased. What ships is a small stand-in: MBPP (Austin et al.
2021, CC BY 4.0) training problems (task_ids 601–974) and validation problems (511–600) as instruction/output
pairs; the test problems (11–510) that the evaluation scores never enter training.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch

from dslib import jsonl
from dslib.config import InstructConfig, Scale
from dslib.eval.data import read_jsonl
from dslib.instruct.template import IGNORE_INDEX, InstructDataError, encode_example
from dslib.tokenizer import EOS, special_token_ids

log = logging.getLogger(__name__)

MBPP_SPLITS = {"train": range(601, 975), "validation": range(511, 601)}
MBPP_TEST = range(11, 511)  # scored by the evaluation; never trained on
MBPP_LICENSE = "MBPP (Austin et al. 2021), CC BY 4.0"


def mbpp_instruction(text: str, tests: Sequence[str]) -> str:
    """An MBPP problem as the DeepSeek-Coder repository's MBPP instruct evaluation words it
    (``Evaluation/MBPP/eval_instruct.py``, ``format_test_example``)."""
    return ">>> Problem:\n{}\n>>> Test Cases:\n{}\n".format(text.strip(), "\n".join(tests))


def mbpp_pairs(split: str = "train") -> list[dict]:
    """MBPP ``split`` ("train": task_ids 601–974, "validation": 511–600) as ``instruction``/``output`` rows; the
    output is the reference solution in a fenced block, where the instruct evaluation looks for code."""
    if split not in MBPP_SPLITS:
        raise ValueError(f"MBPP split {split!r} is not valid; choose one of: {', '.join(MBPP_SPLITS)}")
    ids = MBPP_SPLITS[split]
    rows = []
    for row in read_jsonl("mbpp/mbpp.jsonl"):
        if row["task_id"] in ids:
            code = row["code"].replace("\r", "").replace("\t", "    ")
            rows.append(
                {
                    "instruction": mbpp_instruction(row["text"], row["test_list"]),
                    "output": f"```python\n{code}\n```",
                    "task_id": row["task_id"],
                }
            )
    return rows


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a JSONL file; a line that is not a JSON object is an error naming the file and line."""
    return jsonl.read_jsonl(path, error=InstructDataError)


def load_rows(source: str | Path, split: str = "train") -> tuple[list[dict], str]:
    """``(rows, name)`` from ``source``: ``"mbpp"`` (the shipped pairs; ``split`` picks train or validation), a
    ``.jsonl`` file, or ``"hf:NAME"``, a Hugging Face dataset (a hub name or a local folder ``datasets`` can
    read) with ``messages`` or ``instruction``/``output`` columns. ``name`` says where each row came from."""
    source = str(source)
    if source == "mbpp":
        return mbpp_pairs(split), f"mbpp:{split}"
    if source.startswith("hf:"):
        dataset = datasets.load_dataset(source[3:], split=split)
        return [dict(row) for row in dataset], source
    if not Path(source).is_file():
        raise FileNotFoundError(f"instruction data {source!r}: no such file (or use 'mbpp' or 'hf:NAME')")
    return read_rows(source), source


@dataclass
class EncodedRows:
    """Encoded examples and what was left out, by reason."""

    examples: list[tuple[list[int], list[int]]]
    skipped: Counter = field(default_factory=Counter)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for ids, labels in self.examples:
            h.update(np.asarray(ids, dtype=np.int64).tobytes() + np.asarray(labels, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def encode_rows(tokenizer, rows: Sequence[Mapping], config: InstructConfig, name: str = "data") -> EncodedRows:
    """Encode every row with :func:`encode_example` before any training, so bad data stops nothing halfway.

    A row longer than ``config.seq_len`` tokens is a counted, logged skip. A malformed row (neither field, an
    empty response, turns that do not alternate) raises :class:`InstructDataError` naming it, or with
    ``config.skip_bad_rows`` is a counted skip too.
    """
    out = EncodedRows([])
    for i, row in enumerate(rows):
        try:
            ids, labels = encode_example(tokenizer, row, style=config.style)
        except InstructDataError as err:
            if not config.skip_bad_rows:
                raise InstructDataError(f"{name} row {i}: {err}") from None
            out.skipped["malformed"] += 1
            log.warning("skipping %s row %d: %s", name, i, err)
            continue
        if len(ids) > config.seq_len:
            out.skipped["too_long"] += 1
            log.warning("skipping %s row %d: %d tokens, InstructConfig.seq_len=%d", name, i, len(ids), config.seq_len)
            continue
        out.examples.append((ids, labels))
    if not out.examples:
        raise InstructDataError(f"{name}: no row left to train on (skipped: {dict(out.skipped)})")
    return out


def collate(examples: Sequence[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a micro-batch: ``(input_ids, labels)`` ``[B, longest]``; padding gets label -100.

    One example per row, and causal attention never looks right, so no example sees another or its padding.
    """
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, lab) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
    return input_ids, labels


class InstructStream:
    """Micro-batches of examples in a seeded order, reshuffled each epoch, resumable from ``state_dict()``.

    Global example ``g`` goes to rank ``g % world`` (as :class:`dslib.train.SyntheticStream`), so one process
    and several see the same global batches. Each batch carries ``loss_scale`` = world / (labelled tokens in its
    global batch), so the loop's gradient is the mean over every response token of the step on any layout.
    """

    def __init__(self, examples, pad_id: int, micro_batch: int, global_batch: int, seed: int, rank: int, world: int):
        self.examples, self.pad_id, self.seed = examples, pad_id, seed
        self.micro_batch, self.global_batch, self.rank, self.world = micro_batch, global_batch, rank, world
        self.labelled = [sum(label != IGNORE_INDEX for label in labels[1:]) for _, labels in examples]
        self.position = 0  # examples consumed by all ranks together
        self._orders: dict[int, list[int]] = {}

    def example_index(self, g: int) -> int:
        epoch, offset = divmod(g, len(self.examples))
        if epoch not in self._orders:
            order = list(range(len(self.examples)))
            random.Random(f"{self.seed}:{epoch}").shuffle(order)  # str seeds: stable across Python versions
            self._orders = {epoch: order}
        return self._orders[epoch][offset]

    def __iter__(self) -> Iterator[dict]:
        while True:
            step_start = self.position - self.position % self.global_batch
            step = range(step_start, step_start + self.global_batch)
            labelled = sum(self.labelled[self.example_index(g)] for g in step)
            items = range(self.position + self.rank, self.position + self.micro_batch * self.world, self.world)
            self.position += self.micro_batch * self.world
            input_ids, labels = collate([self.examples[self.example_index(g)] for g in items], self.pad_id)
            yield {"input_ids": input_ids, "labels": labels, "loss_scale": self.world / max(labelled, 1)}

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


@dataclass(frozen=True)
class InstructData:
    """The training loop's data source (:class:`dslib.train.DataSource`) for instruction tuning."""

    rows: EncodedRows
    pad_id: int
    init_from: str

    @property
    def fingerprint(self) -> str:
        return f"instruct:{self.rows.fingerprint}:{self.init_from}"

    def stream(self, scale: Scale, rank: int, world: int) -> InstructStream:
        tc = scale.train
        return InstructStream(
            self.rows.examples, self.pad_id, tc.micro_batch_size, tc.global_batch_size, tc.seed, rank, world
        )


def pad_token_id(tokenizer) -> int:
    """The released Instruct models' pad token, ``<｜end▁of▁sentence｜>``."""
    return special_token_ids(getattr(tokenizer, "backend_tokenizer", tokenizer))[EOS]
