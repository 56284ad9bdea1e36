"""Repository-level documents and held-out repositories (DeepSeek-Coder §2.2; Table 7's ablation).

``data.repo_level`` says how a repository's kept files become training documents:

- ``dependency``: one sample, files in Algorithm 1's order (the paper's repository-level pretraining);
- ``random``: the same sample with its files shuffled (does the order matter, or only the concatenation?);
- ``file``: every file its own document (Table 7's "w/o repo pre-training").

Only the assembly differs: every value keeps the same files, because filtering, near-dedup (on the
dependency-ordered sample) and decontamination run before it.

Held-out repositories (the ``heldout`` split) are the ones ``data.heldout_repos`` names, and a draw by a hash
of their name among the other kept repositories (documentation folders excepted): sorted by
``sha256("heldout:<seed>:<name>")``, the first ``round(heldout_fraction × n)`` of them (at least one when
there are two or more). A training file whose content (lines stripped, blank lines dropped)
equals a file of a held-out repository is dropped as ``heldout_copy``, so a vendored copy cannot carry a
held-out file into training.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence, Set
from typing import TypeVar

from dslib.config import REPO_LEVELS
from dslib.data.deps import dependency_graph, topological_sort

T = TypeVar("T")
HELDOUT_RULE = (
    "data.heldout_repos always; of the other code repositories, sorted by sha256('heldout:<seed>:<name>'), "
    "the first round(heldout_fraction * n), at least 1 of 2+"
)


def document_files(repo: str, files: Sequence[T], repo_level: str, seed: int) -> list[list[T]]:
    """The training documents of one repository, each a list of its ``files`` (given in dependency order)."""
    if repo_level == "dependency":
        return [list(files)]
    if repo_level == "file":
        return [[f] for f in files]
    if repo_level == "random":
        shuffled = list(files)
        # A string seed is hashed (sha512) by random.Random: the same order on every run and in every shard.
        random.Random(f"repo_level:{seed}:{repo}").shuffle(shuffled)
        return [shuffled]
    raise ValueError(f"repo_level={repo_level!r} is not valid; choose one of: {', '.join(REPO_LEVELS)}")


def heldout_repositories(
    names: Sequence[str],
    fraction: float,
    seed: int,
    excluded: Set[str] = frozenset(),
    always: Set[str] = frozenset(),
) -> set[str]:
    """The held-out repositories among ``names`` by :data:`HELDOUT_RULE`.

    ``excluded`` must stay in training (documentation folders hold no code to evaluate); ``always`` is held out
    whatever the draw: the repositories a repository-level benchmark evaluates on (``DataConfig.heldout_repos``),
    so that none of their files reaches the training split. The draw is over the rest.
    """
    forced = {n for n in names if n in always}
    names = [n for n in names if n not in excluded and n not in forced]
    if len(names) < 2 or fraction <= 0:
        return forced
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    drawn = sorted(names, key=lambda n: hashlib.sha256(f"heldout:{seed}:{n}".encode()).hexdigest())[:count]
    return forced | set(drawn)


def content_digest(text: str) -> bytes:
    """A digest of a file's content that ignores indentation, line endings and blank lines."""
    lines = (line.strip() for line in text.splitlines())
    return hashlib.blake2b("\n".join(line for line in lines if line).encode(), digest_size=12).digest()


def imports_before(files: Mapping[str, str], order: Sequence[str]) -> tuple[int, int]:
    """``(kept, edges)``: of the repository's import edges between two different files, how many ``order`` puts
    the imported file first (Algorithm 1 keeps all of them unless the imports form a cycle)."""
    position = {path: i for i, path in enumerate(order)}
    edges = [(path, dep) for path, found in dependency_graph(files).items() for dep in found if dep != path]
    return sum(position[dep] < position[path] for path, dep in edges), len(edges)


def order_comparison(repo: str, files: Mapping[str, str], seed: int, limit: int = 12) -> tuple[list[dict], list[dict]]:
    """One repository's files in Algorithm 1's order beside ``repo_level="random"``'s: the first ``limit``
    positions, and for each order how many import edges it respects (:func:`imports_before`)."""
    dependency = [path for subgraph in topological_sort(dependency_graph(files)) for path in subgraph]
    orders = {"Algorithm 1": dependency, "random": document_files(repo, dependency, "random", seed)[0]}
    positions = [{"#": i, **{name: order[i] for name, order in orders.items()}} for i in range(min(limit, len(files)))]
    edges = []
    for name, order in orders.items():
        kept, total = imports_before(files, order)
        edges.append({"order": name, "imported file first": kept, "import edges": total})
    return positions, edges
