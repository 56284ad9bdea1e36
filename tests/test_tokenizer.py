"""Byte-level BPE (DeepSeek-Coder §3.2): the released splits and added tokens, losslessness, no token forging,
and agreement with ``transformers`` on our folder and on a folder shaped like the release."""

import json
import sysconfig
import unicodedata
from pathlib import Path

import datasets
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, pre_tokenizers

from dslib import tokenizer as T
from dslib.artifacts import read_manifest
from dslib.config import get_scale

STDLIB = Path(sysconfig.get_paths()["stdlib"])
INCLUDE = Path(sysconfig.get_paths()["include"])
V = 1000

TRICKY = [
    "",
    " ",
    "\n",
    "\r\n\r\n",
    "    if x == 10:\n\t\treturn 'ok'\n",
    "def f():\n    return 12345678901234567890\n",
    "# 中文注释：计算两个数的和\nint add(int a, int b) { return a + b; }  // 한국어 주석",
    "emoji 🙂🚀 and ZWJ 👩‍💻, combining é vs é, RTL עברית",
    "õ÷ÁýÀÿøúþüùöû",  # the characters the release stores as added tokens at 32000–32012
    "literal <｜fim▁hole｜> and <|EOT|> and <pad> and <｜begin▁of▁sentence｜>",
    "<<｜fim▁begin｜>>|<|User|><|Assistant|>",
    "\x00\x01\x7f\u2028\u2029\ufeff\U0010ffff",
    "trailing spaces   \n\n\n   ",
]


def read_files(paths: list[Path]) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in paths]


def corpus_files() -> list[Path]:
    """A small real corpus, disjoint from the training text: Python, C headers, Unicode tables."""
    globs = [STDLIB.glob("email/**/*.py"), STDLIB.glob("json/*.py"), STDLIB.glob("html/*.py")]
    globs += [STDLIB.glob("encodings/cp9*.py"), INCLUDE.glob("*.h")]
    return sorted(p for g in globs for p in g)


def training_texts(max_bytes: int) -> list[str]:
    texts, total = [], 0
    for path in sorted(STDLIB.glob("*.py")):
        texts.append(path.read_text(encoding="utf-8"))
        total += len(texts[-1].encode())
        if total >= max_bytes:
            return texts
    return texts


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return T.train_tokenizer(training_texts(1_000_000), vocab_size=V, show_progress=False)


@pytest.fixture(scope="module")
def hf_dir(tok, tmp_path_factory) -> Path:
    return T.save_tokenizer(tok, tmp_path_factory.mktemp("ours"))


@pytest.fixture(scope="module")
def hf_tok(hf_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_dir)


# --- the released shape ------------------------------------------------------------------------------------


def test_special_token_spellings_are_the_released_characters():
    # Hand-checked against FACTS §2: U+FF5C is ef bd 9c, U+2581 is e2 96 81; the chat tokens use ASCII "|".
    assert T.BOS.encode() == b"<\xef\xbd\x9cbegin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
    assert T.FIM_HOLE.encode() == b"<\xef\xbd\x9cfim\xe2\x96\x81hole\xef\xbd\x9c>"
    assert T.SPECIAL_TOKENS == (
        "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
        "<\uff5cend\u2581of\u2581sentence\uff5c>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<\uff5cfim\u2581begin\uff5c>",
        "<\uff5cfim\u2581end\uff5c>",
        "<pad>",
        "<|User|>",
        "<|Assistant|>",
        "<|EOT|>",
    )


def test_added_tokens_sit_at_the_released_offsets(tok):
    assert tok.get_vocab_size(with_added_tokens=False) == V
    assert tok.get_vocab_size() == V + 22
    assert [tok.token_to_id(t) for t in T.ADDED_TOKENS] == list(range(V, V + 22))
    # With V = 32000 these are the released ids 32013..32021.
    assert T.special_token_ids(tok) == {t: V + 13 + i for i, t in enumerate(T.SPECIAL_TOKENS)}
    assert all(ch in tok.get_vocab() for ch in pre_tokenizers.ByteLevel.alphabet())


def test_encode_prepends_bos_like_the_release(tok):
    ids = tok.encode("x = 1").ids
    assert ids[0] == V + 13 and ids[1:] == T.encode_text(tok, ["x = 1"])[0]


def test_pre_tokenizer_splits_hand_checked():
    text = "    if x == 10:\n\t# 中文注释 ok"
    pieces = T.pre_tokenize(text)
    # "=" is a math symbol, not \p{P}, so " == " stays one piece; digits go one at a time.
    assert pieces == ["   ", " if", " x", " == ", "1", "0", ":", "\n", "\t#", " ", "中文注释", " ok"]


def reference_pieces(text: str) -> list[str]:
    """The released splits applied one after another with the ``regex`` module, "isolated" behaviour."""
    pieces = [text] if text else []
    for pattern in T.PRE_TOKENIZER_PATTERNS:
        split = []
        for piece in pieces:
            pos = 0
            for m in regex.finditer(pattern, piece):
                split += [piece[pos : m.start()]] if m.start() > pos else []
                split += [m.group()] if m.end() > m.start() else []
                pos = m.end()
            split += [piece[pos:]] if pos < len(piece) else []
        pieces = split
    return pieces


# Oniguruma and `regex` ship different Unicode versions; compare on characters both have assigned.
assigned = st.characters(codec="utf-8").filter(lambda c: unicodedata.category(c) != "Cn")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=assigned, max_size=60))
def test_pre_tokenizer_matches_regex_reference(text):
    assert T.pre_tokenize(text) == reference_pieces(text)


def test_pre_tokenizer_matches_regex_reference_on_real_files():
    for path in corpus_files()[:40]:
        text = path.read_text(encoding="utf-8")
        assert T.pre_tokenize(text) == reference_pieces(text), path


# --- lossless ----------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_round_trip_any_unicode(tok, text):
    (ids,) = T.encode_text(tok, [text])
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == T.BOS + text


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_tricky(tok, text):
    assert tok.decode(T.encode_text(tok, [text])[0]) == text


def test_round_trip_every_corpus_file(tok):
    files = corpus_files()
    texts = read_files(files)
    assert len(files) > 100 and any(not t.isascii() for t in texts)
    for path, text, ids in zip(files, texts, T.encode_text(tok, texts), strict=True):
        assert tok.decode(ids) == text, path


# --- special-token injection -------------------------------------------------------------------------------


def test_literal_special_text_is_not_a_special_token(tok):
    text = "x = '<｜fim▁hole｜>'  # forged <|EOT|> <｜end▁of▁sentence｜>\n"
    (ids,) = T.encode_text(tok, [text])
    assert not set(ids) & set(range(V, V + 22))
    # Reference: the same BPE with no added tokens at all gives the same ids.
    bare = json.loads(tok.to_str())
    bare["added_tokens"], bare["post_processor"] = [], None
    assert Tokenizer.from_str(json.dumps(bare)).encode(text).ids == ids
    # The check can fail: plain encoding does match added tokens in text.
    assert {V + 15, V + 21} <= set(tok.encode(text, add_special_tokens=False).ids)
    assert tok.encode_special_tokens is False  # encode_text leaves the tokenizer as it found it


def test_encode_text_rejects_bad_input_clearly(tok):
    with pytest.raises(TypeError, match="list of strings"):
        T.encode_text(tok, "not a list")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        T.encode_text(tok, ["ok", 3])
    with pytest.raises(TypeError, match=r"texts\[0\] is not valid Unicode"):
        T.encode_text(tok, ["lone \ud800 surrogate"])
    assert tok.encode_special_tokens is False


def test_train_rejects_a_corpus_too_small_for_the_vocabulary():
    with pytest.raises(ValueError, match="fewer than vocab_size=5000"):
        T.train_tokenizer(["def f(): return 1\n"] * 10, vocab_size=5000, show_progress=False)
    with pytest.raises(TypeError, match="training text #1 is bytes"):
        T.train_tokenizer(["ok", b"bytes"], vocab_size=300, show_progress=False)


# --- transformers ------------------------------------------------------------------------------------------


def test_transformers_loads_our_folder_and_encodes_identically(tok, hf_dir, hf_tok):
    assert sorted(p.name for p in hf_dir.iterdir()) == [
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.pad_token_id) == (V + 13, V + 14, V + 14)
    assert len(hf_tok) == V + 22
    texts = TRICKY + read_files(corpus_files()[::10])
    for text in texts:
        assert hf_tok(text)["input_ids"] == tok.encode(text).ids
        plain = hf_tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert plain == T.encode_text(tok, [text])[0]
        assert hf_tok.decode(plain) == text


def test_load_tokenizer_reads_our_folder(tok, hf_dir):
    loaded = T.load_tokenizer(hf_dir)
    assert loaded.to_str() == tok.to_str()
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        T.load_tokenizer(hf_dir / "missing")


# The release's pre-tokenizer and added tokens as they appear in its tokenizer.json (FACTS §2), written out
# by hand rather than produced by our code.
RELEASED_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        *(
            {"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False}
            for p in ["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"]
        ),
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
    ],
}
RELEASED_BYTE_TOKENS = ["õ", "÷", "Á", "ý", "À", "ÿ", "ø", "ú", "þ", "ü", "ù", "ö", "û"]
RELEASED_ADDED = [(c, False) for c in RELEASED_BYTE_TOKENS] + [
    ("<｜begin▁of▁sentence｜>", True),
    ("<｜end▁of▁sentence｜>", True),
    ("<｜fim▁hole｜>", False),
    ("<｜fim▁begin｜>", False),
    ("<｜fim▁end｜>", False),
    ("<pad>", False),
    ("<|User|>", False),
    ("<|Assistant|>", False),
    ("<|EOT|>", True),
]


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    """A folder shaped like deepseek-coder-*-base's: a 32,000-entry BPE (the 243 UTF-8 byte symbols, a few
    merges, filler), the 22 added tokens at 32000–32021, BOS post-processor, tokenizer_config.json."""
    alphabet = [c for c in sorted(pre_tokenizers.ByteLevel.alphabet()) if c not in RELEASED_BYTE_TOKENS]
    merges = [["d", "e"], ["de", "f"], ["Ġ", "def"], ["Ġ", "Ġ"]]
    learned = alphabet + ["de", "def", "Ġdef", "ĠĠ"]
    vocab = {t: i for i, t in enumerate(learned + [f"<filler{i}>" for i in range(32_000 - len(learned))])}
    bos = {"SpecialToken": {"id": T.BOS, "type_id": 0}}
    release = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": 32_000 + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False}
            | {"normalized": True, "special": special}
            for i, (c, special) in enumerate(RELEASED_ADDED)
        ],
        "normalizer": {"type": "Sequence", "normalizers": []},
        "pre_tokenizer": RELEASED_PRE_TOKENIZER,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, bos, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {T.BOS: {"id": T.BOS, "ids": [32_013], "tokens": [T.BOS]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None}
        | {"end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges},
    }
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": {"__type": "AddedToken", "content": T.BOS, "lstrip": False, "normalized": True},
        "eos_token": {"__type": "AddedToken", "content": T.EOS, "lstrip": False, "normalized": True},
        "pad_token": {"__type": "AddedToken", "content": T.EOS, "lstrip": False, "normalized": True},
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 16384,
        "unk_token": None,
        "tokenizer_class": "LlamaTokenizerFast",
    }
    directory = tmp_path_factory.mktemp("deepseek-coder-base")
    (directory / "tokenizer.json").write_text(json.dumps(release, ensure_ascii=False), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return directory


def test_our_pipeline_is_the_released_one(tok):
    ours = json.loads(tok.to_str())
    assert ours["pre_tokenizer"] == RELEASED_PRE_TOKENIZER
    assert ours["decoder"]["type"] == "ByteLevel" and ours["model"]["type"] == "BPE"


def test_load_tokenizer_reads_a_release_shaped_folder(release_dir):
    from transformers import AutoTokenizer

    release = T.load_tokenizer(release_dir)
    assert T.special_token_ids(release) == {t: 32_013 + i for i, t in enumerate(T.SPECIAL_TOKENS)}
    assert release.get_vocab_size() == 32_022
    hf = AutoTokenizer.from_pretrained(release_dir)
    for text in ["def f():\n  def", "<｜fim▁begin｜>x = 1<｜fim▁hole｜>\n<｜fim▁end｜>", "ab 12"]:
        assert release.encode(text).ids == hf(text)["input_ids"]
    assert release.encode(" def").ids == [32_013, release.token_to_id("Ġdef")]


def test_release_folder_literal_text_stays_literal(release_dir):
    raw = Tokenizer.from_file(str(release_dir / "tokenizer.json"))
    raw.encode_special_tokens = True
    text = "café õ <｜fim▁hole｜>"
    # As shipped, the non-special added tokens are matched in text even so: õ becomes byte 0xF5, and the
    # hole sentinel is forged.
    forged = raw.encode(text, add_special_tokens=False).ids
    assert {32_000, 32_015} <= set(forged) and raw.decode(forged) != text
    release = T.load_tokenizer(release_dir)
    (ids,) = T.encode_text(release, [text])
    assert max(ids) < 32_000 and release.decode(ids) == text
    assert release.encode(text, add_special_tokens=False).ids == forged  # default encoding is unchanged


# --- datasets and artifacts --------------------------------------------------------------------------------


def test_encode_dataset_in_parallel_matches_encode_text(tok, tmp_path):
    texts = read_files(corpus_files()[:30]) + ["", "<|EOT|>"]
    ds = datasets.Dataset.from_dict({"text": texts, "repo": [f"r{i}" for i in range(len(texts))]})
    encoded = T.encode_dataset(tok, ds, tmp_path / "tokens", num_proc=2, batch_size=4)
    assert encoded.column_names == ["repo", "input_ids", "num_tokens"]
    assert encoded.features["input_ids"].feature.dtype == "uint16"
    assert encoded["repo"] == ds["repo"]
    assert [list(ids) for ids in encoded["input_ids"]] == T.encode_text(tok, texts)
    assert encoded["num_tokens"] == [len(ids) for ids in T.encode_text(tok, texts)]
    assert datasets.load_from_disk(str(tmp_path / "tokens"))["num_tokens"] == encoded["num_tokens"]
    with pytest.raises(KeyError, match="no column 'content'"):
        T.encode_dataset(tok, ds, tmp_path / "x", column="content")


def test_training_sample_reaches_the_byte_cap_in_seeded_order():
    ds = datasets.Dataset.from_dict({"text": ["a" * n for n in range(1, 41)], "size": list(range(1, 41))})
    sample = T.training_sample(ds, 100, seed=3)
    sizes = sample["size"]
    assert sum(sizes) >= 100 and sum(sizes[:-1]) < 100
    assert sizes == T.training_sample(ds, 100, seed=3)["size"] != T.training_sample(ds, 100, seed=4)["size"]
    assert len(T.training_sample(ds, None)) == 40


def test_ensure_tokenizer_and_sweep_train_once_at_the_scale_offsets(monkeypatch, tmp_path):
    texts = training_texts(1_200_000)
    sizes = [len(t.encode()) for t in texts]
    corpus = datasets.Dataset.from_dict({"text": texts, "repo": [f"r{i}" for i in range(len(texts))], "size": sizes})
    heldout_texts = read_files(corpus_files()[:20])
    heldout = datasets.Dataset.from_dict({"text": heldout_texts, "size": [len(t.encode()) for t in heldout_texts]})
    calls = []

    def load_corpus(scale=None, split="train"):
        calls.append(split)
        return heldout if split == "heldout" else corpus

    monkeypatch.setattr(T, "load_corpus", load_corpus)
    monkeypatch.setenv("DSLIB_HOME", str(tmp_path))
    scale = get_scale("smoke", {"tokenizer.train_bytes": 1_000_000, "tokenizer.sweep_vocab_sizes": [500, 2000]})
    tok = T.ensure_tokenizer(scale)
    ids = T.special_token_ids(tok)
    assert ids[T.BOS] == scale.model.bos_token_id and ids[T.EOS] == scale.model.eos_token_id
    assert tok.get_vocab_size() <= scale.model.vocab_size
    manifest = read_manifest(tmp_path / "artifacts" / "smoke" / "tokenizer")  # the preset's data: no label
    assert manifest["counts"]["learned_tokens"] == scale.tokenizer.vocab_size
    assert 1_000_000 <= manifest["counts"]["bytes"] < 1_200_000
    assert T.ensure_tokenizer(scale).to_str() == tok.to_str() and calls == ["train"]

    sweep = T.vocab_sweep(scale)
    assert [r["vocab_size"] for r in sweep] == [500, 2000]
    assert sweep[1]["bytes_per_token"] == pytest.approx(T.bytes_per_token(tok, heldout_texts))
    assert sweep[0]["bytes_per_token"] < sweep[1]["bytes_per_token"]
    assert T.vocab_sweep(scale) == sweep and calls == ["train", "train", "heldout"]


# --- inspection helpers ------------------------------------------------------------------------------------


def test_token_strings_show_each_tokens_bytes(tok):
    from tokenizers import decoders

    text = "    x_value = 12345  # 计算\n"
    pieces = T.token_strings(tok, text)
    (ids,) = T.encode_text(tok, [text])
    assert len(pieces) == len(ids) and pieces[-1] == "\n" and "1" in pieces
    # Reference: the byte-level decoder turns each token's symbols into the same text, wherever the token
    # holds whole characters.
    byte_level = decoders.ByteLevel()
    for piece, i in zip(pieces, ids, strict=True):
        if "\\x" not in piece:
            assert byte_level.decode([tok.id_to_token(i)]) == piece
    assert any("\\x" in p for p in pieces)  # 计算 is split inside its UTF-8 bytes at this vocabulary size


PATHS = [("pkg/a.py", "Python"), ("src/b.c", "C"), ("docs/c.md", "Markdown"), ("d.css", "CSS"), ("e.xyz", None)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.text(max_size=40)), max_size=6))
def test_split_sample_inverts_repo_sample(files):
    from dslib.data.languages import path_comment
    from dslib.data.pipeline import repo_sample

    headers = {path_comment(p, lang) for p, lang in PATHS}
    files = [(p, lang, text) for (p, lang), text in files if not any(h in text for h in headers)]
    sample = repo_sample(files)
    expected = [text if text.endswith("\n") else text + "\n" for _, _, text in files]
    assert T.split_sample(sample, [p for p, _, _ in files], [lang for _, lang, _ in files]) == expected


def test_split_sample_names_a_missing_header():
    with pytest.raises(ValueError, match="no header line '# b.py'"):
        T.split_sample("# a.py\nx = 1\n", ["a.py", "b.py"], ["Python", "Python"])


def test_compression_by_language_counts_every_file(tok):
    from dslib.data.pipeline import repo_sample

    py, c = read_files(sorted(STDLIB.glob("json/*.py"))), read_files(sorted(INCLUDE.glob("*.h"))[:5])
    rows = [
        [(f"p{i}.py", "Python", t) for i, t in enumerate(py[:3])] + [(f"h{i}.h", "C", t) for i, t in enumerate(c)],
        [(f"q{i}.py", "Python", t) for i, t in enumerate(py[3:])],
    ]
    corpus = datasets.Dataset.from_dict(
        {
            "text": [repo_sample(files) for files in rows],
            "paths": [[p for p, _, _ in files] for files in rows],
            "languages": [[lang for _, lang, _ in files] for files in rows],
        }
    )
    stats = {r["language"]: r for r in T.compression_by_language(tok, corpus)}
    files = {"Python": [t if t.endswith("\n") else t + "\n" for t in py], "C": c}
    for language, texts in files.items():
        assert stats[language]["files"] == len(texts)
        assert stats[language]["bytes"] == sum(len(t.encode()) for t in texts)
        assert stats[language]["bytes_per_token"] == pytest.approx(T.bytes_per_token(tok, texts))
