"""Batched completion for the benchmarks: any ``LlamaForCausalLM`` folder, prompts in, completions out.

DeepSeek-Coder §4.1 decodes greedily; its repository (``Evaluation/HumanEval``) encodes each prompt with the
model's own tokenizer (BOS first), keeps at most 4096 input tokens and 500 new ones. Sampling (n,
temperature, top_p) is there for pass@k with k > 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dslib.config import EvalConfig
from dslib.generate import generate, truncate_at_stop
from dslib.model import Transformer, from_hf
from dslib.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


def load_hf_model(
    path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> tuple[Transformer, object]:
    """A Hugging Face model folder (``config.json``, safetensors, ``tokenizer.json``) as ``(model, tokenizer)``.

    Works for ``ensure_pretrained()``'s folders and for the released ``deepseek-coder-*-base`` downloads.
    ``device`` defaults to CUDA when available; ``dtype`` to bf16 on CUDA and the stored dtype on CPU.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None and device.type == "cuda":
        dtype = torch.bfloat16
    model = from_hf(path, dtype=dtype, device=device).eval()
    return model, load_tokenizer(path)


def encode(tokenizer, text: str) -> list[int]:
    """The prompt's ids as the model's tokenizer makes them (BOS included), for ``tokenizers`` or ``transformers``."""
    ids = tokenizer.encode(text)
    return list(ids.ids if hasattr(ids, "ids") else ids)


def subset(items: Sequence, limit: int | None) -> list:
    """``limit`` items spread evenly over ``items`` (all of them when ``limit`` is None), in order."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        raise ValueError(f"limit={limit} must be positive (or None for all)")
    return [items[i * len(items) // limit] for i in range(limit)]


def complete(
    model: Transformer,
    tokenizer,
    prompts: Sequence[str],
    config: EvalConfig,
    stop: Sequence[str] = (),
    desc: str = "generating",
    seed: int = 0,
    progress: bool = True,
) -> list[str]:
    """The decoded continuation of each prompt, cut before the first of ``stop``.

    Prompts are batched by length (``config.batch_size``) to waste little padding; a prompt longer than
    ``config.max_input_tokens`` keeps its last tokens and is logged.
    """
    encoded = [encode(tokenizer, p) for p in prompts]
    too_long = [i for i, ids in enumerate(encoded) if len(ids) > config.max_input_tokens]
    if too_long:
        log.warning("%d prompts exceed %d tokens and keep their last ones", len(too_long), config.max_input_tokens)
        for i in too_long:
            encoded[i] = encoded[i][-config.max_input_tokens :]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    generator = None
    if config.temperature > 0:
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    completions: list[str] = [""] * len(prompts)
    stops = [model.config.eos_token_id, *stop]
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    with tqdm(total=len(prompts), desc=desc, disable=not progress) as bar:
        for batch in batches:
            new_tokens = generate(
                model,
                [encoded[i] for i in batch],
                config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                stop=stops,
                tokenizer=tokenizer,
                generator=generator,
            )
            for i, tokens in zip(batch, new_tokens, strict=True):
                completions[i] = truncate_at_stop(tokenizer.decode(tokens, skip_special_tokens=True), stop)
            bar.update(len(batch))
    return completions
