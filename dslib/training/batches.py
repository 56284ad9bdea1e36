"""What the training loop trains on: the protocol of a stage's own data source, and the loss of each kind of batch.

A batch is either a ``[B, T + 1]`` token tensor (pretraining, §3.4: every next token counts) or a labelled dict
(instruction tuning, §3.7: ``input_ids`` and ``labels``, -100 where no loss is taken, as in ``transformers``).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from dslib.config import Scale

IGNORE_INDEX = -100  # the label of a token that takes no loss (transformers' convention)


class DataSource(Protocol):
    """A stream the loop does not build itself (instruction tuning's examples, ``dslib.instruct.data``).

    ``stream`` returns an iterable of micro-batches with ``state_dict()`` / ``load_state_dict()``, like
    ``dslib.train.make_stream``'s; ``fingerprint`` names its content for ``dslib.train.run_fingerprint``.
    """

    fingerprint: str

    def stream(self, scale: Scale, rank: int, world: int): ...


def next_token_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ``batch[:, 1:]`` from ``batch[:, :-1]``, computed in fp32."""
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())


def labelled_token_loss(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed fp32 cross-entropy of predicting ``labels[:, 1:]`` from ``input_ids[:, :-1]``; label -100 takes none
    (the prompt and padding of instruction tuning, §3.7, as in transformers)."""
    logits = model(input_ids[:, :-1])
    return F.cross_entropy(
        logits.float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )


def labelled_batch_loss(model: torch.nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
    """A labelled micro-batch's share of the global batch's loss: its summed loss times ``batch["loss_scale"]``,
    which the source sets to world size / labelled tokens in the global batch, so that every response token
    weighs the same however the examples fall into micro-batches and processes."""
    ids, labels = (batch[k].to(device, non_blocking=True) for k in ("input_ids", "labels"))
    return labelled_token_loss(model, ids, labels) * batch["loss_scale"]
