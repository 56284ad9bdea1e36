"""dslib.model against transformers' LlamaForCausalLM, brute-force references and the paper's numbers."""

import json
import math

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import dslib.model
from dslib.config import ConfigError
from dslib.model import (
    KVCache,
    ModelConfig,
    Transformer,
    attention_backend,
    config_from_hf,
    config_to_hf,
    count_parameters,
    eager_attention,
    flash_attention,
    from_hf,
    rope_cos_sin,
    sdpa_attention,
    to_hf,
)
from dslib.model_analysis import profile_attention

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> ModelConfig:
    fields = dict(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rope_theta=10_000.0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return ModelConfig(**{**fields, **overrides})


def build(config: ModelConfig, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(config)
    with torch.no_grad():  # norms away from 1 so that a misplaced norm weight shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model.eval()


# ------------------------------------------------------------------------------------ the paper's numbers


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("deepseek-coder-1.3b", 1_346_471_936),
        ("deepseek-coder-6.7b", 6_740_512_768),
        ("deepseek-coder-33b", 33_342_991_360),
    ],
)
def test_preset_parameter_counts_equal_released_models(preset, expected):
    assert count_parameters(ModelConfig.from_preset(preset)) == expected


def test_large_presets_build_on_meta_without_memory():
    with torch.device("meta"):
        model = Transformer(ModelConfig.from_preset("deepseek-coder-33b"))
    assert all(p.is_meta for p in model.parameters())
    attn = model.model.layers[0].self_attn  # GQA: 56 query heads share 8 key/value heads of 128 channels
    assert attn.q_proj.weight.shape == (7168, 7168)
    assert attn.k_proj.weight.shape == (8 * 128, 7168)


def test_released_config_json_reads_as_preset():
    # deepseek-ai/deepseek-coder-1.3b-base config.json (FACTS §4), transformers 4.x layout.
    released = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "bos_token_id": 32013,
        "eos_token_id": 32014,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 5504,
        "max_position_embeddings": 16384,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "num_key_value_heads": 16,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"factor": 4.0, "type": "linear"},
        "rope_theta": 100000,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": 32256,
    }
    assert config_from_hf(released) == ModelConfig.from_preset("deepseek-coder-1.3b")


# ------------------------------------------------------------------------------- transformers as the oracle

CONFIGS = {
    "mha": dict(num_key_value_heads=4),
    "gqa": dict(num_key_value_heads=2),
    "mha-linear4": dict(num_key_value_heads=4, rope_scaling={"type": "linear", "factor": 4.0}),
    "gqa-linear4": dict(num_key_value_heads=2, rope_scaling={"type": "linear", "factor": 4.0}),
}


def hf_model(config: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    hf_config = transformers.LlamaConfig(**config_to_hf(config))
    return transformers.LlamaForCausalLM(hf_config).eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_from_hf_logits_match_transformers(name, tmp_path):
    config = tiny(**CONFIGS[name])
    reference = hf_model(config)
    reference.save_pretrained(tmp_path)  # transformers 5.x writes rope_parameters
    model = from_hf(tmp_path)
    assert model.config == config
    ids = torch.randint(0, config.vocab_size, (2, 48))  # past max_position_embeddings = 32
    with torch.no_grad():
        diff = (model(ids) - reference(ids).logits).abs().max().item()
    assert diff <= 1e-4


@pytest.mark.parametrize("name", list(CONFIGS))
def test_to_hf_loads_in_transformers_with_same_logits(name, tmp_path):
    model = build(tiny(**CONFIGS[name]))
    to_hf(model, tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(reference, transformers.LlamaForCausalLM)
    ids = torch.randint(0, model.config.vocab_size, (2, 40))
    with torch.no_grad():
        diff = (model(ids) - reference(ids).logits).abs().max().item()
    assert diff <= 1e-4


def test_left_padded_batch_matches_transformers(tmp_path):
    model = build(tiny())
    to_hf(model, tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ids = torch.randint(3, model.config.vocab_size, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    mask[2, :11] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask, position_ids=positions)
        theirs = reference(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    assert (ours[real] - theirs[real]).abs().max().item() <= 1e-4


def test_sharded_checkpoint_loads(tmp_path):
    reference = hf_model(tiny())
    reference.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    model = from_hf(tmp_path)
    ids = torch.randint(0, 96, (1, 16))
    with torch.no_grad():
        assert (model(ids) - reference(ids).logits).abs().max().item() <= 1e-4


def test_tied_embeddings_round_trip(tmp_path):
    model = build(tiny(tie_word_embeddings=True))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    to_hf(model, tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    loaded = from_hf(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    ids = torch.randint(0, 96, (1, 16))
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))
        assert (reference(ids).logits - model(ids)).abs().max().item() <= 1e-4


def test_from_hf_keeps_or_casts_dtype(tmp_path):
    to_hf(build(tiny()).to(torch.bfloat16), tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert from_hf(tmp_path).lm_head.weight.dtype == torch.bfloat16
    assert from_hf(tmp_path, dtype=torch.float32).lm_head.weight.dtype == torch.float32


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(num_attention_heads=5), "num_attention_heads"),  # 5 does not divide hidden_size 32
        (dict(num_attention_heads=4, num_key_value_heads=3), "num_key_value_heads"),
        (dict(rope_scaling={"type": "dynamic", "factor": 2.0}), "rope_scaling"),
        (dict(rope_scaling={"type": "linear", "factor": 0.5}), "rope_scaling"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        tiny(**overrides)


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(model_type="gpt2"), "model_type"),
        (dict(head_dim=16), "head_dim"),
        (dict(rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}), "rope_scaling"),
    ],
)
def test_bad_hf_config_names_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        config_from_hf({**config_to_hf(tiny()), **change})


def test_checkpoint_with_missing_or_unexpected_tensors_names_them(tmp_path):
    to_hf(build(tiny()), tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    state["model.layers.2.mlp.up_proj.weight"] = torch.zeros(80, 32)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing \['model.layers.1.mlp.up_proj.weight'\].*unexpected") as err:
        from_hf(tmp_path)
    assert "model.layers.2.mlp.up_proj.weight" in str(err.value)


def test_folder_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config_to_hf(tiny())))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        from_hf(tmp_path)


# ------------------------------------------------------------------------------------- attention backends


def qkv(b=2, heads=4, kv_heads=2, t=10, s=10, d=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, heads, t, d, generator=g).to(dtype)
    k = torch.randn(b, kv_heads, s, d, generator=g).to(dtype)
    v = torch.randn(b, kv_heads, s, d, generator=g).to(dtype)
    return q, k, v


def brute_force_attention(q, k, v, mask):
    """One query at a time, in float64: the textbook formula with no broadcasting tricks."""
    b, h, t, d = q.shape
    out = torch.zeros(b, h, t, d, dtype=torch.float64)
    groups = h // k.shape[1]
    for i in range(b):
        for j in range(h):
            for a in range(t):
                keep = mask[i, 0, a]
                scores = k[i, j // groups, keep].double() @ q[i, j, a].double() / math.sqrt(d)
                out[i, j, a] = torch.softmax(scores, 0) @ v[i, j // groups, keep].double()
    return out


def causal_mask(b, t, s):
    return torch.ones(t, s, dtype=torch.bool).tril(s - t).expand(b, 1, t, s)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("t, s", [(10, 10), (1, 10), (4, 10)])  # full, one decode step, a chunk after a cache
def test_eager_and_sdpa_match_brute_force_causal(kv_heads, t, s):
    q, k, v = qkv(kv_heads=kv_heads, t=t, s=s)
    expected = brute_force_attention(q, k, v, causal_mask(2, t, s))
    for attention in (eager_attention, sdpa_attention):
        assert (attention(q, k, v, None).double() - expected).abs().max() < 1e-5
        assert (attention(q, k, v, causal_mask(2, t, s)).double() - expected).abs().max() < 1e-5


def test_padding_mask_matches_brute_force():
    q, k, v = qkv(t=8, s=8)
    mask = causal_mask(2, 8, 8).clone()
    mask[1, :, :, :3] = False
    mask[1, :, torch.arange(3), torch.arange(3)] = True  # padding queries see themselves (no empty rows)
    expected = brute_force_attention(q, k, v, mask)
    for attention in (eager_attention, sdpa_attention):
        assert (attention(q, k, v, mask).double() - expected).abs().max() < 1e-5


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_model_eager_and_sdpa_agree(dtype, tol, kv_heads):
    ids = torch.randint(0, 96, (2, 24))
    mask = torch.ones_like(ids)
    mask[0, :7] = 0
    logits = {}
    for backend in ("eager", "sdpa"):
        model = build(tiny(num_key_value_heads=kv_heads, attn_implementation=backend)).to(dtype)
        with torch.no_grad():
            logits[backend] = (model(ids).float(), model(ids, attention_mask=mask)[mask.bool()].float())
    for ours, reference in zip(logits["sdpa"], logits["eager"], strict=True):
        assert (ours - reference).abs().max().item() < tol


def test_sdpa_without_enable_gqa_as_before_torch_2_5(monkeypatch):
    q, k, v = qkv(kv_heads=2, t=12, s=12)
    expected = sdpa_attention(q, k, v, None)
    monkeypatch.setattr(dslib.model, "_SDPA_HAS_GQA", False)
    assert (sdpa_attention(q, k, v, None) - expected).abs().max() < 1e-6


def test_bf16_model_is_close_to_fp32():
    model = build(tiny())
    ids = torch.randint(0, 96, (2, 16))
    with torch.no_grad():
        full = model(ids)
        half = model.to(torch.bfloat16)(ids)
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max().item() < 0.05


def test_bf16_autocast_trains_and_decodes_with_cache():
    model = build(tiny()).train()
    ids = torch.randint(0, 96, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids)
        cache = KVCache(model.config, 2, 16)  # fp32 cache, bf16 keys and values
        with torch.no_grad():
            stepped = torch.cat([model(ids[:, :15], cache=cache), model(ids[:, 15:], cache=cache)], dim=1)
    assert (stepped.float() - logits.float()).abs().max().item() < 0.05
    assert logits.dtype == torch.bfloat16
    torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_attention_backend_dispatch():
    cuda, cpu, bf16, fp32 = "cuda", "cpu", torch.bfloat16, torch.float32
    assert attention_backend("auto", cuda, bf16, has_mask=False, flash_available=True) == "flash"
    assert attention_backend("auto", cuda, bf16, has_mask=True, flash_available=True) == "sdpa"
    assert attention_backend("auto", cuda, fp32, has_mask=False, flash_available=True) == "sdpa"
    assert attention_backend("auto", cpu, bf16, has_mask=False, flash_available=True) == "sdpa"
    assert attention_backend("auto", cuda, bf16, has_mask=False, flash_available=False) == "sdpa"
    assert attention_backend("eager", cuda, bf16, has_mask=False, flash_available=True) == "eager"
    assert attention_backend("flash", cuda, torch.float16, has_mask=False, flash_available=True) == "flash"
    with pytest.raises(RuntimeError, match="flash_attn"):
        attention_backend("flash", cpu, bf16, has_mask=False, flash_available=True)
    with pytest.raises(RuntimeError, match="padding mask"):
        attention_backend("flash", cuda, bf16, has_mask=True, flash_available=True)


def test_flash_requested_on_cpu_fails_clearly():
    model = build(tiny(attn_implementation="flash"))
    with pytest.raises(RuntimeError, match="attn_implementation='flash'"):
        model(torch.zeros(1, 4, dtype=torch.long))


def fake_flash_attn_func(q, k, v, causal):
    """flash-attn's contract, in [B, T, H, D] with GQA and bottom-right causal alignment, via the brute force."""
    b, t, _, _ = q.shape
    s = k.shape[1]
    out = brute_force_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal_mask(b, t, s))
    return out.to(q.dtype).transpose(1, 2)


@pytest.mark.parametrize("t, s", [(10, 10), (1, 10), (4, 10)])
def test_flash_wrapper_layout_matches_eager(t, s):
    q, k, v = qkv(kv_heads=2, t=t, s=s)
    out = flash_attention(q, k, v, None, flash_fn=fake_flash_attn_func)
    assert (out - eager_attention(q, k, v, None)).abs().max() < 1e-5


def test_profile_attention_shows_eager_keeps_quadratic_memory():
    config = tiny(num_key_value_heads=4)
    eager = [profile_attention("eager", t, config, repeats=1)["saved_mib"] for t in (64, 128)]
    sdpa = [profile_attention("sdpa", t, config, repeats=1)["saved_mib"] for t in (64, 128)]
    # Eager keeps the 4 × T × T fp32 probabilities (and more); doubling T at least triples what it keeps.
    assert eager[0] >= 4 * 64 * 64 * 4 / 2**20 and eager[1] > 3 * eager[0]
    assert sdpa[1] < 2.5 * sdpa[0] and sdpa[1] < eager[1] / 4


# ----------------------------------------------------------------------------- positions, masks and cache


@settings(max_examples=30, deadline=None)
@given(p=st.integers(0, 20_000), shift=st.integers(0, 20_000), gap=st.integers(0, 64))
def test_rope_scores_depend_only_on_relative_position(p, shift, gap):
    config = tiny(rope_theta=100_000.0, rope_scaling={"type": "linear", "factor": 4.0})
    q, k = torch.randn(2, config.head_dim, generator=torch.Generator().manual_seed(p), dtype=torch.float64)

    def score(qpos, kpos):
        cos, sin = rope_cos_sin(torch.tensor([[qpos, kpos]]), config)
        cos, sin = cos[0].double(), sin[0].double()
        rot = lambda x, i: x * cos[i] + torch.cat((-x[config.head_dim // 2 :], x[: config.head_dim // 2])) * sin[i]
        return (rot(q, 0) @ rot(k, 1)).item()

    assert score(p + gap, p) == pytest.approx(score(p + gap + shift, p + shift), abs=2e-3)


def test_linear_rope_scaling_divides_positions():
    scaled = tiny(rope_scaling={"type": "linear", "factor": 4.0})
    positions = torch.arange(0, 4 * 64, 4)[None]
    assert torch.allclose(
        torch.stack(rope_cos_sin(positions, scaled)), torch.stack(rope_cos_sin(positions / 4, tiny())), atol=1e-6
    )


def test_logits_are_causal():
    model = build(tiny())
    ids = torch.randint(0, 96, (1, 20))
    changed = ids.clone()
    changed[0, 12:] = (changed[0, 12:] + 1) % 96
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[0, :12], b[0, :12], atol=1e-6)
    assert not torch.allclose(a[0, 12:], b[0, 12:], atol=1e-3)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_cache_in_chunks_equals_full_forward(backend):
    model = build(tiny(attn_implementation=backend))
    ids = torch.randint(0, 96, (2, 18))
    cache = KVCache(model.config, 2, 18)
    with torch.no_grad():
        full = model(ids)
        pieces = [model(ids[:, a:b], cache=cache) for a, b in [(0, 7), (7, 8), (8, 13), (13, 18)]]
    assert cache.length == 18
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-5


def test_left_padded_rows_equal_unpadded_rows():
    model = build(tiny())
    rows = [torch.randint(3, 96, (n,)) for n in (9, 4, 1)]
    ids = torch.zeros(3, 9, dtype=torch.long)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, 9 - len(row) :], mask[i, 9 - len(row) :] = row, 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
        for i, row in enumerate(rows):
            alone = model(row[None])[0]
            assert (batched[i, 9 - len(row) :] - alone).abs().max().item() < 1e-5
        # A padding query sees only itself (never an empty row, which gives NaN in torch < 2.5's SDPA).
        assert (batched[2, 3] - model(ids[2:, 3:4])[0, 0]).abs().max().item() < 1e-5


def test_cache_overflow_and_mask_shape_are_clear_errors():
    model = build(tiny())
    with pytest.raises(ValueError, match="KVCache holds 4"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=KVCache(model.config, 1, 4))
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.zeros(1, 5, dtype=torch.long), attention_mask=torch.ones(1, 4))


def test_init_weights_after_meta_build():
    config = tiny()
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cpu")
    model.init_weights()
    weight = model.model.layers[0].mlp.up_proj.weight
    assert abs(weight.std().item() - config.initializer_range) < 0.003
    assert torch.equal(model.model.norm.weight, torch.ones(config.hidden_size))
