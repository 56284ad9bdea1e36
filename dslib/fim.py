"""Fill-in-the-middle transforms (DeepSeek-Coder §3.1; Bavarian et al. 2022).

DeepSeek-Coder applies FIM "at the document level before the packing process", at rate 0.5 in PSM mode, with
a character-level split (the authors, issue #107). With probability ``rate`` a document is cut at two uniform
random positions (gpt-neox ``FIM-clean``: both drawn from ``0 .. len``, then sorted) into prefix, middle and
suffix and rearranged; otherwise it is left unchanged. The formats, in DeepSeek-Coder's spellings
(``<PRE>``/``<SUF>``/``<MID>`` in Bavarian et al.):

- ``psm``: ``<｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>middle``, the released model's format.
- ``spm``: ``<｜fim▁begin｜><｜fim▁hole｜>suffix<｜fim▁end｜>prefix middle``, Bavarian et al.'s SPM variant 2
  (``<PRE>∘<SUF>∘Enc(suffix)∘<MID>∘Enc(prefix)∘Enc(middle)``): an SPM example reads as a PSM example with an
  empty prefix, so what the model learns in one mode carries over to the other.
- ``msp``: masked span prediction. T5's span corruption (Raffel et al. 2020: 15% masked, in spans of mean
  length 3 tokens; by default 10 characters here, as the split is on characters) laid out as CodeGen2/2.5 lay
  it out: the document with its spans masked, then the spans in order. The release has no numbered mask
  tokens, so the hole sentinel marks each span:
  ``<｜fim▁begin｜>c0<｜fim▁hole｜>c1 … <｜fim▁hole｜>ck<｜fim▁end｜>m1<｜fim▁hole｜>m2 … <｜fim▁hole｜>mk``, where the
  document is ``c0 m1 c1 m2 … mk ck``. One masked span is exactly the PSM layout, so a PSM prompt also
  prompts an MSP-trained model.

The end-of-sentence token closes every document, transformed or not; the packer (:mod:`dslib.packing`)
appends it, so :func:`apply_fim` returns an untouched document unchanged.

:class:`ContextFIM` is the context-level variant (Bavarian et al. 2022, SantaCoder): the same draws and
layouts, applied to each document fragment of a packed training sequence instead of to whole documents.

Text is the readable view. Training data goes through :func:`encode_fim`, which encodes each piece with
special-token matching off (:func:`dslib.tokenizer.encode_text`) and inserts sentinel ids itself, so a
file that contains the literal text ``<｜fim▁hole｜>`` can never forge FIM structure.
"""

from __future__ import annotations

import enum
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
from tokenizers import Tokenizer

from dslib.artifacts import save_figure
from dslib.config import FIM_MODES, FIMConfig
from dslib.results import result_row
from dslib.tokenizer import BOS, EOS, FIM_BEGIN, FIM_END, FIM_HOLE, encode_text

Mode = str | Mapping[str, float]
Seq = TypeVar("Seq", str, list[int])


@dataclass(frozen=True)
class Sentinels:
    """How a model spells the FIM sentinels: ``pre``/``suf``/``mid`` are Bavarian et al.'s ``<PRE> <SUF> <MID>``."""

    pre: str
    suf: str
    mid: str
    eos: str


DEEPSEEK = Sentinels(pre=FIM_BEGIN, suf=FIM_HOLE, mid=FIM_END, eos=EOS)
STARCODER = Sentinels(pre="<fim_prefix>", suf="<fim_suffix>", mid="<fim_middle>", eos="<|endoftext|>")
SANTACODER = Sentinels(pre="<fim-prefix>", suf="<fim-suffix>", mid="<fim-middle>", eos="<|endoftext|>")
SENTINELS: dict[str, Sentinels] = {"deepseek": DEEPSEEK, "starcoder": STARCODER, "santacoder": SANTACODER}
# MSP's T5 span corruption: the share of units masked and the mean span length (FIMConfig documents both).
MSP_NOISE_DENSITY = FIMConfig.msp_noise_density
MSP_MEAN_SPAN = FIMConfig.msp_mean_span


class Sentinel(enum.Enum):
    """A sentinel's role in a list of pieces; text pieces are plain ``str`` (or id lists)."""

    PRE = "pre"
    SUF = "suf"
    MID = "mid"


@dataclass(frozen=True)
class FIMSplit:
    """Where one document is cut, in units (characters, or tokens at token granularity).

    ``psm``/``spm``: ``cuts = (i, j)``, prefix ``[0, i)``, middle ``[i, j)``, suffix ``[j, n)``.
    ``msp``: ``cuts = (a1, b1, a2, b2, …)``, the masked spans ``[a_t, b_t)`` in order.
    """

    mode: str
    cuts: tuple[int, ...]


@lru_cache(maxsize=64)
def _mix_table(items: tuple[tuple[str, float], ...]) -> tuple[tuple[str, ...], np.ndarray]:
    for name, weight in items:
        if name not in FIM_MODES:
            raise ValueError(f"FIM mode {name!r} is not valid; choose among {', '.join(FIM_MODES)} or a mix of them")
        if not weight >= 0:
            raise ValueError(f"FIM mode weight {name}={weight} must be >= 0")
    total = sum(w for _, w in items)
    if not total > 0:
        raise ValueError(f"FIM mode mix {dict(items)} has no positive weight")
    cumulative = np.cumsum([w / total for _, w in items])
    cumulative[-1] = 1.0  # exactly, so that a uniform draw in [0, 1) always lands on a mode
    return tuple(n for n, _ in items), cumulative


def mode_mix(mode: Mode) -> tuple[tuple[str, ...], np.ndarray]:
    """The modes of ``mode`` (a name or a ``{"psm": 0.5, "spm": 0.5}`` mix) and their cumulative probabilities."""
    if isinstance(mode, str):
        return _mix_table(((mode, 1.0),))
    if isinstance(mode, Mapping):
        return _mix_table(tuple(sorted((str(k), float(v)) for k, v in mode.items())))
    raise TypeError(f"FIM mode must be a name or a dict of weights, not {type(mode).__name__}")


def _composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` positive integers summing to ``total``, uniform over all such compositions."""
    cuts = np.sort(rng.choice(total - 1, size=parts - 1, replace=False) + 1) if parts > 1 else np.empty(0, int)
    return np.diff(np.concatenate(([0], cuts, [total])))


def _msp_cuts(n: int, rng: np.random.Generator, noise_density: float, mean_span: float) -> tuple[int, ...]:
    # T5's random_spans_noise_mask, except that the kept text may be empty at either end (T5 always starts
    # with kept text and ends with a span), so a span can reach the document's first or last character.
    n_noise = min(n, max(1, round(n * noise_density))) if n else 0
    n_spans = max(1, min(round(n_noise / mean_span), n_noise, n - n_noise + 1))
    noise = _composition(n_noise, n_spans, rng) if n_noise else np.zeros(1, int)
    keep = _composition(n - n_noise + 2, n_spans + 1, rng)  # interior kept runs >= 1, so spans never touch
    keep[0] -= 1
    keep[-1] -= 1
    cuts, pos = [], int(keep[0])
    for t in range(n_spans):
        cuts += [pos, pos + int(noise[t])]
        pos += int(noise[t] + keep[t + 1])
    return tuple(cuts)


def draw_split(
    n: int,
    rng: np.random.Generator,
    rate: float,
    mode: Mode = "psm",
    msp_noise_density: float = MSP_NOISE_DENSITY,
    msp_mean_span: float = MSP_MEAN_SPAN,
) -> FIMSplit | None:
    """With probability ``rate`` a :class:`FIMSplit` of a document of ``n`` units, else ``None``.

    The split points of ``psm``/``spm`` are two independent uniform draws from ``0 .. n`` (Bavarian et al.
    §3, character level; gpt-neox ``FIM-clean``), sorted, so each part averages a third of the document.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"FIM rate={rate} must be in [0, 1]")
    names, cumulative = mode_mix(mode)
    if rng.random() >= rate:
        return None
    chosen = names[int(np.searchsorted(cumulative, rng.random(), "right"))] if len(names) > 1 else names[0]
    if chosen == "msp":
        return FIMSplit("msp", _msp_cuts(n, rng, msp_noise_density, msp_mean_span))
    i, j = sorted(int(x) for x in rng.integers(0, n + 1, size=2))
    return FIMSplit(chosen, (i, j))


def arrange(seq: Seq, split: FIMSplit) -> list[Seq | Sentinel]:
    """The pieces of ``seq`` (text or ids) in ``split``'s order, with :class:`Sentinel` markers between them."""
    if split.mode == "msp":
        bounds = (0, *split.cuts, len(seq))
        kept = [seq[bounds[t] : bounds[t + 1]] for t in range(0, len(bounds), 2)]
        masked = [seq[bounds[t] : bounds[t + 1]] for t in range(1, len(bounds) - 1, 2)]
        pieces: list = [Sentinel.PRE, kept[0]]
        for part in kept[1:]:
            pieces += [Sentinel.SUF, part]
        pieces += [Sentinel.MID, masked[0]]
        for part in masked[1:]:
            pieces += [Sentinel.SUF, part]
        return pieces
    i, j = split.cuts
    prefix, middle, suffix = seq[:i], seq[i:j], seq[j:]
    if split.mode == "psm":
        return [Sentinel.PRE, prefix, Sentinel.SUF, suffix, Sentinel.MID, middle]
    if split.mode == "spm":
        return [Sentinel.PRE, Sentinel.SUF, suffix, Sentinel.MID, prefix, middle]
    raise ValueError(f"FIM mode {split.mode!r} is not valid; choose one of {', '.join(FIM_MODES)}")


def _spell(pieces: list, sentinels: Sentinels) -> str:
    return "".join(getattr(sentinels, p.value) if isinstance(p, Sentinel) else p for p in pieces)


def token_boundaries(text: str, tok: Tokenizer) -> list[int]:
    """Character positions between ``text``'s tokens (``0`` and ``len(text)`` included), for token-level splits."""
    encoding = tok.encode(text, add_special_tokens=False) if text else None
    ends = sorted({end for _, end in encoding.offsets}) if encoding else []
    return [0, *(e for e in ends if 0 < e < len(text)), len(text)] if text else [0]


def apply_fim(
    text: str,
    rng: np.random.Generator,
    rate: float = 0.5,
    mode: Mode = "psm",
    *,
    sentinels: Sentinels = DEEPSEEK,
    granularity: str = "char",
    tokenizer: Tokenizer | None = None,
    msp_noise_density: float = MSP_NOISE_DENSITY,
    msp_mean_span: float = MSP_MEAN_SPAN,
) -> str:
    """``text`` rearranged for FIM with probability ``rate``, else unchanged (DeepSeek-Coder §3.1).

    ``mode`` is ``"psm"``, ``"spm"``, ``"msp"`` or a mix such as ``{"psm": 0.5, "spm": 0.5}``; the split is
    on characters, or on token boundaries of ``tokenizer`` with ``granularity="token"``. No EOS is added.
    """
    if granularity == "char":
        split = draw_split(len(text), rng, rate, mode, msp_noise_density, msp_mean_span)
        return text if split is None else _spell(arrange(text, split), sentinels)
    if granularity != "token":
        raise ValueError(f"granularity={granularity!r} is not valid; choose 'char' or 'token'")
    if tokenizer is None:
        raise ValueError("granularity='token' needs the tokenizer whose token boundaries the split uses")
    bounds = token_boundaries(text, tokenizer)
    split = draw_split(len(bounds) - 1, rng, rate, mode, msp_noise_density, msp_mean_span)
    if split is None:
        return text
    return _spell(arrange(text, FIMSplit(split.mode, tuple(bounds[c] for c in split.cuts))), sentinels)


def parse_fim(text: str, sentinels: Sentinels = DEEPSEEK) -> tuple[list[str], list[str]] | None:
    """The kept parts ``c0 … ck`` and masked parts ``m1 … mk`` of a transformed document, ``None`` if untouched.

    PSM gives ``([prefix, suffix], [middle])``, SPM ``(["", suffix], [prefix + middle])``, MSP its spans.
    Text only: a document that itself contains sentinel spellings is ambiguous here (the id stream is not).
    """
    if not text.startswith(sentinels.pre):
        return None
    head, found, tail = text[len(sentinels.pre) :].partition(sentinels.mid)
    kept, masked = head.split(sentinels.suf), tail.split(sentinels.suf)
    if not found or len(kept) != len(masked) + 1:
        raise ValueError("text starts with the FIM prefix sentinel but is not a well-formed FIM document")
    return kept, masked


def recover_document(text: str, sentinels: Sentinels = DEEPSEEK) -> str:
    """The original document of an :func:`apply_fim` output (the inverse transform), EOS not included."""
    parts = parse_fim(text, sentinels)
    if parts is None:
        return text
    kept, masked = parts
    return "".join(c + m for c, m in zip(kept, masked, strict=False)) + kept[-1]


def fim_prompt(prefix: str, suffix: str, mode: str = "psm", sentinels: Sentinels = DEEPSEEK) -> str:
    """The infilling prompt: the training format up to where the middle begins.

    ``psm`` is byte for byte DeepSeek-Coder's README "Code Insertion" input,
    ``<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>``; ``spm`` is SPM variant 2,
    ``<｜fim▁begin｜><｜fim▁hole｜>{suffix}<｜fim▁end｜>{prefix}`` (the model continues the prefix with the
    middle); ``msp`` with one masked span is the PSM layout.
    """
    if mode in ("psm", "msp"):
        return f"{sentinels.pre}{prefix}{sentinels.suf}{suffix}{sentinels.mid}"
    if mode == "spm":
        return f"{sentinels.pre}{sentinels.suf}{suffix}{sentinels.mid}{prefix}"
    raise ValueError(f"FIM prompt mode {mode!r} is not valid; choose one of {', '.join(FIM_MODES)}")


def sentinel_ids(tok: Tokenizer, sentinels: Sentinels = DEEPSEEK) -> dict[Sentinel | str, int]:
    """The ids of ``sentinels`` in ``tok``: keys :class:`Sentinel` members and ``"eos"``."""
    names = {
        Sentinel.PRE: sentinels.pre,
        Sentinel.SUF: sentinels.suf,
        Sentinel.MID: sentinels.mid,
        "eos": sentinels.eos,
    }
    ids = {key: tok.token_to_id(spelling) for key, spelling in names.items()}
    missing = [names[k] for k, v in ids.items() if v is None]
    if missing:
        raise KeyError(f"the tokenizer has no token for the sentinels {missing}")
    return ids


def encode_fim(
    texts: Sequence[str],
    tok: Tokenizer,
    rng: np.random.Generator | Sequence[np.random.Generator],
    rate: float = 0.5,
    mode: Mode = "psm",
    *,
    sentinels: Sentinels = DEEPSEEK,
    granularity: str = "char",
    msp_noise_density: float = MSP_NOISE_DENSITY,
    msp_mean_span: float = MSP_MEAN_SPAN,
) -> tuple[list[list[int]], list[FIMSplit | None]]:
    """Token ids of each text after FIM, and each text's split (``None``: left as is). No EOS is added.

    ``rng`` is one generator used for the texts in order, or one per text. At character granularity every
    piece is encoded on its own, as in Bavarian et al. (``Enc(prefix)∘Enc(middle)``); at token granularity
    the whole text is encoded and its ids are cut. Text is encoded with special-token matching off
    (:func:`dslib.tokenizer.encode_text`), and only here are sentinel ids put in.
    """
    rngs = [rng] * len(texts) if isinstance(rng, np.random.Generator) else list(rng)
    if len(rngs) != len(texts):
        raise ValueError(f"got {len(rngs)} random generators for {len(texts)} texts")
    ids = sentinel_ids(tok, sentinels) if rate > 0 else {}
    if granularity == "token":
        encoded = encode_text(tok, texts)
        splits = [
            draw_split(len(e), r, rate, mode, msp_noise_density, msp_mean_span)
            for e, r in zip(encoded, rngs, strict=True)
        ]
        layouts = [[e] if s is None else arrange(e, s) for e, s in zip(encoded, splits, strict=True)]
    elif granularity == "char":
        splits = [
            draw_split(len(t), r, rate, mode, msp_noise_density, msp_mean_span)
            for t, r in zip(texts, rngs, strict=True)
        ]
        layouts = [[t] if s is None else arrange(t, s) for t, s in zip(texts, splits, strict=True)]
    else:
        raise ValueError(f"granularity={granularity!r} is not valid; choose 'char' or 'token'")
    return _layout_ids(layouts, tok, ids), splits


def _layout_ids(layouts: Sequence[Sequence], tok: Tokenizer, ids: Mapping) -> list[list[int]]:
    """Each layout as ids: text pieces encoded one by one (special-token matching off), id pieces kept as they
    are, and :class:`Sentinel` markers replaced by their ids from ``ids`` (:func:`sentinel_ids`)."""
    texts = [p for layout in layouts for p in layout if isinstance(p, str) and p]
    encoded = iter(encode_text(tok, texts) if texts else [])  # empty pieces were left out: they encode to nothing
    out = []
    for layout in layouts:
        doc: list[int] = []
        for piece in layout:
            if isinstance(piece, Sentinel):
                doc.append(ids[piece])
            elif isinstance(piece, str):
                doc.extend(next(encoded) if piece else [])
            else:
                doc.extend(piece)
        out.append(doc)
    return out


class ContextFIM:
    """Context-level FIM (Bavarian et al. 2022; SantaCoder §5): FIM on each document fragment of a training context.

    A training sequence of the packed stream (built without FIM) is cut at its BOS and EOS tokens into fragments,
    which stay in place, as do BOS and EOS. Each fragment of at least :attr:`MIN_FRAGMENT` tokens is transformed
    with probability ``fim.fim_rate`` in ``fim.mode``, the draws made in fragment order from the one generator
    passed in. ``granularity="token"`` splits the fragment's ids between tokens and rearranges them, exactly.
    ``granularity="char"`` (SantaCoder's character level) decodes the fragment, splits its characters and
    encodes each piece with :func:`dslib.tokenizer.encode_text`, so sentinel text in a file stays text; a
    fragment whose bytes do not decode to whole characters (a window edge through a multi-byte character) is
    split at token level instead, as decoding it would lose bytes. The sentinels lengthen the sequence;
    :class:`dslib.packing.PackedDataset` cuts it back to its length, as Bavarian et al. and SantaCoder do.
    """

    MIN_FRAGMENT = 3  # fewer tokens leave no room for a prefix, middle and suffix

    def __init__(self, tok: Tokenizer, fim: FIMConfig, sentinels: Sentinels = DEEPSEEK):
        self.tok, self.fim = tok, fim
        self.ids = sentinel_ids(tok, sentinels)
        self.boundaries = [i for i in (tok.token_to_id(BOS), self.ids["eos"]) if i is not None]
        mode_mix(fim.mode)  # a bad mode fails here, not in a DataLoader worker

    def fragments(self, ids: np.ndarray) -> list[tuple[int, int]]:
        """The ``(start, end)`` of each maximal run of ``ids`` without BOS or EOS, in order."""
        cut = np.flatnonzero(np.isin(ids, self.boundaries))
        starts, ends = np.concatenate(([0], cut + 1)), np.concatenate((cut, [len(ids)]))
        return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b > a]

    def __call__(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[list[int], list[FIMSplit | None]]:
        """``ids`` with FIM applied to its fragments (not cut back), and each fragment's split (``None``: as is;
        cuts in characters, or in tokens where the fragment was split at token level)."""
        fim, ids = self.fim, np.asarray(ids)
        layouts: list[list] = []
        splits: list[FIMSplit | None] = []
        end = 0
        for a, b in self.fragments(ids):
            layouts.append([ids[end:a].tolist()])  # the BOS/EOS tokens before this fragment
            fragment, end = ids[a:b].tolist(), b
            split = None
            if len(fragment) >= self.MIN_FRAGMENT:
                unit: str | list[int] = fragment
                if fim.granularity == "char":
                    text = self.tok.decode(fragment, skip_special_tokens=False)
                    unit = fragment if "\ufffd" in text else text
                split = draw_split(len(unit), rng, fim.fim_rate, fim.mode, fim.msp_noise_density, fim.msp_mean_span)
            splits.append(split)
            layouts.append([fragment] if split is None else arrange(unit, split))
        layouts.append([ids[end:].tolist()])
        return [i for doc in _layout_ids(layouts, self.tok, self.ids) for i in doc], splits


def tokens_html(ids: Sequence[int], tok: Tokenizer, highlight: Sequence[int] = ()) -> str:
    """``ids`` as HTML: each token in its own box, the ``highlight`` ids (the sentinels, EOS) in colour."""
    marked = set(highlight)
    cells = []
    for n, i in enumerate(ids):
        text = html.escape(tok.decode([i], skip_special_tokens=False)).replace("\n", "↵<br>")
        style = "background:#f4a261;font-weight:bold" if i in marked else ("background:#e9ecef" if n % 2 else "")
        cells.append(f'<span style="{style};font-family:monospace;white-space:pre" title="{i}">{text}</span>')
    return "".join(cells)


def modes_html(text: str, tok: Tokenizer, modes: Sequence[Mode] = FIM_MODES, seed: int = 0) -> str:
    """An HTML table: ``text`` as the model sees it in training under each mode (FIM applied, EOS closing)."""
    ids = sentinel_ids(tok)
    marked = list(ids.values())
    rows = []
    for mode in ("none", *modes):
        rate = 0.0 if mode == "none" else 1.0
        [encoded], [split] = encode_fim([text], tok, np.random.default_rng(seed), rate, "psm" if rate == 0 else mode)
        label = html.escape(str(mode)) + ("" if split is None else f"<br><small>cuts {split.cuts}</small>")
        cells = tokens_html([*encoded, ids["eos"]], tok, marked)
        rows.append(f'<tr><td style="vertical-align:top">{label}</td><td style="text-align:left">{cells}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def split_statistics(
    lengths: Sequence[int], rate: float, mode: Mode = "psm", draws: int = 20_000, seed: int = 0
) -> dict[str, float | np.ndarray]:
    """Draw ``draws`` FIM splits, cycling through the document ``lengths``: the observed rate with its 95% Wilson
    interval, the share of each mode, and where the PSM/SPM cuts fall as a share of the document (0 = start).
    """
    if not lengths or draws <= 0:
        raise ValueError(f"split_statistics needs document lengths and draws > 0 (got {len(lengths)}, {draws})")
    rng = np.random.default_rng(seed)
    splits = [(lengths[k % len(lengths)], draw_split(lengths[k % len(lengths)], rng, rate, mode)) for k in range(draws)]
    trials, hits = len(splits), sum(s is not None for _, s in splits)
    p, z = hits / trials, 1.959964
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    pairs = np.array(
        [(i / n, j / n) for n, s in splits if s is not None and s.mode != "msp" and n for i, j in [s.cuts]]
    )
    pairs = pairs.reshape(-1, 2)
    return {
        "trials": trials,
        "transformed": hits,
        "rate": p,
        "ci95_low": centre - half,
        "ci95_high": centre + half,
        **{f"{m}_share": sum(s is not None and s.mode == m for _, s in splits) / max(hits, 1) for m in FIM_MODES},
        "relative_cuts": pairs.ravel(),
        "middle_share": pairs[:, 1] - pairs[:, 0],
    }


def plot_splits(draws: Mapping, path=None):
    """Where :func:`split_statistics`' split points fall (uniform) and the middle's share of a document (density
    2(1 − x), mean 1/3; Bavarian et al. §3); returns the figure."""
    import matplotlib.pyplot as plt  # the plotting stack loads only where a figure is drawn

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.hist(draws["relative_cuts"], bins=40, density=True, color="#457b9d")
    left.axhline(1.0, color="k", ls="--", label="uniform")
    left.set(title="where the split points fall", xlabel="position / document length", ylabel="density")
    right.hist(draws["middle_share"], bins=40, density=True, color="#e76f51")
    right.plot([0, 1], [2, 0], "k--", label="2(1 − x): |U₁ − U₂|")
    right.set(title=f"middle share, mean {draws['middle_share'].mean():.3f}", xlabel="middle / document length")
    left.legend(loc="lower center"), right.legend()
    save_figure(fig, path, 120)
    return fig


def result_rows(draws: Mapping, streams: Mapping[str, Mapping], level: str) -> list[dict]:
    """FIM's numbers beside the paper's (§3.1; Bavarian et al.): the rate over repeated draws
    (:func:`split_statistics`), the rate in the packed stream at ``level`` and the share of training sequences
    holding a middle at each level (``streams``: :func:`dslib.packing.stream_statistics` per level), and the
    middle's mean share of a document."""
    unit, stream = ("document" if level == "document" else "fragment"), streams[level]
    ci = f"95% CI {draws['ci95_low']:.3f}–{draws['ci95_high']:.3f}"
    rows = [
        result_row("FIM rate (documents transformed, repeated draws)", round(draws["rate"], 4), 0.5, "[P] §3.1", ci)
    ]
    rows.append(
        result_row(
            f"FIM rate in the packed stream ({unit}s, {level}-level FIM)",
            round(stream[f"{unit}_rate"], 4),
            0.5,
            "[P] §3.1",
            f"{stream[f'fim_{unit}s']} of {stream[f'{unit}s']} {unit}s",
        )
    )
    for each, stats in streams.items():
        why = "FIM per training context" if each == "context" else "lowers the context-level rate"
        held = f"training sequences holding a FIM middle ({each}-level FIM)"
        rows.append(result_row(held, round(stats["sequence_rate"], 4), None, "[FIM] §4", why))
    share = round(float(draws["middle_share"].mean()), 4)
    return rows + [
        result_row("mean middle share of a document", share, round(1 / 3, 4), "[FIM] §3", "two uniform split points")
    ]
