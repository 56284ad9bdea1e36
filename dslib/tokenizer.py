"""Byte-level BPE shaped like the released DeepSeek-Coder tokenizer (DeepSeek-Coder §3.2).

The paper trains "a Byte-level BPE" with Hugging Face ``tokenizers`` and a vocabulary of 32,000. The release
(FACTS §2) adds what the paper leaves out, and we copy it: a pre-tokenizer of five regex splits (newlines,
letters with an optional leading space, punctuation runs, CJK runs, single digits) before the byte mapping;
22 added tokens after the learned vocabulary, BOS at ``V + 13`` through ``<|EOT|>`` at ``V + 21``; a
post-processor that puts BOS in front.

Two deliberate departures, both about text that merely *looks* like a token:

* The release stores 13 byte characters (``õ``, ``÷`` …) at ``V .. V + 12`` as non-special added tokens, so a
  literal ``õ`` in a file is matched as one of them and decodes to an invalid byte. Our learned vocabulary
  already holds all 256 byte symbols, and those ids hold inert special placeholders instead.
* Every added token is *special*, so :func:`encode_text` (``encode_special_tokens``) can keep a file's
  literal ``<｜fim▁hole｜>`` or ``<|EOT|>`` as plain text: only FIM and packing insert special ids.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tqdm import tqdm

from dslib import paper
from dslib.artifacts import artifact_dir, ensure, fingerprint, read_manifest, save_figure, write_manifest
from dslib.config import Scale, resolve
from dslib.data.languages import path_comment
from dslib.data.pipeline import corpus_label, load_corpus
from dslib.results import result_row

# The released added tokens, in id order; the bar is U+FF5C (FULLWIDTH VERTICAL LINE) and the space
# U+2581 (LOWER ONE EIGHTH BLOCK), exactly as in the release (FACTS §2). <|User|>, <|Assistant|> and
# <|EOT|> use the ASCII bar.
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
FIM_HOLE = "<｜fim▁hole｜>"
FIM_BEGIN = "<｜fim▁begin｜>"
FIM_END = "<｜fim▁end｜>"
PAD = "<pad>"
USER = "<|User|>"
ASSISTANT = "<|Assistant|>"
EOT = "<|EOT|>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS, EOS, FIM_HOLE, FIM_BEGIN, FIM_END, PAD, USER, ASSISTANT, EOT)
# Ids V .. V+12 (the release's 13 byte-fallback characters); named as DeepSeek's later tokenizers name theirs.
PLACEHOLDER_TOKENS: tuple[str, ...] = tuple(f"<｜place▁holder▁no▁{i}｜>" for i in range(13))
ADDED_TOKENS: tuple[str, ...] = PLACEHOLDER_TOKENS + SPECIAL_TOKENS

# The released pre-tokenizer's splits (llama.cpp LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_CODER; FACTS §2), applied in
# order, each piece kept on its own ("isolated"). The CJK class is U+4E00–U+9FA5, U+0800–U+4E00, U+AC00–U+D7FF.
PRE_TOKENIZER_PATTERNS: tuple[str, ...] = (
    "[\r\n]",  # the characters themselves, as in the released tokenizer.json
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
    r"\p{N}",
)
MODEL_MAX_LENGTH = 16_384  # released tokenizer_config.json


def _pipeline() -> Tokenizer:
    """An untrained BPE with the released normalizer-free pre-tokenizer and byte-level decoder."""
    tok = Tokenizer(models.BPE())
    splits = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in PRE_TOKENIZER_PATTERNS]
    # use_regex=False: the splits above replace GPT-2's regex; ByteLevel only maps bytes to symbols.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [*splits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def pre_tokenize(text: str) -> list[str]:
    """The pieces the released pre-tokenizer cuts ``text`` into, in the original characters; BPE never merges
    across them."""
    return [text[a:b] for _, (a, b) in _pipeline().pre_tokenizer.pre_tokenize_str(text)]


def _byte_symbols() -> dict[str, int]:
    """GPT-2's byte-to-symbol table (the one ``ByteLevel`` uses), inverted: symbol -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}


def token_strings(tok: Tokenizer, text: str) -> list[str]:
    """Each token of ``encode_text(tok, [text])`` as readable text; a token holding part of a character shows
    its bytes as ``\\x..`` escapes."""
    symbols = _byte_symbols()
    (ids,) = encode_text(tok, [text])
    return [bytes(symbols[c] for c in tok.id_to_token(i)).decode("utf-8", "backslashreplace") for i in ids]


def _checked(texts: Iterable[str]) -> Iterator[str]:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"training text #{i} is {type(text).__name__}, not str")
        yield text


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 32_000, length: int | None = None, show_progress: bool | None = None
) -> Tokenizer:
    """Train byte-level BPE on ``texts`` (any iterable, consumed once) and add DeepSeek-Coder's tokens.

    DeepSeek-Coder §3.2: ``vocab_size`` learned tokens (all 256 byte symbols among them), then the 22 added
    tokens of :data:`ADDED_TOKENS` at ids ``vocab_size .. vocab_size + 21``. ``length`` (the number of
    texts, when known) sizes the progress bar, shown by default only on a terminal (elsewhere the trainer's
    bars print bare newlines).
    """
    if vocab_size <= 256:
        raise ValueError(f"vocab_size={vocab_size} must exceed the 256 byte symbols")
    tok = _pipeline()
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress
    )
    tok.train_from_iterator(_checked(texts), trainer, length=length)
    learned = tok.get_vocab_size()
    if learned != vocab_size:
        raise ValueError(
            f"the training texts yield only {learned} BPE tokens, fewer than vocab_size={vocab_size}: "
            "train on more text or ask for a smaller vocabulary"
        )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ADDED_TOKENS])
    # As released: every encoding starts with BOS (add_bos_token true, add_eos_token false).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, vocab_size + 13)]
    )
    return tok


def special_token_ids(tok: Tokenizer) -> dict[str, int]:
    """The id of each of DeepSeek-Coder's :data:`SPECIAL_TOKENS`, keyed by the token's text."""
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise KeyError(f"tokenizer lacks DeepSeek-Coder's special tokens {missing}")
    return ids


def encode_text(tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, literally: no BOS, and special-token text stays text.

    This is how training data is encoded: a file containing ``<｜fim▁hole｜>`` or ``<|EOT|>`` gets the ids of
    those characters, never the special id, so no file can forge FIM structure or end a document early.
    """
    if isinstance(texts, str):
        raise TypeError("encode_text takes a list of strings; wrap a single text as [text]")
    # The flag lives on the tokenizer: set for this call and restored (a tokenizer shared between threads
    # should not be encoded with plain encode() meanwhile).
    previous = tok.encode_special_tokens
    tok.encode_special_tokens = True
    try:
        encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    except TypeError:
        raise TypeError(_describe_bad_text(texts)) from None
    finally:
        tok.encode_special_tokens = previous
    return [e.ids for e in encodings]


def _describe_bad_text(texts: Sequence[str]) -> str:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            return f"texts[{i}] is {type(text).__name__}, not str"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"texts[{i}] is not valid Unicode (lone surrogate at character {err.start})"
    return "encode_text takes a sequence of str"


def bytes_per_token(tok: Tokenizer, texts: Sequence[str]) -> float:
    """Compression: UTF-8 bytes per token over ``texts`` (no BOS counted)."""
    n_tokens = sum(len(ids) for ids in encode_text(tok, texts))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return n_bytes / max(n_tokens, 1)


def save_tokenizer(tok: Tokenizer, directory: str | Path, chat_template: str | None = None) -> Path:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` for ``transformers``.

    ``AutoTokenizer.from_pretrained(directory)`` then encodes exactly as ``tok`` does, BOS included. The
    config mirrors the released Base model's (add_bos_token, EOS doubling as pad, model_max_length 16384);
    the class is ``PreTrainedTokenizerFast``, which loads ``tokenizer.json`` as is in transformers 4 and 5.
    With a ``chat_template`` it mirrors the released Instruct model's instead: the template stored, ``<|EOT|>``
    the EOS token and ``<｜end▁of▁sentence｜>`` the pad token.
    """
    special_token_ids(tok)  # refuse to write a tokenizer that would not load as DeepSeek-Coder's
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    special = {"bos_token": BOS, "eos_token": EOS if chat_template is None else EOT, "pad_token": EOS}
    config = {
        **special,
        "add_bos_token": True,
        "add_eos_token": False,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,  # the default would rewrite " ." as "." on decode
        "legacy": True,
        "model_max_length": MODEL_MAX_LENGTH,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    if chat_template is not None:
        config["chat_template"] = chat_template
    for name, content in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        (directory / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return directory


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load a tokenizer folder written by :func:`save_tokenizer`, or a released DeepSeek-Coder one."""
    path = Path(directory)
    path = path if path.suffix == ".json" else path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer.json at {path}; expected a folder written by save_tokenizer")
    tok = Tokenizer.from_file(str(path))
    # The release marks <｜fim▁hole｜>, <|User|> … and its 13 byte characters non-special, which
    # encode_special_tokens would still match in text; re-registered as special (same ids), they stay literal
    # in encode_text too. Only decode(skip_special_tokens=True) changes: it now drops them as well.
    plain = [t for t in tok.get_added_tokens_decoder().values() if not t.special]
    if plain:
        tok.add_special_tokens(
            [
                AddedToken(
                    t.content,
                    special=True,
                    normalized=t.normalized,
                    lstrip=t.lstrip,
                    rstrip=t.rstrip,
                    single_word=t.single_word,
                )
                for t in plain
            ]
        )
    return tok


def training_sample(corpus: datasets.Dataset, max_bytes: int | None, seed: int = 0) -> datasets.Dataset:
    """Repositories of ``corpus`` in a seeded random order, the first ones whose sizes reach ``max_bytes``."""
    order = np.random.default_rng(seed).permutation(len(corpus))
    if max_bytes is not None:
        sizes = np.asarray(corpus["size"], dtype=np.int64)[order]
        order = order[: int(np.searchsorted(np.cumsum(sizes), max_bytes)) + 1]
    return corpus.select(order)


def _texts(sample: datasets.Dataset, total_bytes: int) -> Iterator[str]:
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenizer training text") as bar:
        for batch in sample.iter(batch_size=16):
            for text in batch["text"]:
                bar.update(len(text.encode("utf-8")))
                yield text


def _train_on(sample: datasets.Dataset, vocab_size: int) -> Tokenizer:
    return train_tokenizer(_texts(sample, sum(sample["size"])), vocab_size, length=len(sample))


def _corpus_fingerprint(corpus: datasets.Dataset) -> str:
    return fingerprint([corpus["repo"], corpus["size"]])


def ensure_tokenizer(scale: Scale | str | None = None) -> Tokenizer:
    """The scale's tokenizer from ``artifacts/<scale>/tokenizer/``, trained on the train split when missing.

    It trains on the first ``TokenizerConfig.train_bytes`` of the repositories in a seeded random order; a
    change of the data or tokenizer config retrains it. ``data.repo_level`` is the exception: every value keeps
    the same files (:mod:`dslib.data.repo_level`), and one tokenizer, trained on the paper's repository samples,
    serves all three, so that the repository-level ablation's models share a vocabulary and its evaluation.
    """
    scale = resolve(scale)
    scale = replace(scale, data=replace(scale.data, repo_level="dependency"))
    cfg = scale.tokenizer
    config = {"tokenizer": cfg, "data": scale.data}

    def build(directory: Path) -> None:
        corpus = load_corpus(scale, "train")
        sample = training_sample(corpus, cfg.train_bytes)
        start = time.perf_counter()
        tok = _train_on(sample, cfg.vocab_size)
        seconds = time.perf_counter() - start
        save_tokenizer(tok, directory)
        write_manifest(
            directory,
            config,
            inputs={"corpus": _corpus_fingerprint(corpus)},
            counts={
                "repositories": len(sample),
                "bytes": sum(sample["size"]),
                "learned_tokens": tok.get_vocab_size(with_added_tokens=False),
                "added_tokens": tok.get_vocab_size() - tok.get_vocab_size(with_added_tokens=False),
            },
            timings={"train_s": seconds},
        )

    return load_tokenizer(ensure(scale.name, tokenizer_stage(scale), config, build))


def tokenizer_stage(scale: Scale) -> str:
    """The tokenizer's artifact folder: ``tokenizer``, with the corpus label of a data config not the preset's."""
    return "tokenizer" + corpus_label(replace(scale, data=replace(scale.data, repo_level="dependency")))


def vocab_sweep(scale: Scale | str | None = None) -> list[dict]:
    """Held-out compression for each of ``TokenizerConfig.sweep_vocab_sizes`` (cached in
    ``artifacts/<scale>/tokenizer_sweep/``): rows of ``vocab_size``, ``bytes_per_token``, ``train_s``.

    Every size trains on the same sample as :func:`ensure_tokenizer`; held-out repositories are capped at
    ``train_bytes`` too.
    """
    scale = resolve(scale)
    cfg = scale.tokenizer
    config = {"tokenizer": cfg, "data": scale.data}

    def build(directory: Path) -> None:
        corpus = load_corpus(scale, "train")
        sample = training_sample(corpus, cfg.train_bytes)
        heldout = training_sample(load_corpus(scale, "heldout"), cfg.train_bytes)["text"]
        rows = []
        for vocab_size in cfg.sweep_vocab_sizes:
            if vocab_size == cfg.vocab_size:  # the scale's own tokenizer, trained on this very sample
                tok = ensure_tokenizer(scale)
                seconds = read_manifest(artifact_dir(scale.name, tokenizer_stage(scale)))["timings"]["train_s"]
            else:
                start = time.perf_counter()
                tok = _train_on(sample, vocab_size)
                seconds = time.perf_counter() - start
            rows.append(dict(vocab_size=vocab_size, bytes_per_token=bytes_per_token(tok, heldout), train_s=seconds))
        (directory / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
        write_manifest(
            directory,
            config,
            inputs={"corpus": _corpus_fingerprint(corpus)},
            counts={"train_bytes": sum(sample["size"]), "heldout_bytes": sum(len(t.encode()) for t in heldout)},
            timings={f"train_s_{r['vocab_size']}": r["train_s"] for r in rows},
        )

    return json.loads((ensure(scale.name, "tokenizer_sweep", config, build) / "sweep.json").read_text())


def split_sample(text: str, paths: Sequence[str], languages: Sequence[str | None]) -> list[str]:
    """The files of a repository sample (DeepSeek-Coder §2.2: each headed by a comment holding its path), the
    inverse of ``dslib.data.pipeline.repo_sample``: each file's text without its header line."""
    headers = [path_comment(p, lang) + "\n" for p, lang in zip(paths, languages, strict=True)]
    starts = []
    position = 0
    for header in headers:
        # A header starts the sample or a line; the first such match after the previous file is the file's.
        while not (text.startswith(header, position) and (position == 0 or text[position - 1] == "\n")):
            position = text.find(header, position + 1)
            if position < 0:
                raise ValueError(f"repository sample has no header line {header.strip()!r} in path order")
        starts.append(position)
        position += len(header)
    ends = [*starts[1:], len(text)] if starts else []
    return [text[start + len(h) : end] for start, end, h in zip(starts, ends, headers, strict=True)]


def compression_by_language(tok: Tokenizer, corpus: datasets.Dataset) -> list[dict]:
    """Bytes per token of each language over the files of ``corpus`` (its repository samples split back into
    files, path headers left out): rows of ``language``, ``files``, ``bytes``, ``tokens``, ``bytes_per_token``,
    largest language first."""
    files: dict[str, list[str]] = {}
    for row in corpus:
        pieces = split_sample(row["text"], row["paths"], row["languages"])
        for language, text in zip(row["languages"], pieces, strict=True):
            files.setdefault(language or "unknown", []).append(text)
    rows = []
    for language, texts in files.items():
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        n_tokens = sum(len(ids) for ids in encode_text(tok, texts))
        rows.append(dict(language=language, files=len(texts), bytes=n_bytes, tokens=n_tokens))
        rows[-1]["bytes_per_token"] = n_bytes / max(n_tokens, 1)
    return sorted(rows, key=lambda r: (-r["bytes"], r["language"]))


def encode_dataset(
    tok: Tokenizer,
    dataset: datasets.Dataset,
    out_dir: str | Path,
    num_proc: int = 1,
    column: str = "text",
    batch_size: int = 64,
) -> datasets.Dataset:
    """Encode ``dataset[column]`` with :func:`encode_text` in ``num_proc`` processes; save and return the result.

    The text column is replaced by ``input_ids`` (uint16 when the vocabulary fits, else int32) and
    ``num_tokens``; the other columns stay. Rows keep their order whatever ``num_proc`` is.
    """
    if column not in dataset.column_names:
        raise KeyError(f"dataset has no column {column!r}; its columns are {dataset.column_names}")
    dtype = "uint16" if tok.get_vocab_size() <= 1 << 16 else "int32"
    features = dataset.features.copy()
    del features[column]
    features["input_ids"] = datasets.Sequence(datasets.Value(dtype))
    features["num_tokens"] = datasets.Value("int64")

    def encode(batch: dict) -> dict:
        ids = encode_text(tok, batch[column])
        return {"input_ids": ids, "num_tokens": [len(x) for x in ids]}

    encoded = dataset.map(
        encode,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=[column],
        features=features,
        desc="encoding",
    )
    encoded.save_to_disk(str(out_dir))
    return datasets.load_from_disk(str(out_dir))


# ----------------------------------------------------------------------------------------------------------
# Figures and result rows (notebook 02_tokenizer)


def plot_compression(by_language: Sequence[dict], vocab_size: int, scale: str, path: str | Path | None = None):
    """Held-out bytes per token by language (:func:`compression_by_language`), as bars; returns the axes."""
    import matplotlib.pyplot as plt  # the plotting stack loads only where a figure is drawn

    fig, ax = plt.subplots(figsize=(6, 0.4 * len(by_language) + 1.2))
    ax.barh([f"{r['language']} ({r['files']})" for r in by_language], [r["bytes_per_token"] for r in by_language])
    ax.invert_yaxis()
    ax.set_xlabel("UTF-8 bytes per token (held-out files)")
    ax.set_title(f"Compression by language, V = {vocab_size:,} ({scale})")
    save_figure(fig, path, 150)
    return ax


def plot_vocab_sweep(sweep: Sequence[dict], scale: str, path: str | Path | None = None):
    """Held-out bytes per token against the learned vocabulary size (:func:`vocab_sweep`); returns the axes."""
    import matplotlib.pyplot as plt  # the plotting stack loads only where a figure is drawn

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["vocab_size"] for r in sweep], [r["bytes_per_token"] for r in sweep], "o-")
    ax.set_xscale("log")
    ax.set_xticks([r["vocab_size"] for r in sweep], [f"{r['vocab_size']:,}" for r in sweep], minor=False)
    ax.minorticks_off()
    ax.set(xlabel="learned vocabulary size", ylabel="held-out bytes per token", title=f"Vocabulary sweep ({scale})")
    save_figure(fig, path, 150)
    return ax


def result_rows(tok: Tokenizer, vocab_size: int, bytes_per_token: float, hf_equal: bool, scale: str) -> list[dict]:
    """The tokenizer's numbers beside the paper's (§3.2; the released tokenizer's added tokens): ``hf_equal`` is
    whether ``transformers``' AutoTokenizer gave the same ids and decoded losslessly."""
    ids = special_token_ids(tok)
    added = paper.TOKENIZER["released_entries"] - paper.TOKENIZER["vocab_size"]
    specials = f"BOS at V+{ids[BOS] - vocab_size}, <|EOT|> at V+{ids[EOT] - vocab_size} (released: 32013, 32021)"
    return [
        result_row("learned vocabulary", vocab_size, paper.TOKENIZER["vocab_size"], "§3.2", f"scale {scale}"),
        result_row(
            "added tokens after the vocabulary",
            tok.get_vocab_size() - vocab_size,
            added,
            paper.TOKENIZER["source"],
            specials,
        ),
        result_row(
            "held-out bytes per token",
            round(bytes_per_token, 3),
            None,
            "§3.2",
            "the paper reports no compression figure",
        ),
        result_row(
            "transformers AutoTokenizer: same ids, lossless",
            hf_equal,
            None,
            "[R] tokenizer_config.json",
            "PreTrainedTokenizerFast folder",
        ),
    ]
