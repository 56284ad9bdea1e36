"""Batched decoding with a key/value cache: greedy (the paper's evaluation setting, DeepSeek-Coder §4) or
nucleus sampling (Holtzman et al. 2020), with left padding and stop tokens or stop words.

Stopping. ``stop`` holds token ids and/or strings; ``None`` means the model's ``eos_token_id``. A row ends
when it emits a stop id (the id is left out of the returned tokens) or when its decoded completion contains
a stop string (needs ``tokenizer``; the returned tokens run through the token that completed the string,
so decode them and cut with :func:`truncate_at_stop`, as the DeepSeek-Coder repository post-processes its
HumanEval completions with the stop words ``"\\ndef"``, ``"\\nclass"``, ``"\\nif"``, ``"\\n#"``, ``"\\nprint"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from dslib.model import KVCache, Transformer


def truncate_at_stop(text: str, stop: Sequence[int | str] | None) -> str:
    """``text`` cut before the earliest occurrence of any stop string (token ids in ``stop`` are ignored)."""
    cuts = [text.find(s) for s in stop or () if isinstance(s, str) and s in text]
    return text[: min(cuts)] if cuts else text


def sample_next(
    logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Next token per row from ``logits`` ``[B, V]``: argmax at temperature 0, else nucleus sampling.

    Top-p keeps the smallest set of most probable tokens whose probabilities sum to at least ``top_p``.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # A token stays if the tokens ranked above it hold less than top_p (so the top token always stays).
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_pad(
    input_ids: torch.Tensor | Sequence[Sequence[int]],
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` as left-padded ``[B, T]`` tensors.

    Takes a ragged list of prompts (padded here), or a tensor with its ``attention_mask`` or ``pad_token_id``.
    """
    if not isinstance(input_ids, torch.Tensor):
        prompts = [list(p) for p in input_ids]
        if not prompts or min(map(len, prompts)) == 0:
            raise ValueError("generate needs at least one prompt, and every prompt needs at least one token")
        width = max(map(len, prompts))
        input_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    elif attention_mask is None:
        attention_mask = input_ids != pad_token_id if pad_token_id is not None else torch.ones_like(input_ids)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device=device, dtype=torch.long)
    if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask must both be [batch, length]")
    # Left padding means each row's mask is 0…0 1…1: it never steps down from 1 to 0.
    if (attention_mask[:, 1:] < attention_mask[:, :-1]).any() or not attention_mask[:, -1].all():
        raise ValueError("generate needs left padding: every row's padding must come before its tokens")
    return input_ids, attention_mask


@torch.inference_mode()
def generate(
    model: Transformer,
    input_ids: torch.Tensor | Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[int | str] | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    tokenizer=None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_token: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """The new tokens of each row (prompt excluded), ending at a stop as the module docstring describes.

    ``input_ids``: a ragged list of prompts, or a left-padded ``[B, T]`` tensor with ``attention_mask``
    (1 = token) or ``pad_token_id``. ``use_cache=False`` re-runs the whole sequence each step (the reference
    the cache is tested against). ``generator`` makes sampling reproducible. ``on_token(row, token)`` is called
    for each token as it is kept, for streaming output.
    """
    if max_new_tokens < 0 or temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} and temperature={temperature} must be >= 0, top_p={top_p} in (0, 1]"
        )
    stop = [model.config.eos_token_id] if stop is None else list(stop)
    stop_ids = [s for s in stop if not isinstance(s, str)]
    stop_words = [s for s in stop if isinstance(s, str)]
    if stop_words and tokenizer is None:
        raise ValueError(f"stop strings {stop_words} need a tokenizer to decode the completions")

    device = next(model.parameters()).device
    ids, mask = left_pad(input_ids, attention_mask, pad_token_id, device)
    batch, prompt_len = ids.shape
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    # Without padding the mask is dropped, letting SDPA / flash-attn take their causal fast path.
    padded = not bool(mask.all())
    dtype = next(model.parameters()).dtype
    cache = KVCache(model.config, batch, prompt_len + max_new_tokens, device, dtype) if use_cache else None

    tokens: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    step_ids, step_positions = ids, position_ids
    for _ in range(max_new_tokens):
        logits = model(step_ids, mask if padded else None, step_positions, cache)[:, -1]
        next_ids = sample_next(logits, temperature, top_p, generator)
        for row, token in enumerate(next_ids.tolist()):  # one device sync per step
            if done[row]:
                continue
            if token in stop_ids:
                done[row] = True
                continue
            tokens[row].append(token)
            if on_token is not None:
                on_token(row, token)
            done[row] = bool(stop_words) and any(w in tokenizer.decode(tokens[row]) for w in stop_words)
        if all(done):
            break
        # Finished rows keep decoding (their tokens are dropped) so that the batch stays rectangular.
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        if use_cache:
            step_ids, step_positions = next_ids[:, None], step_positions[:, -1:] + 1
        else:
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            step_ids, step_positions = ids, (mask.cumsum(-1) - 1).clamp(min=0)
    return tokens
