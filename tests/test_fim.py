"""FIM transforms: hand-checked formats, the README prompt, recovery of any text, rate and uniformity statistics."""

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dslib.config import FIMConfig
from dslib.fim import (
    DEEPSEEK,
    SANTACODER,
    SENTINELS,
    STARCODER,
    FIMSplit,
    Sentinel,
    apply_fim,
    arrange,
    draw_split,
    encode_fim,
    fim_prompt,
    parse_fim,
    recover_document,
    sentinel_ids,
    token_boundaries,
)
from dslib.tokenizer import ADDED_TOKENS, train_tokenizer

# Spelled with escapes so that the test does not depend on how the editor stores U+FF5C and U+2581.
BEGIN, HOLE, END = (f"<\uff5cfim\u2581{w}\uff5c>" for w in ("begin", "hole", "end"))
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
MODES = ["psm", "spm", "msp", {"psm": 0.5, "spm": 0.5}]
# Statistical tests use distribution-free bounds (Hoeffding, Dvoretzky-Kiefer-Wolfowitz) with a union bound
# over what they check, so a correct implementation fails each one with probability below FALSE_ALARM.
FALSE_ALARM = 1e-6
ALL_SPELLINGS = sorted({s for preset in SENTINELS.values() for s in (preset.pre, preset.suf, preset.mid, preset.eos)})


@lru_cache(maxsize=1)
def tokenizer():
    """A small byte-level BPE with DeepSeek-Coder's added tokens, trained on the standard library's json package."""
    texts = [p.read_text() for p in sorted(Path(json.__file__).parent.glob("*.py"))]
    return train_tokenizer(texts, vocab_size=400, show_progress=False)


def test_sentinel_spellings_are_the_released_characters():
    assert (DEEPSEEK.pre, DEEPSEEK.suf, DEEPSEEK.mid, DEEPSEEK.eos) == (BEGIN, HOLE, END, EOS)
    assert "\uff5c".encode() == b"\xef\xbd\x9c" and "\u2581".encode() == b"\xe2\x96\x81"


def test_psm_prompt_is_the_readme_code_insertion_input():
    # DeepSeek-Coder README §4.2 "Code Insertion", input_text verbatim.
    prefix = (
        "def quick_sort(arr):\n    if len(arr) <= 1:\n        return arr\n    pivot = arr[0]\n"
        "    left = []\n    right = []\n"
    )
    suffix = (
        "\n        if arr[i] < pivot:\n            left.append(arr[i])\n        else:\n"
        "            right.append(arr[i])\n    return quick_sort(left) + [pivot] + quick_sort(right)"
    )
    readme = (
        "<\uff5cfim\u2581begin\uff5c>def quick_sort(arr):\n    if len(arr) <= 1:\n        return arr\n"
        "    pivot = arr[0]\n    left = []\n    right = []\n<\uff5cfim\u2581hole\uff5c>\n"
        "        if arr[i] < pivot:\n            left.append(arr[i])\n        else:\n"
        "            right.append(arr[i])\n    return quick_sort(left) + [pivot] + quick_sort(right)"
        "<\uff5cfim\u2581end\uff5c>"
    )
    assert fim_prompt(prefix, suffix).encode() == readme.encode()


def test_spm_prompt_is_psm_with_an_empty_prefix_then_the_prefix():
    # Bavarian et al. SPM variant 2: <PRE><SUF>suffix<MID>prefix, i.e. a PSM prompt whose prefix is empty.
    assert fim_prompt("ab", "cd", "spm") == f"{BEGIN}{HOLE}cd{END}ab" == fim_prompt("", "cd", "psm") + "ab"
    assert fim_prompt("ab", "cd", "msp") == fim_prompt("ab", "cd", "psm")


@pytest.mark.parametrize(
    "split, expected",
    [
        (FIMSplit("psm", (2, 5)), f"{BEGIN}ab{HOLE}fghij{END}cde"),
        (FIMSplit("spm", (2, 5)), f"{BEGIN}{HOLE}fghij{END}abcde"),
        (FIMSplit("psm", (0, 10)), f"{BEGIN}{HOLE}{END}abcdefghij"),
        (FIMSplit("msp", (1, 3, 6, 7)), f"{BEGIN}a{HOLE}def{HOLE}hij{END}bc{HOLE}g"),
        (FIMSplit("msp", (0, 2)), f"{BEGIN}{HOLE}cdefghij{END}ab"),
    ],
)
def test_formats_by_hand(split, expected):
    pieces = arrange("abcdefghij", split)
    spelled = "".join(getattr(DEEPSEEK, p.value) if isinstance(p, Sentinel) else p for p in pieces)
    assert spelled == expected
    assert recover_document(expected) == "abcdefghij"


def test_other_models_spellings():
    rng = np.random.default_rng(3)
    out = apply_fim("abcdef", rng, 1.0, "psm", sentinels=STARCODER)
    kept, masked = parse_fim(out, STARCODER)
    assert out == f"<fim_prefix>{kept[0]}<fim_suffix>{kept[1]}<fim_middle>{masked[0]}"
    assert fim_prompt("a", "b", "spm", SANTACODER) == "<fim-prefix><fim-suffix>b<fim-middle>a"


@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_training_example_continues_its_prompt_with_the_middle(mode):
    # What the model sees in training, up to the middle, is exactly the inference prompt.
    text = "def add(a, b):\n    return a + b\n"
    split = draw_split(len(text), np.random.default_rng(7), 1.0, mode)
    i, j = split.cuts
    out = apply_fim(text, np.random.default_rng(7), 1.0, mode)
    assert out == fim_prompt(text[:i], text[j:], mode) + text[i:j]


@settings(max_examples=300, deadline=None, database=None)
@given(
    text=st.text(),
    seed=st.integers(0, 2**32 - 1),
    rate=st.sampled_from([0.0, 0.5, 1.0]),
    mode=st.sampled_from(MODES),
    preset=st.sampled_from(sorted(SENTINELS)),
)
def test_any_text_is_recovered_from_its_transform(text, seed, rate, mode, preset):
    sentinels = SENTINELS[preset]
    assume(not any(s in text for s in (sentinels.pre, sentinels.suf, sentinels.mid)))
    out = apply_fim(text, np.random.default_rng(seed), rate, mode, sentinels=sentinels)
    assert recover_document(out, sentinels) == text
    if rate == 0.0:
        assert out == text


# Text that includes the sentinels' own spellings: the id stream must still be unambiguous.
risky_text = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(ALL_SPELLINGS)), max_size=8).map("".join)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=risky_text,
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(MODES),
    granularity=st.sampled_from(["char", "token"]),
)
def test_token_path_recovers_any_text_and_never_forges_sentinels(text, seed, mode, granularity):
    tok = tokenizer()
    ids = sentinel_ids(tok)
    special = {ids[Sentinel.PRE]: Sentinel.PRE, ids[Sentinel.SUF]: Sentinel.SUF, ids[Sentinel.MID]: Sentinel.MID}
    [encoded], [split] = encode_fim([text], tok, np.random.default_rng(seed), 1.0, mode, granularity=granularity)
    # Split the ids at the sentinel ids; the runs between them decode to the text's pieces.
    runs, roles, current = [], [], []
    for i in encoded:
        if i in special:
            runs.append(current)
            roles.append(special[i])
            current = []
        else:
            current.append(i)
    runs.append(current)
    n_holes = len(split.cuts) // 2 if split.mode == "msp" else 1
    assert roles[0] == Sentinel.PRE and roles.count(Sentinel.MID) == 1
    assert roles.count(Sentinel.SUF) == (2 * n_holes - 1 if split.mode == "msp" else 1)
    assert ids["eos"] not in encoded
    assert runs[0] == []
    # Reassemble the document from the roles alone, whatever the text contains: c0 m1 c1 … mk ck. SPM needs no
    # case of its own: PRE SUF suffix MID prefix+middle reads as PSM with an empty prefix.
    k = roles.index(Sentinel.MID)
    kept, masked = runs[1 : k + 1], runs[k + 1 :]
    document = [i for c, m in zip(kept, masked, strict=False) for i in c + m] + kept[-1]
    assert tok.decode(document, skip_special_tokens=False) == text


def test_literal_sentinel_text_encodes_as_ordinary_tokens():
    tok = tokenizer()
    text = "x = '<\uff5cfim\u2581hole\uff5c>'  # and <|EOT|> and " + EOS
    [encoded], [split] = encode_fim([text], tok, np.random.default_rng(0), 0.0, "psm")
    assert split is None
    added = {tok.token_to_id(t) for t in ADDED_TOKENS}
    assert not added & set(encoded)
    assert tok.decode(encoded, skip_special_tokens=False) == text


def margin(n: int, checks: int = 1) -> float:
    """Hoeffding: a frequency over ``n`` draws strays further than this from its probability, in any of
    ``checks`` checks, with probability at most FALSE_ALARM."""
    return math.sqrt(math.log(2 * checks / FALSE_ALARM) / (2 * n))


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_empirical_fim_rate_matches_rate(rate):
    rng = np.random.default_rng(11)
    n = 20_000
    hits = sum(draw_split(10, rng, rate, "psm") is not None for _ in range(n))
    if rate in (0.0, 1.0):
        assert hits == rate * n
    else:
        assert abs(hits / n - rate) <= margin(n), (hits, n, rate)


def test_mix_draws_modes_in_proportion():
    rng = np.random.default_rng(5)
    modes = [draw_split(10, rng, 1.0, {"psm": 0.25, "spm": 0.75}).mode for _ in range(8000)]
    assert set(modes) == {"psm", "spm"}
    assert abs(modes.count("psm") / len(modes) - 0.25) <= margin(len(modes))


def _joint_split_deviation(pairs: list[tuple[int, int]], n: int) -> tuple[float, float]:
    """The largest gap between a cell's frequency and its probability under two independent uniform draws on
    0..n (sorted), over all cells (i <= j); and the margin that gap stays within for a correct sampler."""
    cells = [(i, j) for i in range(n + 1) for j in range(i, n + 1)]
    counts = dict.fromkeys(cells, 0)
    for pair in pairs:
        counts[pair] += 1
    gap = max(abs(counts[(i, j)] / len(pairs) - (1 if i == j else 2) / (n + 1) ** 2) for i, j in cells)
    return gap, margin(len(pairs), len(cells))


def test_split_points_are_uniform_over_the_whole_document():
    n, draws = 4, 30_000
    rng = np.random.default_rng(2024)
    pairs = []
    for _ in range(draws):
        kept, masked = parse_fim(apply_fim("abcd", rng, 1.0, "psm"))
        pairs.append((len(kept[0]), len(kept[0]) + len(masked[0])))
    gap, allowed = _joint_split_deviation(pairs, n)
    assert gap <= allowed
    # The same check catches a near miss: positions drawn from 0..n-1 never cut after the last character.
    biased_rng = np.random.default_rng(2024)
    biased = [tuple(sorted(int(x) for x in biased_rng.integers(0, n, size=2))) for _ in range(draws)]
    gap, allowed = _joint_split_deviation(biased, n)
    assert gap > allowed


def test_split_marginal_covers_every_position_of_a_long_document():
    # Pooled, the two split points are two independent uniform draws on 0..n: their empirical CDF stays within
    # the Dvoretzky-Kiefer-Wolfowitz band sqrt(ln(2/alpha) / 2m) of the uniform CDF.
    n, rng = 200, np.random.default_rng(9)
    points = np.array([draw_split(n, rng, 1.0, "spm").cuts for _ in range(5000)]).ravel()
    assert points.min() == 0 and points.max() == n
    empirical = np.cumsum(np.bincount(points, minlength=n + 1)) / points.size
    uniform = np.arange(1, n + 2) / (n + 1)
    assert np.abs(empirical - uniform).max() <= math.sqrt(math.log(2 / FALSE_ALARM) / (2 * points.size))


def test_msp_masks_t5_style_spans():
    n, density, mean = 20_000, 0.15, 10.0
    split = draw_split(n, np.random.default_rng(1), 1.0, "msp", density, mean)
    cuts = np.array(split.cuts)
    starts, ends = cuts[0::2], cuts[1::2]
    assert np.all(ends > starts) and np.all(starts[1:] > ends[:-1])  # non-empty spans that never touch
    assert (ends - starts).sum() == round(n * density) and len(starts) == round(n * density / mean)
    assert starts[0] >= 0 and ends[-1] <= n


def test_token_granularity_cuts_on_token_boundaries():
    tok = tokenizer()
    text = "def f(x):\n    return x * 2  # d\u00e9j\u00e0 vu \U0001f600\n"
    bounds = set(token_boundaries(text, tok))
    rng = np.random.default_rng(0)
    for _ in range(50):
        kept, masked = parse_fim(apply_fim(text, rng, 1.0, "psm", granularity="token", tokenizer=tok))
        assert len(kept[0]) in bounds and len(kept[0]) + len(masked[0]) in bounds
        assert kept[0] + masked[0] + kept[1] == text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rate=1.5), "rate"),
        (dict(mode="fim"), "psm, spm, msp"),
        (dict(mode={"psm": 0.0}), "no positive weight"),
        (dict(granularity="line"), "granularity"),
        (dict(granularity="token"), "needs the tokenizer"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, message):
    args = {"rate": 0.5, "mode": "psm", **kwargs}
    with pytest.raises(ValueError, match=message):
        apply_fim("abc", np.random.default_rng(0), args.pop("rate"), args.pop("mode"), **args)


def test_malformed_fim_text_is_refused():
    with pytest.raises(ValueError, match="well-formed"):
        recover_document(f"{BEGIN}abc")


def test_config_accepts_a_mode_mix():
    cfg = FIMConfig(mode={"psm": 0.5, "spm": 0.5})
    assert draw_split(5, np.random.default_rng(0), 1.0, cfg.mode).mode in ("psm", "spm")
