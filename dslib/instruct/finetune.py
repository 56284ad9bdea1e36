"""Supervised instruction tuning (DeepSeek-Coder §3.7) on the pretraining loop (``dslib.train``).

§3.7 fine-tunes each Base model on instruction data in the Alpaca format with ``<|EOT|>`` ending each turn, a
cosine schedule with 100 warm-up steps and a learning rate of 1e-5, 4M tokens per batch, 2B tokens in all
(``InstructConfig``'s ``paper`` values). The loss is on the responses only (prompt tokens labelled -100, as in
``finetune_deepseekcoder.py``). The run is an ordinary :class:`dslib.train.TrainRun` (stage ``"instruct"``): the
same optimizer, checkpoints, exact resume, metrics and ``torchrun`` support as pretraining; its data is an
:class:`dslib.instruct.data.InstructData` source and its schedule ``TrainConfig.lr_schedule="cosine"``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist

from dslib import paper
from dslib.artifacts import artifact_dir, write_manifest
from dslib.config import InstructConfig, Scale, TrainConfig, resolve
from dslib.instruct.data import InstructData, collate, encode_rows, load_rows, pad_token_id
from dslib.instruct.template import CHAT_TEMPLATE
from dslib.model import Transformer, config_from_hf, from_hf
from dslib.results import result_row
from dslib.tokenizer import EOT, load_tokenizer, special_token_ids
from dslib.train import (
    TrainResult,
    TrainRun,
    ensure_pretrained,
    export_hf,
    run_fingerprint,
    train,
)
from dslib.training import checkpoint as ckpt
from dslib.training.batches import labelled_token_loss
from dslib.training.parallel import init_distributed

log = logging.getLogger(__name__)


def instruct_train_config(scale: Scale) -> TrainConfig:
    """The scale's :class:`TrainConfig` with §3.7's schedule, batch and lengths from ``scale.instruct``."""
    ic = scale.instruct
    return replace(
        scale.train,
        seq_len=ic.seq_len,
        micro_batch_size=ic.micro_batch_size,
        global_batch_size=ic.global_batch_size,
        max_steps=ic.max_steps,
        lr=ic.lr,
        warmup_steps=ic.warmup_steps,
        lr_milestones=(),
        lr_schedule="cosine",
        weight_decay=ic.weight_decay,
        checkpoint_every=min(ic.checkpoint_every, ic.max_steps),
        seed=ic.seed,
    )


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns: the loop's result, the exported folder (None when stopped early), skips."""

    train: TrainResult
    hf: Path | None
    skipped: Counter
    examples: int
    init_from: Path


def finetune(
    init_from: str | Path | None = None,
    data: str | Path = "mbpp",
    scale: Scale | str | None = None,
    output_dir: Path | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune the HF model folder ``init_from`` (default: the scale's pretrained model) on ``data`` (see
    :func:`dslib.instruct.data.load_rows`) and export it to ``<output_dir>/hf`` as an Instruct model: the chat
    template in its tokenizer config and ``<|EOT|>`` as its EOS. Resumes from the newest checkpoint; in the
    default folder (``artifacts/<scale>/instruct/``) checkpoints of another config are cleared first.
    """
    scale = resolve(scale)
    init = Path(init_from) if init_from is not None else ensure_pretrained(scale)
    if not (init / "config.json").exists():
        raise FileNotFoundError(f"{init} is not a model folder (no config.json); pass an exported or released model")
    tokenizer = load_tokenizer(init)
    rows, name = load_rows(data, "train")
    encoded = encode_rows(tokenizer, rows, scale.instruct, name)
    log.info("%d examples from %s (skipped: %s)", len(encoded.examples), name, dict(encoded.skipped) or "none")
    model_config = config_from_hf(json.loads((init / "config.json").read_text()))
    model_config = replace(model_config, eos_token_id=special_token_ids(tokenizer)[EOT])  # as released
    run = TrainRun(
        replace(scale, model=model_config, train=instruct_train_config(scale)),
        output_dir=output_dir or artifact_dir(scale.name, "instruct"),
        resume=resume,
        stage="instruct",
        init_from=init,
        data=InstructData(encoded, pad_token_id(tokenizer), str(init.resolve())),
        stop_after=stop_after,
        progress=progress,
    )
    # Under torchrun the group outlives train(), so that the export after it can gather FSDP2 shards.
    rank, _, _, started = init_distributed()
    try:
        newest = ckpt.latest_checkpoint(run.directory / "checkpoints") if rank == 0 and output_dir is None else None
        if newest is not None and ckpt.read_trainer_state(newest)["fingerprint"] != run_fingerprint(run):
            log.warning("clearing %s: its checkpoints belong to another config", run.directory)
            shutil.rmtree(run.directory / "checkpoints")  # the loop's first barrier holds the other ranks
        t0 = time.perf_counter()
        result = train(run)
        hf = None
        if result.metrics and result.metrics[-1]["step"] == run.scale.train.max_steps:
            hf = export_hf(result.model, result.output_dir / "hf", tokenizer, CHAT_TEMPLATE)  # collective
        if hf is not None and rank == 0:
            write_manifest(
                result.output_dir,
                {"instruct": scale.instruct, "data": name, "init_from": str(init)},
                inputs={"init_from": str(init), "data": name, "checkpoint": str(result.final_checkpoint)},
                counts={
                    "examples": len(encoded.examples),
                    "skipped": dict(encoded.skipped),
                    "steps": len(result.metrics),
                },
                timings={"finetune_s": time.perf_counter() - t0},
            )
    finally:
        if started:
            dist.destroy_process_group()
    return FinetuneResult(result, hf, encoded.skipped, len(encoded.examples), init)


@torch.no_grad()
def response_loss(
    model: Transformer | str | Path,
    tokenizer,
    rows: Sequence[Mapping],
    seq_len: int,
    batch_size: int = 8,
    style: str = "chat",
) -> dict:
    """Mean cross-entropy per response token (the tokens :func:`encode_example` labels) over ``rows``, with the
    number of tokens and examples it covers; rows longer than ``seq_len`` are left out and counted."""
    if not isinstance(model, Transformer):
        model = from_hf(model)
    config = InstructConfig(seq_len=seq_len, style=style)
    encoded = encode_rows(tokenizer, rows, config, "held-out")
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(encoded.examples), batch_size):
        ids, labels = collate(encoded.examples[start : start + batch_size], pad_token_id(tokenizer))
        total += labelled_token_loss(model, ids.to(device), labels.to(device)).item()
        tokens += int((labels[:, 1:] != -100).sum())
    model.train(was_training)
    return {"loss": total / tokens, "tokens": tokens, "examples": len(encoded.examples), **encoded.skipped}


def heldout_rows(scale: Scale | str | None = None) -> list[dict]:
    """The held-out pairs the response loss is measured on: MBPP validation (511–600), ``validation_rows`` of them."""
    rows, _ = load_rows("mbpp", "validation")
    limit = resolve(scale).instruct.validation_rows
    return rows[:limit] if limit is not None else rows


def result_rows(scale: Scale | str | None, before: dict, after: dict, result: FinetuneResult) -> list[dict]:
    """Instruction tuning's numbers beside §3.7's (notebook 08's closing table): the held-out response loss
    before and after, the data, and the schedule."""
    ic, facts = resolve(scale).instruct, paper.INSTRUCTION_TUNING
    return [
        result_row(
            "held-out response loss before → after (nats/token)",
            f"{before['loss']:.3f} → {after['loss']:.3f}",
            None,
            "§3.7",
            f"{after['examples']} MBPP validation pairs, {after['tokens']} response tokens",
        ),
        result_row(
            "instruction data",
            f"{result.examples} MBPP pairs",
            f"{facts['tokens']:.0e} tokens (unreleased)",
            facts["source"],
        ),
        result_row(
            "schedule (warm-up steps, peak lr)",
            f"cosine, {ic.warmup_steps}, {ic.lr:g}",
            f"{facts['schedule']}, {facts['warmup_steps']}, {facts['lr']:g}",
            facts["source"],
            "the paper preset uses the paper's values",
        ),
    ]
