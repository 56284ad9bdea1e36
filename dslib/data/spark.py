"""The §2 data pipeline (DeepSeek-Coder Figure 2) as an Apache Spark job: the local engine's stages, its output.

Spark's tasks call the stages' own functions (:func:`dslib.data.pipeline.screen`: reading, language
identification, the §2.1 rules, Algorithm 1's dependency order, quality screening, decontamination and the
MinHash signature of each repository's sample). The steps that need the whole corpus are Spark operations:

- files → repositories (Parquet input): a shuffle by repository, sorted by path within each partition, so a
  task streams one repository at a time. Only the first ``max_repo_files`` files of a repository carry their
  content through the shuffle and files over ``max_file_bytes`` never do: one huge repository (skew) costs one
  task at most ``max_repo_files × max_file_bytes`` of content in memory, the rest is metadata that Spark's
  sort spills to disk.
- near-dedup (§2.3): the local engine's LSH band keys (:func:`dslib.data.dedup.band_keys`), grouped by
  ``(band, key)``; candidate pairs within each bucket confirmed by their estimated Jaccard similarity, then
  connected components by iterative min-label propagation, the label ordering repositories as the local
  engine meets them, so each cluster keeps the same representative.
- the held-out split: :func:`dslib.data.repo_level.heldout_repositories` over the names of the surviving
  repositories, and the digests of the held-out files, whose copies elsewhere are dropped (``heldout_copy``).
- the funnel and every count of the manifest: each output task's :class:`~dslib.data.tally.Tally`,
  merged in shard order.

Output: repositories sorted by name and dealt round-robin into ``num_shards`` shards, each written by one task
under the local engine's file names. Only counts, the names in near-duplicate clusters, the names of the
surviving repositories and the held-out files' digests (12 bytes a file), the file listing (Python-environment
and folder sources, documentation folders) and, when a byte or repository budget is set, each repository's
name and size pass through the driver; file contents never do.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np

from dslib.artifacts import artifact_dir, fingerprint, read_manifest, write_manifest
from dslib.config import DataConfig, Scale, resolve
from dslib.data import dedup, pipeline, stack
from dslib.data.repo_level import heldout_repositories
from dslib.data.sources import Repository, SourceFile, select_repositories
from dslib.data.tally import REASON_STAGE, SPLITS, Tally

logger = logging.getLogger(__name__)

BATCH = 64  # repositories screened (and their signatures computed) per call inside a task
# Parquet bytes per partition of the shuffle by repository when data.spark_partitions is unset: each task's
# Python sort then stays in memory (with 2 partitions for 1.2 GB it spilled for over 15 minutes).
PARTITION_BYTES = 32 * 2**20


class SparkUnavailable(RuntimeError):
    """Spark cannot start here; the message says why in one line."""


def unavailable() -> str | None:
    """Why the Spark engine cannot run here (no pyspark, no Java runtime), or ``None``."""
    if importlib.util.find_spec("pyspark") is None:
        return "the spark engine needs pyspark: pip install -e '.[spark]'"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK)) and not shutil.which("java"):
        return (
            "the spark engine needs a Java runtime (17 or 21): apt-get install default-jre-headless, or set JAVA_HOME"
        )
    return None


def session(master: str | None = None):
    """The active SparkSession, or a new one at ``master`` (spark-submit's ``--master`` when None, else local[*])."""
    reason = unavailable()
    if reason:
        raise SparkUnavailable(reason)
    from pyspark.sql import SparkSession  # an optional dependency (the "spark" extra): imported only when used

    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ  # under spark-submit: its settings rule
    if not submitted and (master or "local").startswith("local"):
        # Local workers run this interpreter, which has dslib's dependencies (the PATH's python3 may not).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("dslib.data").config("spark.ui.showConsoleProgress", "false")
    if master:
        builder = builder.master(master)
    return builder.getOrCreate()


def _shard_files(spark, location: str) -> list[tuple[str, int]]:
    """``(URL, bytes)`` of every ``.parquet`` file at ``location``, through Hadoop's file systems (any URL)."""
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(location)
    listing = path.getFileSystem(conf).listFiles(path, True)
    files = []
    while listing.hasNext():
        status = listing.next()
        name = status.getPath().toString()
        if name.endswith(".parquet"):
            files.append((name, status.getLen()))
    if not files:
        raise FileNotFoundError(f"parquet source {location} holds no .parquet file")
    return sorted(files)


def _shard_columns(spark, url: str) -> list[str]:
    """The top-level column names in the footer of one Parquet file (its rows are not read)."""
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    hadoop = jvm.org.apache.parquet.hadoop
    reader = hadoop.ParquetFileReader.open(
        hadoop.util.HadoopInputFile.fromPath(jvm.org.apache.hadoop.fs.Path(url), conf)
    )
    try:
        return [field.getName() for field in reader.getFooter().getFileMetaData().getSchema().getFields()]
    finally:
        reader.close()


def _parquet_files(spark, location: str, config: DataConfig):
    """``(repository, SourceFile)`` pairs of the shards at ``location`` (shards read together by column set), and
    the shards' total bytes."""
    from pyspark.sql import functions as F  # optional dependency, see session()

    groups: dict[tuple, list[str]] = {}
    bad: list[tuple[str, SourceFile]] = []
    shards = _shard_files(spark, location)
    for url, size in shards:
        chosen, missing = stack.columns(_shard_columns(spark, url))
        if missing:
            bad.append(stack.missing_column_file(url, size, missing))
        else:
            groups.setdefault(tuple(chosen.items()), []).append(url)
    limit = config.max_file_bytes
    files = spark.sparkContext.parallelize(bad, 1)
    for chosen, urls in groups.items():
        chosen = dict(chosen)
        frame = spark.read.parquet(*urls).select(
            *[F.col(chosen[key]).alias(key) if chosen[key] else F.lit(None).alias(key) for key in ("repo", "path")],
            F.col("content").cast("binary").alias("content"),
            (F.col(chosen["lang"]) if chosen["lang"] else F.lit(None)).cast("string").alias("lang"),
        )
        files = files.union(frame.rdd.map(lambda row: stack.row_file(row.repo, row.path, row.content, row.lang, limit)))
    return files, sum(size for _, size in shards)


def _grouped(rows: Iterator, cap: int) -> Iterator[Repository]:
    """Repositories from ``((repository, order), file)`` sorted by key: beyond ``cap`` files, contents are
    dropped (the pipeline counts those files ``repo_file_limit`` without reading them)."""
    for name, group in itertools.groupby(rows, key=lambda row: row[0][0]):
        files = [f if n < cap else SourceFile(f.path, f.size, problem=f.problem) for n, (_, f) in enumerate(group)]
        yield stack.repository(name, files)


def _parquet_repositories(spark, location: str, config: DataConfig):
    """The shuffle by repository: an RDD of :class:`Repository`, the selection report (§2, the crawl) and the
    number of partitions (``data.spark_partitions``, else one per :data:`PARTITION_BYTES` of input)."""
    files, size = _parquet_files(spark, location, config)
    default = max(spark.sparkContext.defaultParallelism, -(-size // PARTITION_BYTES))
    partitions = config.spark_partitions or default
    if config.max_repos is not None or config.max_total_bytes is not None:
        # The greedy budget walks repositories in a seeded order: their names and sizes (not contents) meet here.
        sizes = files.map(lambda kv: (kv[0], kv[1].size)).reduceByKey(lambda a, b: a + b).collect()
        stand_ins = [Repository(name, (SourceFile("", size),)) for name, size in sizes]
        taken, selection = select_repositories(stand_ins, config.max_repos, config.max_total_bytes, config.seed)
        chosen = spark.sparkContext.broadcast({r.name for r in taken})
        files = files.filter(lambda kv: kv[0] in chosen.value)
    else:
        selection = None
    keyed = files.map(lambda kv: ((kv[0], stack.file_order(kv[1])), kv[1]))
    cap = config.max_repo_files
    # crc32, not hash(): a repository must land in the same partition from every Python worker.
    repos = keyed.repartitionAndSortWithinPartitions(
        partitions, partitionFunc=lambda key: zlib.crc32(key[0].encode("utf-8", "surrogatepass"))
    ).mapPartitions(lambda rows: _grouped(rows, cap))
    return repos, selection, partitions


def _screen(repos: Iterator[Repository], config: DataConfig) -> Iterator[tuple]:
    """Pass 1 inside a task: ``(name, record, signature, survives, stage_bytes, size, forced)``, in :data:`BATCH`
    batches; ``forced``: ``data.heldout_repos`` names the repository (by name or path)."""
    while batch := list(itertools.islice(repos, BATCH)):
        timings, stage_bytes = Counter(), Counter()
        records, signatures, survives = pipeline.screen(batch, config, timings, stage_bytes)
        forced = pipeline.heldout_names(batch, config.heldout_repos)
        for n, (repo, record, signature, ok) in enumerate(zip(batch, records, signatures, survives, strict=True)):
            stages = dict(stage_bytes) if n == 0 else {}
            yield record.name, record, signature, ok, stages, repo.size, record.name in forced


def _count(total: tuple[int, Counter, int], row: tuple) -> tuple[int, Counter, int]:
    """Add one screened repository to (repositories, bytes per stage, bytes selected)."""
    total[1].update(row[1][4])  # update, unlike +, keeps the stages that counted 0 bytes
    return total[0] + 1, total[1], total[2] + row[1][5]


def _merge_counts(total: tuple[int, Counter, int], more: tuple[int, Counter, int]) -> tuple[int, Counter, int]:
    total[1].update(more[1])
    return total[0] + more[0], total[1], total[2] + more[2]


def _bucket_pairs(members: list[tuple[tuple, np.ndarray]], threshold: float) -> Iterator[tuple[tuple, tuple]]:
    """Candidate pairs of one LSH bucket whose estimated Jaccard similarity reaches ``threshold``."""
    members = sorted(members, key=lambda m: m[0])
    for i, (a, sig_a) in enumerate(members):
        for b, sig_b in members[i + 1 :]:
            if dedup.estimated_jaccard(sig_a, sig_b) >= threshold:
                yield a, b


def connected_components(edges, partitions: int):
    """``(node, label)`` for every node of ``edges``: the least node of its component (min-label propagation,
    one round per step of the longest shortest path, so a few rounds for near-duplicate clusters)."""
    adjacent = edges.flatMap(lambda e: [e, (e[1], e[0])]).persist()
    labels = adjacent.keys().distinct(partitions).map(lambda node: (node, node))
    while True:
        proposals = adjacent.join(labels, partitions).map(lambda kv: kv[1])
        updated = labels.union(proposals).reduceByKey(min, partitions).persist()
        updated.localCheckpoint()  # cut the lineage that grows by a join per round
        changed = updated.join(labels, partitions).filter(lambda kv: kv[1][0] != kv[1][1]).count()
        labels.unpersist()
        labels = updated
        if not changed:
            adjacent.unpersist()
            return labels


def _near_duplicates(ranked, config: DataConfig, partitions: int, met) -> tuple[list[list[str]], object]:
    """Near-dedup over Spark (§2.3): the clusters (names, in meeting order) and an RDD of ``(position,
    "duplicate")`` for every member but the first one met, which is the cluster's representative."""
    threshold = config.dedup_threshold
    nodes = ranked.filter(lambda kv: not np.all(kv[1][2] == dedup.EMPTY))
    nodes = nodes.map(lambda kv: ((met(kv[0]), kv[1][0]), kv[1][2]))  # node: (meeting order, name)
    buckets = nodes.flatMap(
        lambda kv: [((band, int(key)), kv) for band, key in enumerate(dedup.band_keys(kv[1][None], threshold)[0])]
    )
    pairs = buckets.groupByKey(partitions).flatMap(lambda kv: _bucket_pairs(list(kv[1]), threshold))
    edges = pairs.distinct(partitions).persist()
    if edges.isEmpty():
        return [], ranked.context.emptyRDD()
    labels = connected_components(edges, partitions)
    edges.unpersist()
    members = labels.map(lambda kv: (kv[1], kv[0])).groupByKey(partitions).map(lambda kv: sorted(kv[1])).collect()
    clusters = [[name for _, name in cluster] for cluster in sorted(members)]
    shards = config.num_shards
    duplicates = labels.filter(lambda kv: kv[0] != kv[1]).map(
        lambda kv: (kv[0][0][1] * shards + kv[0][0][0], "duplicate")
    )
    return clusters, duplicates.persist()


def _write_shard(index: int, items: Iterator, directory: str, config: DataConfig, heldout, digests) -> Iterator[tuple]:
    """Pass 2 for shard ``index``: settle each repository, write the shard's files, return its tally (``heldout``
    and ``digests``: broadcasts of the held-out names and their files' digests)."""
    records, flags = {}, {}
    for position, (kind, value) in items:
        if kind == "record":
            records[position] = value
        else:
            flags.setdefault(position, set()).add(kind)
    tally = Tally()
    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for position in sorted(records):
        record = records[position]
        held = record.name in heldout.value
        duplicate = "duplicate" in flags.get(position, ())
        rows["heldout" if held else "train"] += tally.add(record, duplicate, held, digests.value, config)
    tally.write(Path(directory), index, config.num_shards, rows)
    yield index, tally


def build_corpus(config: DataConfig, directory: Path | None = None, spark=None) -> datasets.Dataset:
    """:func:`dslib.data.pipeline.build_corpus` as a Spark job (at ``config.spark_master`` or on ``spark``): the
    same shards, manifest counts and near-duplicate clusters as the local engine for the same input and seed."""
    directory = Path(directory) if directory else artifact_dir("custom", f"data-{fingerprint(config)}")
    directory.mkdir(parents=True, exist_ok=True)
    spark = spark or session(config.spark_master)
    context = spark.sparkContext
    context.setJobGroup("dslib.data", f"DeepSeek-Coder §2 pipeline on {config.source}")
    started = time.perf_counter()
    partitions = config.spark_partitions or context.defaultParallelism
    docs, docs_counts = [], {}  # the other sources list the documentation folders in pipeline._repositories
    if config.source.startswith(stack.PARQUET_PREFIX):
        location = config.source[len(stack.PARQUET_PREFIX) :]
        repos, selection, partitions = _parquet_repositories(spark, location, config)
        docs, docs_counts = pipeline.docs_mix(config)  # local folders, listed here as the local engine does
        repos = repos.union(context.parallelize(docs, max(1, min(partitions, len(docs)))))
    else:
        listed, selection = pipeline._repositories(config)  # the listing (paths and sizes), read on the driver
        repos = context.parallelize(listed, max(1, min(partitions, len(listed))))
    from pyspark import StorageLevel  # optional dependency, see session()

    screened = repos.mapPartitions(lambda part: _screen(part, config)).persist(StorageLevel.MEMORY_AND_DISK)
    # The local engine deals repositories sorted by name round-robin into shards and meets them shard by shard:
    # position p (rank by name) is shard p % S, place p // S, and (p % S, p // S) is the order of meeting.
    ranked = screened.sortBy(lambda row: row[0], numPartitions=partitions).zipWithIndex()
    ranked = ranked.map(lambda kv: (kv[1], kv[0])).persist(StorageLevel.MEMORY_AND_DISK)
    shards = config.num_shards
    met = lambda p: (p % shards, p // shards)  # noqa: E731
    total, stage_bytes, selected_bytes = ranked.treeAggregate((0, Counter(), 0), _count, _merge_counts)
    if selection is None:
        code, code_bytes = total - len(docs), selected_bytes - sum(r.size for r in docs)
        selection = dict(available=code, over_byte_budget=0, over_max_repos=0, selected=code)
        selection["selected_bytes"] = code_bytes
    selection.update(docs_counts)
    logger.info("data (spark): %d repositories screened after %.1fs", total, time.perf_counter() - started)
    screened.unpersist()

    clusters, duplicates = _near_duplicates(ranked, config, partitions, met)
    logger.info("data (spark): %d near-duplicate clusters after %.1fs", len(clusters), time.perf_counter() - started)
    survivors = ranked.filter(lambda kv: kv[1][3]).map(lambda kv: (kv[0], kv[1][0]))
    survivors = survivors.subtractByKey(duplicates, partitions).values().collect()
    forced = set(ranked.filter(lambda kv: kv[1][6]).map(lambda kv: kv[1][0]).collect())
    docs_names = {name for name in survivors if name.startswith("docs-")}
    heldout = heldout_repositories(
        sorted(survivors), config.heldout_fraction, config.seed, excluded=docs_names, always=forced
    )
    held = context.broadcast(frozenset(heldout))
    digests = ranked.filter(lambda kv: kv[1][0] in held.value).flatMap(lambda kv: pipeline.candidate_digests(kv[1][1]))
    digests = context.broadcast(frozenset(digests.distinct(partitions).collect()))
    items = ranked.map(lambda kv: (kv[0], ("record", kv[1][1]))).union(
        duplicates.map(lambda kv: (kv[0], (kv[1], None)))
    )
    output = str(directory)
    tallies = (
        items.partitionBy(shards, partitionFunc=lambda p: p)
        .mapPartitionsWithIndex(lambda index, part: _write_shard(index, part, output, config, held, digests))
        .collect()
    )
    for rdd in (ranked, duplicates):
        rdd.unpersist()
    tally = Tally()
    for _, shard_tally in sorted(tallies, key=lambda kv: kv[0]):
        tally.merge(shard_tally)
    counts = tally.counts(config, selection, total, clusters, heldout, forced, stage_bytes)
    write_manifest(
        directory,
        config,
        inputs={"source": config.source, "repositories": total},
        counts=counts,
        timings={"wall": round(time.perf_counter() - started, 4)},
    )
    logger.info("data (spark): kept %d of %d files", tally.funnel.kept["files"], tally.funnel.input["files"])
    return pipeline._load_split(directory, "train")


def funnel_side_by_side(scale: Scale | str | None = None, master: str = "local[2]") -> list[dict]:
    """The funnel of the scale's corpus from each engine, built now from the same listing: files and bytes per
    drop reason (and in, kept), local beside Spark; one row saying why when Spark cannot run here."""
    reason = unavailable()
    if reason:
        return [dict(reason=f"not run: {reason}")]
    config = resolve(scale).data
    with tempfile.TemporaryDirectory() as scratch:
        pipeline.build_corpus(config, Path(scratch) / "local")
        build_corpus(replace(config, engine="spark", spark_master=master), Path(scratch) / "spark")
        funnels = [read_manifest(Path(scratch) / engine)["counts"]["funnel"] for engine in ("local", "spark")]
    local, distributed = funnels
    rows = [dict(reason="input", stage="", local=local["input"], spark=distributed["input"])]
    for name in sorted(set(local["dropped"]) | set(distributed["dropped"])):
        stage = REASON_STAGE[name]
        rows.append(
            dict(reason=name, stage=stage, local=local["dropped"].get(name), spark=distributed["dropped"].get(name))
        )
    rows.append(dict(reason="kept", stage="", local=local["kept"], spark=distributed["kept"]))
    return [
        dict(
            reason=row["reason"],
            stage=row["stage"],
            **{
                f"{engine} {unit}": (row[engine] or {}).get(unit, 0)
                for engine in ("local", "spark")
                for unit in ("files", "bytes")
            },
        )
        for row in rows
    ]
