"""The repository-level data pipeline of DeepSeek-Coder §2 (Figure 2), end to end.

crawl → language identification → rule filter (§2.1) → dependency parsing (§2.2) → repository-level
near-dedup (§2.3) → quality screening and decontamination (§2.4). Every file the source lists is either
kept or dropped with one reason, so the funnel in the manifest satisfies *input = kept + Σ dropped*, in
files and in bytes. Each repository becomes one sample: its kept files in dependency order, each headed
by a comment holding its path (``data.repo_level`` shuffles them or makes each file a document instead:
:mod:`dslib.data.repo_level`). Held-out repositories, and copies of their files elsewhere, stay out of training.

Work is split into ``num_shards`` fixed shards of repositories (round-robin by name) processed by
``num_proc`` worker processes; the output depends on the shards only, never on the number of workers.
Pass 1 (parallel) reads, filters, orders, screens each repository and computes the MinHash signature of
its sample (:func:`screen`); near-dedup then runs over all signatures; pass 2 (:class:`dslib.data.tally.Tally`)
drops duplicates and copies of held-out files and writes the shards. ``data.engine = "spark"`` runs the same
stages as a Spark job (:mod:`dslib.data.spark`) with the same output.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from dslib.artifacts import artifact_dir, ensure, fingerprint, read_manifest, write_manifest
from dslib.config import PRESETS, DataConfig, Scale, resolve, result_fields
from dslib.data import dedup, deps
from dslib.data.decontam import Decontaminator
from dslib.data.filters import rule_filter_reason
from dslib.data.languages import detect_language, path_comment
from dslib.data.mix import docs_repositories
from dslib.data.quality import quality_reason
from dslib.data.repo_level import content_digest, heldout_repositories
from dslib.data.sources import Repository, hub_dataset, local_repos, python_environment, read_text, select_repositories
from dslib.data.stack import PARQUET_PREFIX, parquet_repositories
from dslib.data.tally import REASON_STAGE as REASON_STAGE  # re-exported: the public names of the pipeline
from dslib.data.tally import SCHEMA, SPLITS, Tally, repo_sample
from dslib.data.tally import STAGE_REASONS as STAGE_REASONS
from dslib.data.tally import Funnel as Funnel

logger = logging.getLogger(__name__)


@dataclass
class FileRecord:
    """What pass 1 learned about one file; ``reason`` is the first drop reason known so far."""

    path: str
    bytes: int
    language: str | None = None
    reason: str | None = None
    text: str | None = None
    syntax: str | None = None  # quality screening's verdict (a QUALITY_REASONS entry), applied after near-dedup
    contamination: tuple[str, str, str] | None = None  # (rule, benchmark item, matched words)
    digest: bytes = b""  # repo_level.content_digest, to find copies of held-out files


@dataclass
class RepoRecord:
    name: str
    files: list[FileRecord]  # kept candidates in dependency order, then the dropped files
    edges: int = 0


def sample_files(row: Mapping) -> list[tuple[str, str | None, int, int]]:
    """The files of a corpus row (a repository sample of :func:`repo_sample`) as ``(path, language, start, end)``:
    ``row["text"][start:end]`` is the file's text, after the path comment that heads it."""
    text, spans, cursor = row["text"], [], 0
    for path, language in zip(row["paths"], row["languages"], strict=True):
        header = path_comment(path, language) + "\n"
        at = text.find(header, cursor)
        if at < 0:
            raise ValueError(f"repository {row['repo']!r}: no header for {path!r} in its sample after offset {cursor}")
        if spans:
            spans[-1][3] = at
        spans.append([path, language, at + len(header), len(text)])
        cursor = at + len(header)
    return [tuple(span) for span in spans]


@dataclass
class ShardResult:
    index: int
    repos: list[str]
    signatures: np.ndarray
    survives: list[bool]  # whether each repository keeps a file through quality and decontamination
    digests: list[set[bytes]]  # each repository's candidate file digests
    timings: dict[str, float] = field(default_factory=Counter)
    stage_bytes: dict[str, int] = field(default_factory=Counter)


@cache
def _decontaminator(files: tuple[str, ...], ngram: int, min_ngram: int, benchmarks: tuple[str, ...]) -> Decontaminator:
    return Decontaminator.from_benchmarks(files, ngram, min_ngram, benchmarks)


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

    decontaminator = _decontaminator(
        config.decontam_files, config.decontam_ngram, config.decontam_min_ngram, config.decontam_benchmarks
    )
    for record in ordered:
        clock = time.perf_counter()
        stage_bytes["quality"] += record.bytes
        record.syntax = quality_reason(record.path, record.text, record.language, config)
        timings["quality"] += time.perf_counter() - clock
        clock = time.perf_counter()
        stage_bytes["decontam"] += record.bytes
        hit = decontaminator.find(record.text)
        record.contamination = (hit.rule, hit.item, hit.ngram) if hit else None
        record.digest = content_digest(record.text)
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
    signatures = dedup.minhash_signatures(samples, config.dedup_num_perm, config.dedup_ngram, seed=config.seed + 1)
    timings["near_dedup"] += time.perf_counter() - clock
    survives = [any(f.reason is None and not f.syntax and not f.contamination for f in r.files) for r in records]
    return records, signatures, survives


def candidate_digests(record: RepoRecord) -> set[bytes]:
    """The digests of the files of ``record`` that pass 1 kept: copies of them are dropped when it is held out."""
    return {f.digest for f in record.files if f.reason is None}


def _pass_one(job: tuple[int, list[Repository], DataConfig, str]) -> ShardResult:
    index, repos, config, scratch = job
    timings, stage_bytes = Counter(), Counter()
    records, signatures, survives = screen(repos, config, timings, stage_bytes)
    with open(Path(scratch) / f"shard-{index:05d}.pkl", "wb") as handle:
        pickle.dump(records, handle, protocol=pickle.HIGHEST_PROTOCOL)
    digests = [candidate_digests(r) for r in records]
    return ShardResult(
        index, [r.name for r in records], signatures, survives, digests, dict(timings), dict(stage_bytes)
    )


def _repositories(config: DataConfig) -> tuple[list[Repository], dict]:
    if config.source == "python_env":
        repos = python_environment()
    elif config.source.startswith(PARQUET_PREFIX):
        repos = parquet_repositories(config.source.removeprefix(PARQUET_PREFIX), config.max_file_bytes)
    elif config.source.startswith("hub:"):
        repos = hub_dataset(config.source[4:], data_dir=config.hub_data_dir, max_bytes=config.max_total_bytes)
    else:
        repos = local_repos(config.source)
    repos, selection = select_repositories(repos, config.max_repos, config.max_total_bytes, config.seed)
    docs, docs_counts = docs_mix(config)
    selection.update(docs_counts)
    return sorted(repos + docs, key=lambda r: r.name), selection


def docs_mix(config: DataConfig) -> tuple[list[Repository], dict]:
    """The documentation repositories of the mix's English source (§2), selected under the same limits as the
    code on their own, and their counts for the manifest's selection report."""
    docs, missing = docs_repositories(config.docs_folders, config.english_languages)
    docs, docs_selection = select_repositories(docs, config.max_repos, config.max_total_bytes, config.seed)
    for folder in missing:
        logger.warning("data: documentation folder %s does not exist; left out of the mix", folder)
    return docs, dict(docs_selected=docs_selection["selected"], docs_folders_missing=len(missing))


def heldout_names(repos: list[Repository], heldout_repos: tuple[str, ...]) -> set[str]:
    """The names of ``repos`` that ``heldout_repos`` names, by repository name or by the path it was found at."""
    wanted = set(heldout_repos) | {str(Path(p).expanduser().resolve()) for p in heldout_repos if "/" in p}
    return {r.name for r in repos if r.name in wanted or (r.origin and str(Path(r.origin).resolve()) in wanted)}


def _run_pass_one(jobs: list, num_proc: int) -> list[ShardResult]:
    progress = dict(total=len(jobs), desc="data: read, filter, order, screen", unit="shard")
    if num_proc <= 1 or len(jobs) <= 1:
        return [_pass_one(job) for job in tqdm(jobs, **progress)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(min(num_proc, len(jobs))) as pool:
        return list(tqdm(pool.imap(_pass_one, jobs), **progress))


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
    clusters = dedup.clusters_from_signatures(signatures, config.dedup_threshold)
    index_seconds = time.perf_counter() - clock
    duplicates = {names[i] for cluster in clusters for i in cluster[1:]}
    survivors = [n for r in results for n, ok in zip(r.repos, r.survives, strict=True) if ok and n not in duplicates]
    docs = {r.name for r in repos if r.name.startswith("docs-")}
    always = heldout_names(repos, config.heldout_repos)
    heldout = heldout_repositories(
        sorted(survivors), config.heldout_fraction, config.seed, excluded=docs, always=always
    )
    heldout_digests = set().union(
        *(d for r in results for n, d in zip(r.repos, r.digests, strict=True) if n in heldout)
    )

    tally = Tally()
    for result in tqdm(results, desc="data: dedup and write", unit="shard"):
        with open(scratch / f"shard-{result.index:05d}.pkl", "rb") as handle:
            records: list[RepoRecord] = pickle.load(handle)
        rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
        for record in records:
            held = record.name in heldout
            rows["heldout" if held else "train"] += tally.add(
                record, record.name in duplicates, held, heldout_digests, config
            )
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
    counts = tally.counts(config, selection, len(names), clusters, heldout, always, stage_bytes)
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


def corpus_label(scale: Scale) -> str:
    """The folder suffix of the scale's corpus and of every artifact built from it: ``""`` for the preset's own
    data config, else ``-`` and a hash of the config. Corpora of other configs (an ablation's ``data.repo_level``,
    a user's ``data.source``) then sit beside the preset's instead of replacing it, so that runs on different
    corpora can share a scale, and run at the same time."""
    preset = PRESETS.get(scale.name)
    if preset is not None and result_fields(scale.data) == result_fields(preset.data):
        return ""
    return "-" + fingerprint(result_fields(scale.data))[:8]


def corpus_dir(scale: Scale | str | None = None) -> Path:
    """``artifacts/<scale>/data<label>/`` (:func:`corpus_label`), built by :func:`build_corpus` with the scale's
    data config when missing."""
    scale = resolve(scale)
    stage = "data" + corpus_label(scale)
    return ensure(scale.name, stage, scale.data, lambda directory: build_corpus(scale.data, directory))


def load_corpus(scale: Scale | str | None = None, split: str = "train") -> datasets.Dataset:
    """The corpus at ``scale`` (built when missing): one row per repository with ``text``, ``repo``,
    ``languages``, ``paths`` and ``size``; ``split`` is ``"train"`` or ``"heldout"``."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; choose one of: {', '.join(SPLITS)}")
    return _load_split(corpus_dir(scale), split)


def language_subset(corpus, languages: Sequence[str]):
    """The FIM ablation's training data (DeepSeek-Coder §3.1.2: a Python subset): the code rows of ``corpus``
    (a Dataset of :func:`load_corpus`) cut to the files in ``languages``, each file still under its path comment
    and in its repository's order; rows left with no file are dropped. Raises ``ValueError`` when no row keeps
    a file."""
    wanted = set(languages)

    def cut(row: dict) -> dict:
        files = [(p, lang, row["text"][a:b]) for p, lang, a, b in sample_files(row) if lang in wanted]
        text = repo_sample(files) if files else ""
        kept = [(p, lang) for p, lang, _ in files]
        return {
            "text": text,
            "paths": [p for p, _ in kept],
            "languages": [lang for _, lang in kept],
            "size": len(text.encode()),
        }

    code = corpus.filter(lambda source: source == "code", input_columns="source")
    subset = code.map(cut).filter(lambda size: size > 0, input_columns="size")
    if not len(subset):
        raise ValueError(f"no repository of the corpus has a file in {sorted(wanted)}")
    return subset


def corpus_manifest(scale: Scale | str | None = None) -> dict:
    """The manifest of the corpus at ``scale`` (its funnel, languages, clusters, decontamination hits)."""
    return read_manifest(corpus_dir(scale))
