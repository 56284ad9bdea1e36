import subprocess
import sys

import pytest

from dslib.config import MODEL_PRESETS, SCALES, ConfigError, ModelConfig, get_scale
from dslib.paper import TABLE2


def test_every_scale_builds_and_env_selects_it(monkeypatch):
    for name in SCALES:
        monkeypatch.setenv("DSLIB_SCALE", name)
        assert get_scale().name == name
    monkeypatch.delenv("DSLIB_SCALE")
    assert get_scale().name == "smoke"


def test_unknown_scale_lists_choices(monkeypatch):
    monkeypatch.setenv("DSLIB_SCALE", "nonsense")
    with pytest.raises(ConfigError, match="smoke, cpu, gpu, paper"):
        get_scale()


def test_overrides_parse_types():
    scale = get_scale("smoke", ["train.lr=0.01", "fim.mode=spm", "train.betas=[0.9, 0.99]", "data.max_repos=null"])
    assert scale.train.lr == 0.01 and scale.fim.mode == "spm"
    assert scale.train.betas == (0.9, 0.99) and scale.data.max_repos is None
    assert isinstance(get_scale("smoke", ["train.lr=1"]).train.lr, float)


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("train.lrr=1", "choose one of: seq_len"),
        ("fim.mode=xsm", "choose one of: psm, spm, msp"),
        ("nope.x=1", "choose one of: data, tokenizer"),
        ("train.lr", "stage.field=value"),
        ("train.micro_batch_size=3", "must divide global_batch_size"),
    ],
)
def test_bad_override_names_the_choices(assignment, message):
    with pytest.raises(ConfigError, match=message):
        get_scale("smoke", [assignment])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(hidden_size=100, num_attention_heads=3), "num_attention_heads"),
        (dict(num_attention_heads=16, num_key_value_heads=3), "num_key_value_heads"),
        (dict(rope_scaling={"type": "yarn", "factor": 4.0}), "rope_scaling"),
    ],
)
def test_model_config_rejects_impossible_shapes(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ModelConfig(**kwargs)


def _llama_parameters(c: ModelConfig) -> int:
    # Counted by hand from the LLaMA layout: embeddings, per-layer attention + SwiGLU + two norms, final norm, head.
    kv = c.num_key_value_heads * c.head_dim
    layer = 2 * c.hidden_size**2 + 2 * c.hidden_size * kv + 3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size
    return 2 * c.vocab_size * c.hidden_size + c.num_hidden_layers * layer + c.hidden_size


def test_released_presets_match_table2_and_released_counts():
    for name, row in TABLE2.rows.items():
        c = MODEL_PRESETS[name]
        hidden, inter, layers, heads, kv_heads, _, _, params = row
        assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers) == (hidden, inter, layers)
        assert (c.num_attention_heads, c.num_key_value_heads) == (heads, kv_heads)
        assert _llama_parameters(c) == params
        assert c.rope_scaling == {"type": "linear", "factor": 4.0} and c.rope_theta == 100_000


def test_scale_models_fit_their_tokenizer():
    for name in SCALES:
        scale = get_scale(name)
        assert scale.model.vocab_size >= scale.tokenizer.vocab_size + 22
        assert scale.model.eos_token_id < scale.model.vocab_size
        assert scale.model.max_position_embeddings >= scale.train.seq_len * scale.long_context.seq_multiplier


def test_cli_info_fails_clearly_on_bad_scale():
    env = {"DSLIB_SCALE": "nonsense", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "dslib", "info"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown scale 'nonsense'" in proc.stderr and "smoke, cpu, gpu, paper" in proc.stderr


def test_overrides_from_environment_reach_every_stage(monkeypatch):
    monkeypatch.setenv("DSLIB_OVERRIDES", "data.source=/src/repos; train.lr=0.5")
    scale = get_scale("smoke")
    assert scale.data.source == "/src/repos" and scale.train.lr == 0.5
    monkeypatch.setenv("DSLIB_OVERRIDES", "train.nope=1")
    with pytest.raises(ConfigError, match="train field='nope'"):
        get_scale("smoke")


def test_experiment_and_long_context_settings_have_their_own_configs(monkeypatch):
    scale = get_scale("cpu", ["ablation.steps=1600", "long_context.rope_factor=8"])
    assert scale.ablation.steps == 1600 and scale.ablation.evals == get_scale("cpu").ablation.evals
    assert scale.long_context.rope_factor == 8.0 and scale.fim == get_scale("cpu").fim
    monkeypatch.setenv("DSLIB_OVERRIDES", "ablation.humaneval=true; long_context.steps=7")
    scale = get_scale("smoke")
    assert scale.ablation.humaneval is True and scale.long_context.steps == 7
    with pytest.raises(ConfigError, match="fim field='ablation_steps'"):
        get_scale("smoke", ["fim.ablation_steps=3"])
