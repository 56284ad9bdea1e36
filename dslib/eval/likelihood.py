"""Likelihood metrics: how much probability a model gives the true text, a smooth signal where exact match is
still near zero (the FIM ablation's middle loss and held-out loss; DeepSeek-Coder §3.1.2 reports the matching
exact-match and pass@1 numbers).

- :func:`middle_token_losses` / :func:`middle_losses`: the loss of a task's true middle after its FIM prompt;
- :func:`continuation_token_losses`: the loss of any target tokens after a prompt (the cross-file benchmark's
  ground-truth line, :mod:`dslib.eval.crossfile`);
- :func:`first_token_split`: those losses split into the middle's first token and the later ones;
- :func:`heldout_losses`: the left-to-right loss of held-out sequences, packed without FIM.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dslib.config import Scale
from dslib.eval.generation import encode
from dslib.fim import fim_prompt
from dslib.packing import NO_FIM, packed_dataset
from dslib.tokenizer import encode_text
from dslib.training.parallel import autocast

log = logging.getLogger(__name__)


@torch.no_grad()
def middle_token_losses(
    model, tok, tasks: Sequence[Mapping], mode: str = "psm", batch_size: int = 8
) -> list[list[float]]:
    """Each task's token losses (nats) of the true middle after its FIM prompt in ``mode``, in order.

    The prompt is encoded as the evaluation encodes it (BOS first); the middle as training encodes a piece
    (:func:`dslib.tokenizer.encode_text`, on its own, as Bavarian et al.'s ``Enc(middle)``).
    """
    prompts = [encode(tok, fim_prompt(t["prefix"], t["suffix"], mode)) for t in tasks]
    return continuation_token_losses(model, prompts, encode_text(tok, [t["middle"] for t in tasks]), batch_size)


@torch.no_grad()
def continuation_token_losses(
    model, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], batch_size: int = 8
) -> list[list[float]]:
    """The token losses (nats) of each ``targets[i]`` right after ``prompts[i]`` (token ids), batched by length."""
    device = next(model.parameters()).device
    losses: list[list[float]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(targets[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(prompts[i]) + len(targets[i]) for i in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)  # right padding: causal rows never see it
        for row, i in enumerate(batch):
            ids[row, : len(prompts[i]) + len(targets[i])] = torch.tensor([*prompts[i], *targets[i]])
        with autocast(device):
            logits = model(ids.to(device))
        for row, i in enumerate(batch):
            first = len(prompts[i]) - 1  # the position whose logits predict the target's first token
            target = torch.tensor(targets[i], device=device)
            predicted = logits[row, first : first + len(target)].float()
            losses[i] = F.cross_entropy(predicted, target, reduction="none").tolist()
    return losses


def middle_losses(model, tok, tasks: Sequence[Mapping], mode: str = "psm", batch_size: int = 8) -> list[float]:
    """Each task's mean token loss (nats) of the true middle after its FIM prompt in ``mode``
    (:func:`middle_token_losses`)."""
    return [float(np.mean(losses)) for losses in middle_token_losses(model, tok, tasks, mode, batch_size)]


def first_token_split(token_losses: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(mean loss of each middle's first token, mean loss of every later token pooled over the tasks; NaN when
    no middle has a second token), from :func:`middle_token_losses`."""
    later = [x for each in token_losses for x in each[1:]]
    return float(np.mean([each[0] for each in token_losses])), float(np.mean(later)) if later else math.nan


@torch.no_grad()
def heldout_losses(model, scale: Scale, limit: int, batch_size: int | None = None) -> list[float]:
    """Mean next-token loss of each of the first ``limit`` held-out sequences, packed without FIM."""
    data = packed_dataset(
        scale, "heldout", NO_FIM, batch_size=batch_size or scale.train.micro_batch_size, rank=0, world_size=1, epochs=1
    )
    device = next(model.parameters()).device
    losses: list[float] = []
    for batch in data.loader():
        batch = batch[: limit - len(losses)].to(device)
        with autocast(device):
            logits = model(batch[:, :-1])
        per_token = F.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:], reduction="none")
        losses += per_token.mean(dim=1).tolist()
        if len(losses) >= limit:
            break
    if len(losses) < limit:
        log.info(
            "the held-out split has %d sequences of %d tokens, fewer than the %d asked for",
            len(losses),
            data.seq_len,
            limit,
        )
    return losses
