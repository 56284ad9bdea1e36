"""The repository-level data pipeline of DeepSeek-Coder §2 (Figure 2), end to end.

crawl → language identification → rule filter (§2.1) → dependency parsing (§2.2) → repository-level
near-dedup (§2.3) → quality screening and decontamination (§2.4). Every file the source lists is either
kept or dropped with one reason, so the funnel in the manifest satisfies *input = kept + Σ dropped*, in
files and in bytes. Each repository becomes one sample: its kept files in dependency order, each headed
by a comment holding its path.

Work is split into ``num_shards`` fixed shards of repositories (round-robin by name) processed by
``num_proc`` worker processes; the output depends on the shards only, never on the number of workers.
Pass 1 (parallel) reads, filters, orders, screens each repository and computes the MinHash signature of
its sample; near-dedup then runs over all signatures; pass 2 drops duplicates and writes the shards.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import pickle
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from dslib.artifacts import artifact_dir, ensure, fingerprint, read_manifest, write_manifest
from dslib.config import DataConfig, Scale, resolve
from dslib.data import dedup, deps
from dslib.data.decontam import Decontaminator
from dslib.data.filters import RULE_REASONS, rule_filter_reason
from dslib.data.languages import detect_language, path_comment
from dslib.data.quality import syntax_error_reason
from dslib.data.sources import Repository, hub_dataset, local_repos, python_environment, read_text, select_repositories
from dslib.data.stack import PARQUET_PREFIX, parquet_repositories

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
    "quality": ("syntax_error",),
    "decontam": ("decontam_10gram", "decontam_exact"),
}  # fmt: skip
REASON_STAGE = {reason: stage for stage, reasons in STAGE_REASONS.items() for reason in reasons}
MAX_LISTED = 1000  # syntax errors and decontamination hits listed in the manifest (all are counted)
SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("repo", pa.string()),
        ("languages", pa.list_(pa.string())),
        ("paths", pa.list_(pa.string())),
        ("size", pa.int64()),
    ]
)


@dataclass
class FileRecord:
    """What pass 1 learned about one file; ``reason`` is the first drop reason known so far."""

    path: str
    bytes: int
    language: str | None = None
    reason: str | None = None
    text: str | None = None
    syntax: str | None = None  # quality screening's verdict, applied after near-dedup
    contamination: tuple[str, str, str] | None = None  # (rule, benchmark item, matched words)


@dataclass
class RepoRecord:
    name: str
    files: list[FileRecord]  # kept candidates in dependency order, then the dropped files
    edges: int = 0


@dataclass
class ShardResult:
    index: int
    repos: list[str]
    signatures: np.ndarray
    survives: list[bool]  # whether each repository keeps a file through quality and decontamination
    timings: dict[str, float] = field(default_factory=Counter)
    stage_bytes: dict[str, int] = field(default_factory=Counter)


def repo_sample(files: list[tuple[str, str | None, str]]) -> str:
    """One training sample from ``(path, language, text)`` in order: each file headed by its path comment (§2.2)."""
    parts = []
    for path, language, text in files:
        parts.append(path_comment(path, language) + "\n" + (text if text.endswith("\n") else text + "\n"))
    return "".join(parts)


@cache
def _decontaminator(files: tuple[str, ...], ngram: int, min_ngram: int) -> Decontaminator:
    return Decontaminator.from_benchmarks(files, ngram, min_ngram)


def _process_repo(repo: Repository, config: DataConfig, timings: Counter, stage_bytes: Counter) -> RepoRecord:
    """Pass 1 for one repository: read, identify, filter, order, screen (§2.1–2.4, before near-dedup)."""
    candidates: list[FileRecord] = []
    dropped: list[FileRecord] = []
    for number, source in enumerate(repo.files):
        clock = time.perf_counter()
        stage_bytes["crawl"] += source.size
        if number >= config.max_repo_files:
            text, reason, size = None, "repo_file_limit", source.size
        else:
            text, reason, size = read_text(source, config.max_file_bytes)
        record = FileRecord(source.path, size, reason=reason, text=text)
        timings["crawl"] += time.perf_counter() - clock
        if reason is None:
            clock = time.perf_counter()
            stage_bytes["language"] += size
            record.language = detect_language(source.path) or source.language
            record.reason = None if record.language else "unknown_language"
            timings["language"] += time.perf_counter() - clock
        if record.reason is None:
            clock = time.perf_counter()
            stage_bytes["rule_filter"] += size
            record.reason = rule_filter_reason(text, record.language, config)
            timings["rule_filter"] += time.perf_counter() - clock
        if record.reason is None:
            candidates.append(record)
        else:
            logger.debug("%s/%s dropped: %s", repo.name, source.path, record.reason)
            record.text = None
            dropped.append(record)

    clock = time.perf_counter()
    stage_bytes["dependency"] += sum(r.bytes for r in candidates)
    graph = deps.dependency_graph({r.path: r.text for r in candidates})
    by_path = {r.path: r for r in candidates}
    ordered = [by_path[p] for subgraph in deps.topological_sort(graph) for p in subgraph]
    timings["dependency"] += time.perf_counter() - clock

    decontaminator = _decontaminator(config.decontam_files, config.decontam_ngram, config.decontam_min_ngram)
    for record in ordered:
        clock = time.perf_counter()
        stage_bytes["quality"] += record.bytes
        record.syntax = syntax_error_reason(record.path, record.text, record.language)
        timings["quality"] += time.perf_counter() - clock
        clock = time.perf_counter()
        stage_bytes["decontam"] += record.bytes
        hit = decontaminator.find(record.text)
        record.contamination = (hit.rule, hit.item, hit.ngram) if hit else None
        timings["decontam"] += time.perf_counter() - clock
    return RepoRecord(repo.name, ordered + dropped, edges=sum(len(v) for v in graph.values()))


def screen(
    repos: list[Repository], config: DataConfig, timings: Counter, stage_bytes: Counter
) -> tuple[list[RepoRecord], np.ndarray, list[bool]]:
    """Pass 1 for a batch of repositories: their records, MinHash signatures, and whether each keeps a file
    through quality screening and decontamination."""
    records = [_process_repo(repo, config, timings, stage_bytes) for repo in repos]
    samples = [repo_sample([(f.path, f.language, f.text) for f in r.files if f.reason is None]) for r in records]
    clock = time.perf_counter()
    stage_bytes["near_dedup"] += sum(len(s.encode()) for s in samples)
    # seed + 1: the default config (seed 0) then uses datasketch's default permutations (seed 1).
    signatures = dedup.minhash_signatures(samples, config.dedup_num_perm, config.dedup_ngram, seed=config.seed + 1)
    timings["near_dedup"] += time.perf_counter() - clock
    survives = [any(f.reason is None and not f.syntax and not f.contamination for f in r.files) for r in records]
    return records, signatures, survives


def _pass_one(job: tuple[int, list[Repository], DataConfig, str]) -> ShardResult:
    index, repos, config, scratch = job
    timings, stage_bytes = Counter(), Counter()
    records, signatures, survives = screen(repos, config, timings, stage_bytes)
    with open(Path(scratch) / f"shard-{index:05d}.pkl", "wb") as handle:
        pickle.dump(records, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return ShardResult(index, [r.name for r in records], signatures, survives, dict(timings), dict(stage_bytes))


def _repositories(config: DataConfig) -> tuple[list[Repository], dict]:
    if config.source == "python_env":
        repos = python_environment()
    elif config.source.startswith(PARQUET_PREFIX):
        repos = parquet_repositories(config.source.removeprefix(PARQUET_PREFIX), config.max_file_bytes)
    elif config.source.startswith("hub:"):
        repos = hub_dataset(config.source[4:], data_dir=config.hub_data_dir, max_bytes=config.max_total_bytes)
    else:
        repos = local_repos(config.source)
    return select_repositories(repos, config.max_repos, config.max_total_bytes, config.seed)


def heldout_count(survivors: int, fraction: float) -> int:
    """How many of ``survivors`` kept repositories are held out (at least one when there are two or more)."""
    if survivors < 2 or fraction <= 0:
        return 0
    return min(survivors - 1, max(1, round(fraction * survivors)))


def heldout_key(name: str, seed: int) -> str:
    """The seeded hash that orders repositories for the held-out split; the lowest are held out."""
    return hashlib.sha256(f"heldout:{seed}:{name}".encode()).hexdigest()


def _heldout(names: list[str], fraction: float, seed: int) -> set[str]:
    """A fixed share of the kept repositories, by seeded hash."""
    return set(sorted(names, key=lambda n: heldout_key(n, seed))[: heldout_count(len(names), fraction)])


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


def sample_row(name: str, kept: list[FileRecord]) -> dict:
    """The output row of one repository: its sample and what went into it (:data:`SCHEMA`)."""
    text = repo_sample([(f.path, f.language, f.text) for f in kept])
    return dict(
        text=text,
        repo=name,
        languages=[f.language for f in kept],
        paths=[f.path for f in kept],
        size=len(text.encode()),
    )


def _run_pass_one(jobs: list, num_proc: int) -> list[ShardResult]:
    progress = dict(total=len(jobs), desc="data: read, filter, order, screen", unit="shard")
    if num_proc <= 1 or len(jobs) <= 1:
        return [_pass_one(job) for job in tqdm(jobs, **progress)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(min(num_proc, len(jobs))) as pool:
        return list(tqdm(pool.imap(_pass_one, jobs), **progress))


class Funnel:
    """Files and bytes in, kept, and dropped by reason (datatrove-style stats, gathered as files go by)."""

    def __init__(self):
        self.input = Counter()
        self.kept = Counter()
        self.dropped: dict[str, Counter] = {}

    def add(self, size: int, reason: str | None) -> None:
        self.input.update(files=1, bytes=size)
        (self.kept if reason is None else self.dropped.setdefault(reason, Counter())).update(files=1, bytes=size)

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


@dataclass
class Tally:
    """What pass 2 counts as repositories go by; the tallies of separate shards merge (the Spark engine's reduce)."""

    funnel: Funnel = field(default_factory=Funnel)
    repo_reasons: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    rule_counts: Counter = field(default_factory=Counter)
    edges: int = 0
    syntax_errors: list[str] = field(default_factory=list)
    hits: list[dict] = field(default_factory=list)
    splits: dict[str, Counter] = field(default_factory=lambda: {split: Counter() for split in SPLITS})

    def add(self, record: RepoRecord, duplicate: bool) -> list[FileRecord]:
        """Count ``record``'s files and return the ones its sample keeps (none when the repository is dropped)."""
        kept = []
        for f in record.files:
            reason = f.reason or ("near_duplicate" if duplicate else None) or f.syntax
            if reason == "syntax_error" and len(self.syntax_errors) < MAX_LISTED:
                self.syntax_errors.append(f"{record.name}/{f.path}")
            if reason is None and f.contamination:
                rule, item, ngram = f.contamination
                reason = "decontam_exact" if rule == "exact" else "decontam_10gram"
                self.rule_counts[reason] += 1
                if len(self.hits) < MAX_LISTED:
                    self.hits.append(dict(repo=record.name, path=f.path, rule=rule, item=item, ngram=ngram))
            self.funnel.add(f.bytes, reason)
            if reason is None:
                kept.append(f)
                self.languages[f.language] += f.bytes
        self.edges += record.edges
        reason = repo_reason(record, duplicate, kept)
        if reason:
            self.repo_reasons[reason] += 1
            return []
        return kept

    def write(self, directory: Path, index: int, num_shards: int, rows: dict[str, list[dict]]) -> None:
        """Write shard ``index``'s rows of each split as ``<split>-<index>-of-<num_shards>.parquet``."""
        for split, split_rows in rows.items():
            if split_rows:
                table = pa.Table.from_pylist(split_rows, schema=SCHEMA)
                path = Path(directory) / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
                partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")  # a retried writer never clashes
                pq.write_table(table, partial)
                partial.replace(path)
                self.splits[split].update(repos=len(split_rows), bytes=sum(r["size"] for r in split_rows), shards=1)

    def merge(self, other: Tally) -> Tally:
        """Add ``other`` (a later shard) to this tally."""
        self.funnel.input.update(other.funnel.input)
        self.funnel.kept.update(other.funnel.kept)
        for reason, counter in other.funnel.dropped.items():
            self.funnel.dropped.setdefault(reason, Counter()).update(counter)
        for mine, theirs in [(self.repo_reasons, other.repo_reasons), (self.languages, other.languages)]:
            mine.update(theirs)
        self.rule_counts.update(other.rule_counts)
        self.edges += other.edges
        self.syntax_errors = (self.syntax_errors + other.syntax_errors)[:MAX_LISTED]
        self.hits = (self.hits + other.hits)[:MAX_LISTED]
        for split in SPLITS:
            self.splits[split].update(other.splits[split])
        return self

    def counts(self, selection: dict, repositories: int, clusters: list[list[str]], stage_bytes: dict) -> dict:
        """The manifest's ``counts``: the funnel, repositories, splits, languages, clusters and hits."""
        return {
            "funnel": self.funnel.to_dict(),
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
            "decontamination": {"files": dict(sorted(self.rule_counts.items())), "hits": self.hits},
            "stage_bytes": dict(stage_bytes),
        }


def build_corpus(config: DataConfig, directory: Path | None = None) -> datasets.Dataset:
    """Run the §2 pipeline into ``directory`` (parquet shards and ``manifest.json``); return the train split.

    Without ``directory`` the corpus goes to ``artifacts/custom/data-<config fingerprint>/``. With
    ``config.engine == "spark"`` the same stages run as a Spark job (:mod:`dslib.data.spark`), with the same output.
    """
    if config.engine == "spark":
        from dslib.data import spark  # here, not at the top: it imports this module (and pyspark only when used)

        return spark.build_corpus(config, directory)
    directory = Path(directory) if directory else artifact_dir("custom", f"data-{fingerprint(config)}")
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    repos, selection = _repositories(config)
    listing_seconds = time.perf_counter() - started
    logger.info("data: %d of %d repositories selected (%s)", len(repos), selection["available"], config.source)

    scratch = directory / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    shards = [repos[k :: config.num_shards] for k in range(config.num_shards)]
    jobs = [(k, shard, config, str(scratch)) for k, shard in enumerate(shards)]
    results = _run_pass_one(jobs, config.num_proc)

    names = [name for result in results for name in result.repos]
    signatures = np.concatenate([r.signatures for r in results]) if names else np.zeros((0, config.dedup_num_perm))
    clock = time.perf_counter()
    clusters = dedup.clusters_from_signatures(signatures, config.dedup_threshold, seed=config.seed + 1)
    index_seconds = time.perf_counter() - clock
    duplicates = {names[i] for cluster in clusters for i in cluster[1:]}
    survivors = [n for r in results for n, ok in zip(r.repos, r.survives, strict=True) if ok and n not in duplicates]
    heldout = _heldout(sorted(survivors), config.heldout_fraction, config.seed)

    tally = Tally()
    for result in tqdm(results, desc="data: dedup and write", unit="shard"):
        with open(scratch / f"shard-{result.index:05d}.pkl", "rb") as handle:
            records: list[RepoRecord] = pickle.load(handle)
        rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
        for record in records:
            kept = tally.add(record, record.name in duplicates)
            if kept:
                rows["heldout" if record.name in heldout else "train"].append(sample_row(record.name, kept))
        tally.write(directory, result.index, config.num_shards, rows)
    shutil.rmtree(scratch)

    timings = Counter()
    stage_bytes = Counter()
    for result in results:
        timings.update(result.timings)
        stage_bytes.update(result.stage_bytes)
    timings["near_dedup"] += index_seconds
    timings.update(listing=listing_seconds, wall=time.perf_counter() - started)
    clusters = [[names[i] for i in cluster] for cluster in clusters]
    counts = tally.counts(selection, len(names), clusters, stage_bytes)
    funnel = tally.funnel
    logger.info(
        "data: kept %d of %d files (%d of %d bytes); dropped %s",
        funnel.kept["files"],
        funnel.input["files"],
        funnel.kept["bytes"],
        funnel.input["bytes"],
        {reason: counter["files"] for reason, counter in sorted(funnel.dropped.items())},
    )
    write_manifest(
        directory,
        config,
        inputs={"source": config.source, "repositories": fingerprint(sorted((r.name, r.size) for r in repos))},
        counts=counts,
        timings={k: round(v, 4) for k, v in timings.items()},
    )
    return _load_split(directory, "train")


def build_corpus_into(config: DataConfig, output: str | Path) -> Path:
    """Build the corpus into ``output`` atomically: into a hidden sibling folder, renamed to ``output`` once the
    manifest is written, so a partial folder never carries the final name (an older ``output`` is replaced)."""
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        build_corpus(config, partial)
        if output.exists():
            old = output.parent / f".{output.name}.old-{uuid.uuid4().hex[:8]}"
            output.rename(old)
            partial.rename(output)
            shutil.rmtree(old)
        else:
            partial.rename(output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return output


def _load_split(directory: Path, split: str) -> datasets.Dataset:
    files = sorted(directory.glob(f"{split}-*.parquet"))
    table = pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files]) if files else SCHEMA.empty_table()
    # A fingerprint from the build, so that datasets need not hash the whole table to make one.
    manifest = read_manifest(directory) or {}
    stamp = [
        split,
        manifest.get("config_fingerprint"),
        manifest.get("created"),
        [(f.name, f.stat().st_size) for f in files],
    ]
    return datasets.Dataset(table, fingerprint=fingerprint(stamp))


def corpus_dir(scale: Scale | str | None = None) -> Path:
    """``artifacts/<scale>/data/``, built by :func:`build_corpus` with the scale's data config when missing."""
    scale = resolve(scale)
    return ensure(scale.name, "data", scale.data, lambda directory: build_corpus(scale.data, directory))


def load_corpus(scale: Scale | str | None = None, split: str = "train") -> datasets.Dataset:
    """The corpus at ``scale`` (built when missing): one row per repository with ``text``, ``repo``,
    ``languages``, ``paths`` and ``size``; ``split`` is ``"train"`` or ``"heldout"``."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; choose one of: {', '.join(SPLITS)}")
    return _load_split(corpus_dir(scale), split)


def corpus_manifest(scale: Scale | str | None = None) -> dict:
    """The manifest of the corpus at ``scale`` (its funnel, languages, clusters, decontamination hits)."""
    return read_manifest(corpus_dir(scale))
