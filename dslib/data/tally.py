"""Pass 2 of the §2 data pipeline (DeepSeek-Coder Figure 2), shared by the local and the Spark engine.

Each repository's files are settled (kept, or dropped with one reason: near-duplicate, quality, decontamination,
copy of a held-out file), its kept files become documents of the data mix (§2: code and English) and the
funnel, the manifest's lists and the split counts are tallied. Tallies of separate shards merge in shard order
into the one tally a single pass would have made, which is how the Spark engine reduces its output tasks.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from dslib.config import DataConfig
from dslib.data.filters import RULE_REASONS
from dslib.data.languages import path_comment
from dslib.data.quality import QUALITY_REASONS
from dslib.data.repo_level import HELDOUT_RULE, document_files

if TYPE_CHECKING:  # the records are pass 1's (dslib.data.pipeline), which imports this module
    from dslib.data.pipeline import FileRecord, RepoRecord

logger = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
# Figure 2's stages in order, each with the reasons it drops a file for. Dependency parsing drops nothing.
STAGE_REASONS: dict[str, tuple[str, ...]] = {
    "crawl": (
        "missing", "unreadable", "not_regular", "broken_symlink", "symlink_loop", "symlink_dir",
        "duplicate_path", "repo_file_limit", "too_large", "binary", "not_utf8", "empty",
        "missing_column", "null_content",
    ),
    "language": ("unknown_language",),
    "rule_filter": RULE_REASONS,
    "dependency": (),
    "near_dedup": ("near_duplicate",),
    "quality": QUALITY_REASONS,
    "decontam": ("decontam_10gram", "decontam_exact", "heldout_copy"),
}  # fmt: skip
REASON_STAGE = {reason: stage for stage, reasons in STAGE_REASONS.items() for reason in reasons}
MAX_LISTED = 1000  # syntax errors and decontamination hits listed in the manifest (all are counted)
QUALITY_LISTED = 50  # files listed per quality reason, for inspection (notebook 01)
SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("repo", pa.string()),
        ("languages", pa.list_(pa.string())),
        ("paths", pa.list_(pa.string())),
        ("size", pa.int64()),
        ("source", pa.string()),  # the data mix's source (§2): "code" or "english" (dslib/data/mix.py)
    ]
)


def repo_sample(files: list[tuple[str, str | None, str]]) -> str:
    """One training sample from ``(path, language, text)`` in order: each file headed by its path comment (§2.2)."""
    parts = []
    for path, language, text in files:
        parts.append(path_comment(path, language) + "\n" + (text if text.endswith("\n") else text + "\n"))
    return "".join(parts)


class Funnel:
    """Files and bytes in, kept, and dropped by reason (datatrove-style stats, gathered as files go by)."""

    def __init__(self):
        self.input = Counter()
        self.kept = Counter()
        self.dropped: dict[str, Counter] = {}

    def add(self, size: int, reason: str | None) -> None:
        self.input.update(files=1, bytes=size)
        (self.kept if reason is None else self.dropped.setdefault(reason, Counter())).update(files=1, bytes=size)

    def merge(self, other: Funnel) -> None:
        self.input.update(other.input)
        self.kept.update(other.kept)
        for reason, counter in other.dropped.items():
            self.dropped.setdefault(reason, Counter()).update(counter)

    def stages(self) -> list[dict]:
        """Files and bytes entering and leaving each stage of Figure 2."""
        rows, files, size = [], self.input["files"], self.input["bytes"]
        for stage, reasons in STAGE_REASONS.items():
            lost = [self.dropped.get(r, Counter()) for r in reasons]
            out_files = files - sum(c["files"] for c in lost)
            out_bytes = size - sum(c["bytes"] for c in lost)
            rows.append(dict(stage=stage, files_in=files, bytes_in=size, files_out=out_files, bytes_out=out_bytes))
            files, size = out_files, out_bytes
        return rows

    def to_dict(self) -> dict:
        dropped = {r: dict(files=c["files"], bytes=c["bytes"], stage=REASON_STAGE[r]) for r, c in self.dropped.items()}
        return {
            "input": dict(files=self.input["files"], bytes=self.input["bytes"]),
            "kept": dict(files=self.kept["files"], bytes=self.kept["bytes"]),
            "dropped": dict(sorted(dropped.items())),
            "stages": self.stages(),
        }


def repo_reason(record: RepoRecord, duplicate: bool, kept: list[FileRecord]) -> str | None:
    """Why a repository yields no sample (``empty_repo``, ``near_duplicate``, ``no_files_kept``), logged; else None."""
    if not record.files:
        reason, detail = "empty_repo", ""
    elif duplicate:
        reason, detail = "near_duplicate", ""
    elif not kept:
        reason = "no_files_kept"
        detail = f" ({dict(Counter(f.reason or f.syntax or 'decontaminated' for f in record.files))})"
    else:
        return None
    logger.info("repository %s dropped: %s%s", record.name, reason, detail)
    return reason


def _listed(items: list, more: list, limit: int) -> list:
    return (items + more)[:limit]


@dataclass
class Tally:
    """What pass 2 counts as repositories go by; the tallies of separate shards merge (the Spark engine's reduce)."""

    funnel: Funnel = field(default_factory=Funnel)
    repo_reasons: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    rule_counts: Counter = field(default_factory=Counter)
    edges: int = 0
    syntax_errors: list[str] = field(default_factory=list)
    quality_examples: dict[str, list[str]] = field(default_factory=dict)
    hits: list[dict] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)  # training files equal to a held-out file (heldout_copy)
    mix_bytes: Counter = field(default_factory=Counter)
    splits: dict[str, Counter] = field(default_factory=lambda: {split: Counter() for split in SPLITS})

    def add(
        self, record: RepoRecord, duplicate: bool, heldout: bool, heldout_digests: Set[bytes], config: DataConfig
    ) -> list[dict]:
        """Settle and count ``record``'s files; return its output rows (:data:`SCHEMA`): its documents per source
        of the mix (``data.repo_level``, :func:`dslib.data.repo_level.document_files`), none when it is dropped."""
        kept = []
        for f in record.files:
            reason = f.reason or ("near_duplicate" if duplicate else None) or f.syntax
            if reason == "syntax_error" and len(self.syntax_errors) < MAX_LISTED:
                self.syntax_errors.append(f"{record.name}/{f.path}")
            if reason in QUALITY_REASONS and len(self.quality_examples.setdefault(reason, [])) < QUALITY_LISTED:
                self.quality_examples[reason].append(f"{record.name}/{f.path}")
            if reason is None and f.contamination:
                rule, item, ngram = f.contamination
                reason = "decontam_exact" if rule == "exact" else "decontam_10gram"
                self.rule_counts[reason] += 1
                if len(self.hits) < MAX_LISTED:
                    self.hits.append(dict(repo=record.name, path=f.path, rule=rule, item=item, ngram=ngram))
            if reason is None and not heldout and f.digest in heldout_digests:
                reason = "heldout_copy"
                if len(self.copies) < MAX_LISTED:
                    self.copies.append(f"{record.name}/{f.path}")
            self.funnel.add(f.bytes, reason)
            if reason is None:
                kept.append(f)
                self.languages[f.language] += f.bytes
        self.edges += record.edges
        reason = repo_reason(record, duplicate, kept)
        if reason:
            self.repo_reasons[reason] += 1
            return []
        rows = []
        english = [f for f in kept if f.language in config.english_languages]
        code = [f for f in kept if f.language not in config.english_languages]
        for source, group in (("code", code), ("english", english)):
            for document in document_files(record.name, group, config.repo_level, config.seed) if group else ():
                text = repo_sample([(f.path, f.language, f.text) for f in document])
                size = len(text.encode())
                self.mix_bytes[source] += size
                languages, paths = [f.language for f in document], [f.path for f in document]
                rows.append(
                    dict(text=text, repo=record.name, languages=languages, paths=paths, size=size, source=source)
                )
        return rows

    def write(self, directory: Path, index: int, num_shards: int, rows: dict[str, list[dict]]) -> None:
        """Write shard ``index``'s rows of each split as ``<split>-<index>-of-<num_shards>.parquet``."""
        for split, split_rows in rows.items():
            if split_rows:
                table = pa.Table.from_pylist(split_rows, schema=SCHEMA)
                path = Path(directory) / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
                partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")  # a retried writer never clashes
                pq.write_table(table, partial)
                partial.replace(path)
                size, repos = sum(r["size"] for r in split_rows), len({r["repo"] for r in split_rows})
                self.splits[split].update(repos=repos, documents=len(split_rows), bytes=size, shards=1)

    def merge(self, other: Tally) -> Tally:
        """Add ``other`` (a later shard) to this tally."""
        self.funnel.merge(other.funnel)
        for mine, theirs in [
            (self.repo_reasons, other.repo_reasons),
            (self.languages, other.languages),
            (self.rule_counts, other.rule_counts),
            (self.mix_bytes, other.mix_bytes),
        ]:
            mine.update(theirs)
        self.edges += other.edges
        self.syntax_errors = _listed(self.syntax_errors, other.syntax_errors, MAX_LISTED)
        for reason, examples in other.quality_examples.items():
            self.quality_examples[reason] = _listed(self.quality_examples.get(reason, []), examples, QUALITY_LISTED)
        self.hits = _listed(self.hits, other.hits, MAX_LISTED)
        self.copies = _listed(self.copies, other.copies, MAX_LISTED)
        for split in SPLITS:
            self.splits[split].update(other.splits[split])
        return self

    def counts(
        self,
        config: DataConfig,
        selection: dict,
        repositories: int,
        clusters: list[list[str]],
        heldout: Set[str],
        forced: Set[str],
        stage_bytes: dict,
    ) -> dict:
        """The manifest's ``counts``: the funnel, repositories, splits, languages, clusters, quality examples, the
        mix, decontamination hits and held-out copies, and the held-out rule with its repositories."""
        return {
            "funnel": {**self.funnel.to_dict(), "repo_level": config.repo_level},
            "repositories": {
                **selection,
                "input": repositories,
                "dropped": dict(sorted(self.repo_reasons.items())),
                **{split: self.splits[split]["repos"] for split in SPLITS},
            },
            "splits": {split: dict(counter) for split, counter in self.splits.items()},
            "languages": dict(sorted(self.languages.items(), key=lambda kv: (-kv[1], kv[0]))),
            "dependency_edges": self.edges,
            "near_duplicate_clusters": clusters,
            "syntax_errors": self.syntax_errors,
            "quality_examples": dict(sorted(self.quality_examples.items())),
            "mix_bytes": dict(self.mix_bytes),
            "decontamination": {
                "files": dict(sorted(self.rule_counts.items())),
                "hits": self.hits,
                "heldout_copies": self.copies,
            },
            "heldout": {"rule": HELDOUT_RULE, "seed": config.seed, "repositories": sorted(heldout)},
            "heldout_forced": sorted(forced),
            "stage_bytes": dict(stage_bytes),
        }
