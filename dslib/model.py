"""The DeepSeek-Coder decoder (DeepSeek-Coder §3.3, Table 2; §3.6 for the long-context RoPE scaling).

A LLaMA-style transformer, which is what the released models are ("same architecture as Llama except for
the tokenizer", DeepSeek-Coder issue #50): pre-norm RMSNorm, rotary position embeddings with ``rope_theta``
and linear ``rope_scaling``, grouped-query attention (33B: 56 heads sharing 8 key/value heads), a SwiGLU
MLP and an untied output head. Module and parameter names are Hugging Face ``LlamaForCausalLM``'s
(``model.layers.0.self_attn.q_proj.weight`` …), so :func:`from_hf` and :func:`to_hf` move checkpoints
across without renaming anything.

Attention runs through FlashAttention-2 (as the paper trained) when ``flash_attn`` is installed and the
tensors are fp16/bf16 on CUDA, otherwise through PyTorch's ``scaled_dot_product_attention``; a plain
eager implementation is the reference the other two are tested against.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dslib.config import ConfigError, ModelConfig

try:  # FlashAttention-2 is an optional GPU extra (pip install dslib[gpu])
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None

__all__ = [
    "ModelConfig",
    "KVCache",
    "Transformer",
    "attention_backend",
    "config_from_hf",
    "config_to_hf",
    "count_parameters",
    "from_hf",
    "rope_cos_sin",
    "rope_inv_freq",
    "to_hf",
]

# enable_gqa arrived in torch 2.5; before that the key/value heads are repeated by hand.
_SDPA_HAS_GQA = torch.torch_version.TorchVersion(torch.__version__) >= (2, 5)


# ----------------------------------------------------------------------------------------------------------
# Rotary position embeddings (Su et al. 2021), with linear position interpolation (Chen et al. 2023)


def rope_inv_freq(config: ModelConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """The rotation frequency of each pair of channels, divided by the linear ``rope_scaling`` factor.

    Dividing the frequencies by the factor is the same as dividing the positions by it (§3.6: factor 4 makes
    position 16K turn its channels as far as position 4K did in pretraining).
    """
    dim = config.head_dim
    inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)
    if config.rope_scaling is not None:
        inv_freq = inv_freq / float(config.rope_scaling["factor"])
    return inv_freq


def rope_cos_sin(position_ids: torch.Tensor, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``cos`` and ``sin`` of shape ``[B, T, head_dim]`` for ``position_ids`` ``[B, T]``."""
    angles = position_ids[..., None].float() * rope_inv_freq(config, position_ids.device)
    angles = torch.cat((angles, angles), dim=-1)  # HF layout: channel i pairs with channel i + head_dim / 2
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, heads, T, head_dim]`` by its positions' angles (the "rotate half" form HF checkpoints use)."""
    # In x's dtype, so that under bf16 autocast q and k stay bf16 for the attention kernel.
    cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


# ----------------------------------------------------------------------------------------------------------
# Attention backends: q [B, H, T, D], k/v [B, H_kv, S, D], mask None (causal) or bool [B, 1, T, S]


def attention_backend(
    requested: str, device_type: str, dtype: torch.dtype, has_mask: bool, flash_available: bool | None = None
) -> str:
    """Which attention implementation serves a call: ``"flash"``, ``"sdpa"`` or ``"eager"``.

    ``"auto"`` takes FlashAttention-2 when it is installed and the call is fp16/bf16 on CUDA with no padding
    mask (flash-attn's dense kernel has none), and SDPA otherwise. Asking for ``"flash"`` where it cannot run
    is an error rather than a silent switch.
    """
    if flash_available is None:
        flash_available = flash_attn_func is not None
    flash_ok = flash_available and device_type == "cuda" and dtype in (torch.float16, torch.bfloat16)
    if requested == "auto":
        return "flash" if flash_ok and not has_mask else "sdpa"
    if requested == "flash":
        if not flash_ok:
            raise RuntimeError(
                "attn_implementation='flash' needs the flash_attn package and fp16/bf16 tensors on CUDA "
                f"(flash_attn installed: {flash_available}, device: {device_type}, dtype: {dtype}); use 'auto'"
            )
        if has_mask:
            raise RuntimeError("attn_implementation='flash' cannot take a padding mask; use 'auto' or 'sdpa'")
    return requested


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``[B, H_kv, S, D]`` → ``[B, H_kv * groups, S, D]``: each key/value head serves ``groups`` query heads."""
    if groups == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, groups, s, d).reshape(b, h * groups, s, d)


def eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The reference: softmax(q kᵀ / √d + mask) v, softmax in fp32."""
    groups = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, groups), repeat_kv(v, groups)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is None:  # causal, queries aligned with the last T keys
        t, s = q.shape[-2], k.shape[-2]
        mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """PyTorch's fused attention (flash / memory-efficient kernels where they apply)."""
    groups = q.shape[1] // k.shape[1]
    t, s = q.shape[-2], k.shape[-2]
    if mask is None and t != s and t > 1:  # a chunk after cached keys: is_causal would align it top-left
        mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
    # SDPA's fused kernels take GQA natively only without a mask; with one, repeated heads keep them usable.
    if groups > 1 and _SDPA_HAS_GQA and mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=t > 1, enable_gqa=True)
    k, v = repeat_kv(k, groups), repeat_kv(v, groups)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and t > 1)


def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, flash_fn=None
) -> torch.Tensor:
    """FlashAttention-2 (the paper's kernel), which wants ``[B, T, H, D]`` and handles GQA itself."""
    assert mask is None, "flash-attn serves unpadded batches only (attention_backend routes padded ones to SDPA)"
    flash_fn = flash_fn or flash_attn_func
    # causal=True aligns the T queries with the last T keys (flash-attn >= 2.1), which is what a KV cache needs.
    out = flash_fn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
    return out.transpose(1, 2)


ATTENTION = {"eager": eager_attention, "sdpa": sdpa_attention, "flash": flash_attention}


# ----------------------------------------------------------------------------------------------------------
# Key/value cache for incremental decoding


class KVCache:
    """Preallocated keys and values for every layer, ``[B, H_kv, max_len, D]``; ``length`` slots are filled.

    Slots are sequence indices, not positions: with left padding a row's first real token sits at a later
    slot, and its position ids (passed separately) start at 0 there.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, device=None, dtype=torch.float32):
        shape = (config.num_hidden_layers, batch_size, config.num_key_value_heads, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys and values after the filled slots; return all of them so far."""
        end = self.length + k.shape[2]
        if end > self.k.shape[3]:
            raise ValueError(f"KVCache holds {self.k.shape[3]} positions; this step needs {end}")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


# ----------------------------------------------------------------------------------------------------------
# The transformer


class RMSNorm(nn.Module):
    """x / rms(x) · weight, normalised in fp32 (Zhang & Sennrich 2019; as HF LlamaRMSNorm)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config, self.layer = config, layer
        h, d, bias = config.hidden_size, config.head_dim, config.attention_bias
        self.q_proj = nn.Linear(h, config.num_attention_heads * d, bias=bias)
        self.k_proj = nn.Linear(h, config.num_key_value_heads * d, bias=bias)
        self.v_proj = nn.Linear(h, config.num_key_value_heads * d, bias=bias)
        self.o_proj = nn.Linear(config.num_attention_heads * d, h, bias=bias)

    def forward(self, x, cos, sin, mask, cache: KVCache | None) -> torch.Tensor:
        b, t, _ = x.shape
        d = self.config.head_dim
        q = self.q_proj(x).view(b, t, -1, d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, -1, d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, -1, d).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # the cache keeps the model's dtype; under autocast q may be bf16
            k, v = (x.to(q.dtype) for x in cache.update(self.layer, k, v))
        backend = attention_backend(self.config.attn_implementation, q.device.type, q.dtype, mask is not None)
        y = ATTENTION[backend](q, k, v, mask)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    """SwiGLU (Shazeer 2020): down(silu(gate(x)) · up(x))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask, cache):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    """The DeepSeek-Coder decoder (§3.3, Table 2), laid out as HF ``LlamaForCausalLM``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict(
            dict(
                embed_tokens=nn.Embedding(config.vocab_size, config.hidden_size),
                layers=nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers)),
                norm=RMSNorm(config.hidden_size, config.rms_norm_eps),
            )
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Normal(0, ``initializer_range``) weights, zero biases, unit norms, as HF Llama (reusable after to_empty)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, self.config.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()
            if isinstance(module, RMSNorm):
                module.weight.fill_(1.0)

    def num_parameters(self) -> int:
        """Parameters counted once each (a tied head is not counted twice)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, vocab_size]`` in the model's dtype.

        ``attention_mask`` ``[B, past + T]`` (1 = token, 0 = padding) covers the cached slots and these
        tokens; ``position_ids`` ``[B, T]`` default to ``past .. past + T - 1``. With a ``cache`` the new keys
        and values are appended to it and its ``length`` advances by T.
        """
        b, t = input_ids.shape
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=input_ids.device).expand(b, t)
        mask = None
        if attention_mask is not None:
            if attention_mask.shape != (b, past + t):
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected {(b, past + t)}")
            # Causal over slots, padded keys hidden. Each query also sees itself, so a padding query's row is
            # never all-masked (SDPA before torch 2.5 returns NaN for one); no real token attends to it.
            slots = torch.arange(past + t, device=input_ids.device)
            query_slots = slots[past:, None]
            mask = ((slots <= query_slots) & attention_mask[:, None, None, :].bool()) | (slots == query_slots)

        x = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(position_ids, self.config)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask, cache)
        if cache is not None:
            cache.length += t
        return self.lm_head(self.model.norm(x))


def count_parameters(config: ModelConfig) -> int:
    """Parameter count of ``config``'s model, built on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        return Transformer(config).num_parameters()


# ----------------------------------------------------------------------------------------------------------
# Hugging Face checkpoint interop (config.json + safetensors, the layout of deepseek-coder-*-base)

_HF_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "rope_theta",
    "rms_norm_eps",
    "initializer_range",
    "tie_word_embeddings",
    "attention_bias",
    "bos_token_id",
    "eos_token_id",
)


def config_from_hf(hf: dict, attn_implementation: str = "auto") -> ModelConfig:
    """A :class:`ModelConfig` from a ``LlamaForCausalLM`` ``config.json`` dict.

    RoPE settings are read in both layouts: transformers 4.x (``rope_theta`` and ``rope_scaling`` at the top,
    as released) and 5.x (``rope_parameters`` holding ``rope_type``, ``factor`` and ``rope_theta``).
    """
    if hf.get("model_type", "llama") != "llama":
        raise ConfigError(f"config.json model_type={hf['model_type']!r} is not valid; choose one of: llama")
    if hf.get("mlp_bias"):
        raise ConfigError("config.json mlp_bias=True is not supported (DeepSeek-Coder's MLP has no biases)")
    heads = hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, hf["hidden_size"] // heads):
        raise ConfigError(f"config.json head_dim={hf['head_dim']} must equal hidden_size / num_attention_heads")
    fields = {name: hf[name] for name in _HF_FIELDS if hf.get(name) is not None}
    for name in ("bos_token_id", "eos_token_id"):  # some configs list several; the first is the main one
        if isinstance(fields.get(name), list):
            fields[name] = fields[name][0]
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    if "rope_theta" in rope:
        fields["rope_theta"] = rope["rope_theta"]
    kind = rope.get("rope_type", rope.get("type", "default"))
    fields["rope_scaling"] = None if kind == "default" else {"type": kind, "factor": float(rope.get("factor", 0))}
    return ModelConfig(**fields, attn_implementation=attn_implementation)


def config_to_hf(config: ModelConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The ``config.json`` dict of a ``LlamaForCausalLM``, in the released (transformers 4.x) layout."""
    hf = {name: getattr(config, name) for name in _HF_FIELDS}
    hf["rope_scaling"] = dict(config.rope_scaling) if config.rope_scaling else None
    dtype_name = str(dtype).removeprefix("torch.")
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **hf, "torch_dtype": dtype_name}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(path / shard).items()}
    if (path / "model.safetensors").exists():
        return load_file(path / "model.safetensors")
    raise FileNotFoundError(f"{path} holds neither model.safetensors nor model.safetensors.index.json")


def from_hf(
    path: str | Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu", attn_implementation="auto"
) -> Transformer:
    """Load a ``LlamaForCausalLM`` checkpoint folder (``config.json`` + safetensors, sharded or not).

    The model is built on the meta device and takes the stored tensors as its parameters, so loading needs
    one copy of the weights. ``dtype`` None keeps the stored dtype. Missing or unexpected tensors are an error
    that names them.
    """
    path = Path(path)
    config = config_from_hf(json.loads((path / "config.json").read_text()), attn_implementation)
    state = _read_safetensors(path)
    # Checkpoints from transformers < 4.31 stored the RoPE frequencies, which are recomputed here.
    state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
    with torch.device("meta"):
        model = Transformer(config)
    expected = set(model.state_dict())
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
        expected.discard("lm_head.weight")
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit its config: missing {missing}, unexpected {unexpected}")
    state = {k: v.to(device=device, dtype=dtype or v.dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model


def to_hf(model: Transformer, path: str | Path) -> Path:
    """Write ``model`` as a ``LlamaForCausalLM`` folder (``config.json`` + ``model.safetensors``) that
    ``transformers.AutoModelForCausalLM.from_pretrained`` loads."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:  # safetensors refuses shared storage; HF re-ties on load
        state.pop("lm_head.weight")
    dtype = next(iter(state.values())).dtype
    (path / "config.json").write_text(json.dumps(config_to_hf(model.config, dtype), indent=2) + "\n")
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    return path
