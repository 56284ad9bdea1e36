"""The data mix of DeepSeek-Coder §2: 87% source code, 10% code-related English, 3% unrelated Chinese.

The paper's English is "GitHub Markdown and StackExchange". Ours is the Markdown and reStructuredText files
(``DataConfig.english_languages``) of the same repositories, split out of each repository sample into a
document of their own, plus documentation folders on the machine (``DataConfig.docs_folders``, such as
``/usr/share/doc``: each sub-folder one repository of its Markdown/reStructuredText files). Both pass the same
crawl, rule, near-dedup, quality and decontamination stages as code. Nothing stands in for the 3% Chinese
text: no such corpus ships with the machine, so its weight is left out and the others are renormalised
(87/97 code, 10/97 English); the manifest of each packed stream says so.

:func:`mix_order` turns the weights into the document order packing writes: each source gets its weight's
share of the total bytes, filled from its documents in a seeded order, repeating a source whose documents are
too few and stopping early in one whose documents are too many (at the document nearest its share: with a few
large documents, as at small scales, the realised shares can miss the weights by a document's size). The
realised token shares are counted after tokenisation and recorded (:func:`realised_shares`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from dslib.config import MIX_SOURCES
from dslib.data.languages import detect_language
from dslib.data.sources import Repository, local_repos


def docs_repositories(folders: Iterable[str], languages: Sequence[str]) -> tuple[list[Repository], list[str]]:
    """Each sub-folder of each existing folder as a repository of its ``languages`` files; and the folders missing."""
    repos, missing = [], []
    for folder in folders:
        if not Path(folder).is_dir():
            missing.append(str(folder))
            continue
        prefix = "docs" + str(Path(folder).resolve()).replace("/", "-")
        for repo in local_repos(folder):
            files = tuple(f for f in repo.files if detect_language(f.path) in languages)
            if files:
                repos.append(Repository(f"{prefix}/{repo.name}", files, origin=repo.origin))
    return repos, missing


def source_weights(weights: dict[str, float], present: Iterable[str]) -> dict[str, float]:
    """The weights of the sources that have documents, renormalised to sum to 1 (absent ones are left out)."""
    present = set(present)
    kept = {s: w for s, w in weights.items() if s in present and w > 0}
    total = sum(kept.values())
    return {s: w / total for s, w in kept.items()} if total else {}


def mix_order(sources: Sequence[str], sizes: Sequence[int], weights: dict[str, float], seed: int = 0) -> np.ndarray:
    """Document indices to pack, in a seeded order, so that each source's bytes approach its weight's share.

    Empty ``weights`` (the ``natural`` mix) packs every document once. Otherwise the total stays the corpus's own
    byte count; each source with a positive weight takes documents from a seeded permutation of its own (cycling
    through it again when it needs more) until its share is reached, and the chosen documents are shuffled together.
    """
    rng = np.random.default_rng(seed)
    sources, sizes = np.asarray(sources), np.asarray(sizes, dtype=np.int64)
    if not weights:
        return rng.permutation(len(sources))
    unknown = set(sources.tolist()) - set(MIX_SOURCES)
    if unknown:
        raise ValueError(f"documents of unknown source(s) {sorted(unknown)}; sources are {MIX_SOURCES}")
    shares = source_weights(weights, set(sources.tolist()))
    total = int(sizes.sum())
    chosen = []
    for source in MIX_SOURCES:
        if source not in shares:
            continue
        members = np.flatnonzero(sources == source)
        if not sizes[members].sum():
            continue
        target, taken = shares[source] * total, 0
        while taken < target:
            order = members[rng.permutation(len(members))]
            cumulative = taken + np.cumsum(sizes[order])
            cross = int(np.searchsorted(cumulative, target))  # the document that reaches the target
            if cross >= len(order):  # a whole pass falls short: take it and go round again
                chosen.append(order)
                taken = int(cumulative[-1])
                continue
            before = cumulative[cross - 1] if cross else taken
            # Keep the crossing document when that lands nearer the target (large documents at small scales).
            stop = cross + 1 if cumulative[cross] - target <= target - before else cross
            chosen.append(order[:stop])
            break
    picked = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return picked[rng.permutation(len(picked))]


def realised_shares(sources: Sequence[str], tokens: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per source: documents, tokens and share of the tokens of a packed stream."""
    sources, tokens = np.asarray(sources), np.asarray(tokens, dtype=np.int64)
    total = max(int(tokens.sum()), 1)
    out = {}
    for source in MIX_SOURCES:
        mask = sources == source
        if mask.any():
            count = int(tokens[mask].sum())
            out[source] = dict(documents=int(mask.sum()), tokens=count, share=count / total)
    return out
