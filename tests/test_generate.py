"""dslib.generate: the cache against full re-computation, batching against single prompts, transformers'
generate as the oracle for greedy decoding, and nucleus sampling against its definition."""

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from dslib.generate import generate, left_pad, sample_next, truncate_at_stop
from dslib.model import ModelConfig, Transformer, to_hf

PROMPTS = [[5, 9, 13, 2, 77, 31, 8], [40, 41], [60]]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Transformer:
    config = ModelConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10_000.0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = Transformer(config).eval()
    with torch.no_grad():  # a sharper distribution than initialisation gives, so that greedy has clear winners
        model.lm_head.weight.mul_(20)
    return model


def test_greedy_with_cache_equals_without(model):
    cached = generate(model, PROMPTS, 24, stop=())
    assert cached == generate(model, PROMPTS, 24, stop=(), use_cache=False)
    assert [len(row) for row in cached] == [24, 24, 24]


def test_batched_left_padding_equals_one_prompt_at_a_time(model):
    batched = generate(model, PROMPTS, 16, stop=())
    assert batched == [generate(model, [p], 16, stop=())[0] for p in PROMPTS]


def test_greedy_matches_transformers_generate(model, tmp_path):
    to_hf(model, tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask = left_pad(PROMPTS, pad_token_id=0)
    out = reference.generate(
        ids, attention_mask=mask, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0
    )
    assert generate(model, PROMPTS, 16, stop=()) == out[:, ids.shape[1] :].tolist()


def test_tensor_inputs_with_mask_or_pad_id_equal_ragged_lists(model):
    ids, mask = left_pad(PROMPTS)
    assert ids[2].tolist() == [0] * 6 + [60] and mask[1].tolist() == [0] * 5 + [1, 1]
    expected = generate(model, PROMPTS, 8, stop=())
    assert generate(model, ids, 8, stop=(), attention_mask=mask) == expected
    assert generate(model, ids, 8, stop=(), pad_token_id=0) == expected


def test_right_padding_is_refused(model):
    ids = torch.tensor([[5, 6, 0]])
    with pytest.raises(ValueError, match="left padding"):
        generate(model, ids, 4, attention_mask=torch.tensor([[1, 1, 0]]))


def test_stop_token_ends_row_and_is_dropped(model):
    free = generate(model, PROMPTS, 24, stop=())
    stop_id = free[0][5]
    cut = [row[: row.index(stop_id)] if stop_id in row else row for row in free]
    assert generate(model, PROMPTS, 24, stop=[stop_id]) == cut


def test_default_stop_is_eos(model):
    free = generate(model, PROMPTS, 24, stop=())
    eos = model.config.eos_token_id
    expected = [row[: row.index(eos)] if eos in row else row for row in free]
    assert generate(model, PROMPTS, 24) == expected


class LetterTokenizer:
    """Token i decodes to one letter: enough to place stop strings at known tokens."""

    def decode(self, ids):
        return "".join(chr(ord("a") + i % 26) for i in ids)


def test_stop_string_ends_row_through_the_completing_token(model):
    tok = LetterTokenizer()
    free = generate(model, PROMPTS, 24, stop=())
    word = tok.decode(free[1][3:5])  # two letters ending at token 4 of row 1
    out = generate(model, PROMPTS, 24, stop=[word], tokenizer=tok)
    for row, full in zip(out, free, strict=True):
        text = tok.decode(full)
        end = text.find(word) + len(word) if word in text else len(text)
        assert row == full[:end]
        assert truncate_at_stop(tok.decode(row), [word]) == text[: text.find(word)] if word in text else text
    assert len(out[1]) <= 5


@pytest.mark.parametrize("bad", [dict(max_new_tokens=-1), dict(temperature=-0.5), dict(top_p=0.0), dict(top_p=1.5)])
def test_bad_decoding_settings_are_named(model, bad):
    settings = {"max_new_tokens": 4, **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        generate(model, PROMPTS, **settings)


def test_stop_strings_need_a_tokenizer(model):
    with pytest.raises(ValueError, match="tokenizer"):
        generate(model, PROMPTS, 4, stop=["\ndef"])


def test_truncate_at_stop_cuts_at_the_earliest_word():
    stops = ["\ndef", "\nclass", "\nif", "\n#", "\nprint", 32014]  # the repository's Python stop words
    assert truncate_at_stop("    return x\n\nprint(f(1))\ndef g", stops) == "    return x\n"
    assert truncate_at_stop("    return x", stops) == "    return x"


def test_sampling_is_reproducible_with_a_generator(model):
    runs = [generate(model, PROMPTS, 12, 1.0, 0.9, (), generator=torch.Generator().manual_seed(7)) for _ in "ab"]
    assert runs[0] == runs[1]
    assert runs[0] != generate(model, PROMPTS, 12, stop=())


def test_nucleus_sampling_follows_the_renormalised_distribution():
    logits = torch.log(torch.tensor([[0.1, 0.4, 0.2, 0.3]])).expand(4000, 4)
    draws = sample_next(logits, temperature=1.0, top_p=0.6, generator=torch.Generator().manual_seed(0))
    # The nucleus for 0.6 is {1, 2nd-best 3}: 0.4 + 0.3 >= 0.6; renormalised 4/7 and 3/7.
    assert set(draws.tolist()) == {1, 3}
    assert (draws == 1).float().mean().item() == pytest.approx(4 / 7, abs=0.03)


@settings(max_examples=50, deadline=None)
@given(
    weights=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=12),
    top_p=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_nucleus_keeps_only_tokens_with_less_than_top_p_ranked_above(weights, top_p, seed):
    probs = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    draws = sample_next(probs.log()[None].expand(300, -1), 1.0, top_p, torch.Generator().manual_seed(seed))
    for token in set(draws.tolist()):  # the definition, token by token (strictly above, so ties cannot matter)
        assert probs[probs > probs[token]].sum().item() < top_p + 1e-9


def test_temperature_zero_is_argmax():
    logits = torch.randn(5, 50)
    assert torch.equal(sample_next(logits), logits.argmax(-1))
    assert torch.equal(sample_next(logits, temperature=1.0, top_p=1e-9), logits.argmax(-1))
