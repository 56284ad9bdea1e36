"""Throughput of each data stage (DeepSeek-Coder §2), and near-dedup against the fastest MinHash libraries.

    python benchmarks/data_pipeline.py [--quick] [--scale smoke]

Part 1 builds the scale's default corpus in one process and prints MB/s per stage (the bytes that enter
a stage over the seconds spent in it). Part 2 runs near-dedup end to end, texts to clusters, on 300
standard-library modules plus 150 planted forks of them (every k-th line edited), with
``dslib.data.dedup.near_duplicate_clusters`` and with two libraries used as their documentation shows:
datasketch (``MinHash.bulk`` and ``MinHashLSH``) and rensa (``RMinHash.from_token_sets`` and
``RMinHashLSH``), both fed the word 5-gram strings of ``dedup.shingles``, all with 256 permutations,
threshold 0.7, candidates confirmed by their estimated Jaccard and joined transitively. Each is checked
against exact Jaccard: the estimate's error on the planted pairs and on random pairs, and the recall and
false pairs of its clusters over every pair of the 450 texts.

Part 3 (:func:`quality_and_decontam_cost`) splits the corpus back into files and times, on the same files in
the same run, the quality screening of before issue 19 (the compiler check alone) against the whole stage
(compiler, heuristic rules, quality model), and decontamination against HumanEval alone against every shipped
benchmark, with the share of these (clean, released) files each flags.

Part 4 (``--spark``) runs the local engine and the Spark engine (``local[2]``) on the same Parquet input in
The Stack's schema: the scale's selected repositories replicated 1×, 4× and 16× (``--factors``) with perturbed
text, each build in a fresh process; it prints seconds, the Spark/local ratio, and the peak memory of the
driver (the Python process, and Spark's JVM), and plots seconds against input size to ``figures/``.

    python benchmarks/data_pipeline.py --spark [--scale cpu] [--factors 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import matplotlib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rensa
from datasketch import MinHash, MinHashLSH

from dslib.artifacts import figure_path
from dslib.config import get_scale
from dslib.data import pipeline, spark
from dslib.data.decontam import Decontaminator
from dslib.data.dedup import clusters_from_signatures, estimated_jaccard, minhash_signatures, shingles
from dslib.data.pipeline import build_corpus
from dslib.data.quality import quality_reason, syntax_error_reason
from dslib.data.sources import read_text
from dslib.tokenizer import split_sample

THRESHOLD, NUM_PERM = 0.7, 256
DATASKETCH = "datasketch bulk + MinHashLSH"

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def stage_throughput(config, directory: Path) -> tuple[list[str], object]:
    start = time.perf_counter()
    train = build_corpus(config, directory)
    wall = time.perf_counter() - start
    manifest = json.loads((directory / "manifest.json").read_text())
    timings, stage_bytes = manifest["timings"], manifest["counts"]["stage_bytes"]
    lines = [f"{'stage':<12} {'MB in':>8} {'seconds':>8} {'MB/s':>8}"]
    for stage in ("crawl", "language", "rule_filter", "dependency", "near_dedup", "quality", "decontam"):
        mb, seconds = stage_bytes.get(stage, 0) / 1e6, timings.get(stage, 0.0)
        lines.append(f"{stage:<12} {mb:>8.2f} {seconds:>8.2f} {mb / max(seconds, 1e-9):>8.2f}")
    total_mb = manifest["counts"]["funnel"]["input"]["bytes"] / 1e6
    lines.append(f"{'listing':<12} {'':>8} {timings['listing']:>8.2f}")
    lines.append(
        f"{'whole run':<12} {total_mb:>8.2f} {wall:>8.2f} {total_mb / wall:>8.2f}   (input bytes, one process)"
    )
    return lines, train


def stdlib_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` standard-library modules of 2–40 KB (tests excluded), in a seeded order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if 2_000 <= p.stat().st_size <= 40_000 and "test" not in p.parts)
    random.Random(seed).shuffle(files)
    return [p.read_text(encoding="utf-8", errors="replace") for p in files[:count]]


def plant(texts: list[str], count: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """``texts`` and ``count`` forks of some of them with every k-th line edited, and the (original, fork) pairs."""
    rng = random.Random(seed)
    out, planted = list(texts), []
    for a in rng.sample(range(len(texts)), count):
        every = rng.choice([2, 3, 5, 8, 12, 20, 50])
        lines = texts[a].splitlines()
        out.append("\n".join(line + " # edited" if i % every == 0 else line for i, line in enumerate(lines)))
        planted.append((a, len(out) - 1))
    return out, planted


def exact_jaccard(texts: list[str]) -> dict[tuple[int, int], float]:
    """Exact Jaccard of the word 5-gram sets of every pair that shares one (the others have 0)."""
    sets = [shingles(t) for t in texts]
    holders: dict[str, list[int]] = {}
    for i, s in enumerate(sets):
        for shingle in s:
            holders.setdefault(shingle, []).append(i)
    shared: dict[tuple[int, int], int] = {}
    for docs in holders.values():
        for pair in combinations(docs, 2):
            shared[pair] = shared.get(pair, 0) + 1
    return {(i, j): c / (len(sets[i]) + len(sets[j]) - c) for (i, j), c in shared.items()}


def union(n: int, pairs) -> list[list[int]]:
    """Clusters of two or more of ``n`` items joined transitively by ``pairs``."""
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in pairs:
        parent[max(root(i), root(j))] = min(root(i), root(j))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def lsh_clusters(minhashes, lsh) -> list[list[int]]:
    """A library's LSH used as its documentation shows: insert each, query before inserting, confirm, join."""
    pairs = []
    for i, minhash in enumerate(minhashes):
        pairs += [(j, i) for j in lsh.query(minhash) if minhash.jaccard(minhashes[j]) >= THRESHOLD]
        lsh.insert(i, minhash)
    return union(len(minhashes), pairs)


def run_dslib(texts):
    signatures = minhash_signatures(texts, NUM_PERM)  # near_duplicate_clusters, keeping the signatures
    clusters = clusters_from_signatures(signatures, THRESHOLD)
    return clusters, lambda i, j: estimated_jaccard(signatures[i], signatures[j])


def run_datasketch(texts):
    minhashes = MinHash.bulk([[s.encode() for s in shingles(t)] for t in texts], num_perm=NUM_PERM)
    clusters = lsh_clusters(minhashes, MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM))  # its bands: 25 x 10
    return clusters, lambda i, j: minhashes[i].jaccard(minhashes[j])


def run_rensa(texts):
    minhashes = rensa.RMinHash.from_token_sets([list(shingles(t)) for t in texts], NUM_PERM, 1)
    # Its bands must divide the permutations: 32 x 8 is the split nearest the 0.7 threshold.
    clusters = lsh_clusters(minhashes, rensa.RMinHashLSH(THRESHOLD, NUM_PERM, 32))
    return clusters, lambda i, j: minhashes[i].jaccard(minhashes[j])


def best_seconds(function: Callable, *args, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def dedup_comparison(count: int = 300, forks: int = 150, random_pairs: int = 150) -> list[str]:
    texts, planted = plant(stdlib_texts(count), forks)
    exact = exact_jaccard(texts)
    near = {p for p, j in exact.items() if j >= THRESHOLD}
    rng = random.Random(1)
    others = [tuple(sorted(rng.sample(range(len(texts)), 2))) for _ in range(random_pairs)]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    total = sum(len(shingles(t)) for t in texts)
    shingle_sets = [list(shingles(t)) for t in texts]
    lines = [
        f"{len(texts)} texts ({count} standard-library modules, {forks} planted forks), {mb:.2f} MB, "
        f"{total:,} distinct 5-grams, {NUM_PERM} permutations, threshold {THRESHOLD}; best of 3",
        f"{len(near)} pairs have exact Jaccard >= {THRESHOLD} "
        f"({sum(exact.get(p, 0) >= THRESHOLD for p in planted)} of the planted pairs, the others natural)",
        f"{'end to end, texts -> clusters':<34} {'seconds':>8} {'MB/s':>7} {'planted |err|':>14} {'random |err|':>13} "
        f"{'recall':>12} {'false pairs':>12}",
    ]
    seconds = {}
    for name, run in (("dslib", run_dslib), (DATASKETCH, run_datasketch), ("rensa", run_rensa)):
        run(texts[:4])  # warm up: imports, permutations, the code-point table
        seconds[name] = best_seconds(lambda run=run: run(texts)[0])
        clusters, estimate = run(texts)
        together = {p for c in clusters for p in combinations(sorted(c), 2)}
        planted_err = np.array([abs(estimate(i, j) - exact.get((i, j), 0.0)) for i, j in planted])
        random_err = np.array([abs(estimate(i, j) - exact.get((i, j), 0.0)) for i, j in others])
        false = sum(exact.get(p, 0.0) < THRESHOLD for p in together)
        lines.append(
            f"{name:<34} {seconds[name]:>8.3f} {mb / seconds[name]:>7.1f} "
            f"{planted_err.mean():>6.4f} ({planted_err.max():.3f}) {random_err.mean():>5.4f} ({random_err.max():.3f}) "
            f"{len(near & together):>5}/{len(near):<6} {false:>5}/{len(together):<6}"
        )
    shingling = best_seconds(lambda: [shingles(t) for t in texts])
    kernel = best_seconds(lambda: rensa.RMinHash.from_token_sets(shingle_sets, NUM_PERM, 1))
    lines += [
        f"{'  Python shingling alone':<34} {shingling:>8.3f}   (regex words, joined 5-grams; in both libraries' rows)",
        f"{'  rensa signatures, shingles given':<34} {kernel:>8.3f}",
        f"dslib: {seconds[DATASKETCH] / seconds['dslib']:.1f}x faster than datasketch (target >= 5x); "
        f"dslib / rensa time: {seconds['dslib'] / seconds['rensa']:.2f} (target <= 1.5)",
        "|err|: mean (max) of |estimate - exact Jaccard|; recall: pairs at >= 0.7 put in one cluster; false pairs: "
        "pairs in one cluster below 0.7",
    ]
    return lines


STACK = pa.schema([(c, pa.string()) for c in ("max_stars_repo_name", "max_stars_repo_path", "lang")]).append(
    pa.field("content", pa.binary())
)


def replicated_stack(config, factor: int, directory: Path) -> int:
    """The scale's selected repositories as The Stack's rows, ``factor`` copies (copy r > 0: every second line
    of a text file tagged with r, so copies are not near-duplicates); one shard per copy. Returns input bytes."""
    repos, _ = pipeline._repositories(config)
    directory.mkdir(parents=True)
    total = 0
    for copy in range(factor):
        rows = []
        for repo in repos:
            for file in repo.files:
                text, _, _ = read_text(file, config.max_file_bytes)
                if text is None:
                    continue
                if copy:
                    text = "\n".join(f"{line} r{copy}" if i % 2 else line for i, line in enumerate(text.split("\n")))
                content = text.encode("utf-8", "surrogatepass")
                rows.append(dict(max_stars_repo_name=f"{repo.name}~{copy}", max_stars_repo_path=file.path,
                                 lang=None, content=content))  # fmt: skip
                total += len(content)
        pq.write_table(pa.Table.from_pylist(rows, schema=STACK), directory / f"copy-{copy:03d}.parquet")
    return total


def run_engine(engine: str, source: Path, output: Path, scale: str) -> dict:
    """One build in this process (called in a fresh one): seconds, start-up seconds, peak driver memory."""
    config = replace(get_scale(scale).data, source=f"parquet:{source}", engine=engine, num_proc=2)
    config = replace(config, max_repos=None, max_total_bytes=None)  # every copy, not a budget's worth
    start = time.perf_counter()
    session = spark.session("local[2]") if engine == "spark" else None
    started = time.perf_counter()
    pipeline.build_corpus(config, output) if session is None else spark.build_corpus(config, output, spark=session)
    result = dict(startup=started - start, seconds=time.perf_counter() - started)
    result["python_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if session is not None:
        pid = session.sparkContext._gateway.proc.pid
        status = Path(f"/proc/{pid}/status").read_text()
        result["jvm_peak_mb"] = int(next(li for li in status.splitlines() if li.startswith("VmHWM")).split()[1]) / 1024
    manifest = json.loads((output / "manifest.json").read_text())
    result["counts"] = manifest["counts"]["funnel"]
    return result


def spark_scaling(scale: str, factors: list[int], workdir: Path) -> list[str]:
    """Spark local[2] against the local engine on the same replicated Parquet input; a plot of seconds vs size."""
    config = get_scale(scale).data
    rows = []
    for factor in factors:
        source = workdir / f"stack-{factor}"
        mb = replicated_stack(config, factor, source) / 1e6
        runs = {}
        for engine in ("local", "spark"):
            command = [
                sys.executable,
                __file__,
                "--run-engine",
                engine,
                str(source),
                str(workdir / f"{engine}-{factor}"),
            ]
            done = subprocess.run(command + ["--scale", scale], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{engine} at {factor}x failed:\n{done.stderr[-3000:]}")
            runs[engine] = json.loads(done.stdout.strip().splitlines()[-1])
        assert runs["local"].pop("counts") == runs["spark"].pop("counts"), "the engines' funnels differ"
        rows.append((factor, mb, runs["local"], runs["spark"]))
    lines = [
        f"{'input':>6} {'MB':>7} {'local s':>8} {'spark s':>8} {'spark start s':>13} {'spark/local':>11} "
        f"{'local py MB':>11} {'spark py MB':>11} {'spark JVM MB':>12}"
    ]
    for factor, mb, local, distributed in rows:
        lines.append(
            f"{factor:>5}x {mb:>7.1f} {local['seconds']:>8.1f} {distributed['seconds']:>8.1f} "
            f"{distributed['startup']:>13.1f} {distributed['seconds'] / local['seconds']:>11.2f} "
            f"{local['python_peak_mb']:>11.0f} {distributed['python_peak_mb']:>11.0f} "
            f"{distributed['jvm_peak_mb']:>12.0f}"
        )
    figure, axis = plt.subplots(figsize=(5, 3.5))
    sizes = [mb for _, mb, _, _ in rows]
    for engine, index in (("local engine", 2), ("Spark local[2]", 3)):
        axis.plot(sizes, [row[index]["seconds"] for row in rows], "o-", label=engine)
    axis.plot(sizes, [rows[0][3]["seconds"] * mb / sizes[0] for mb in sizes], ":", color="grey", label="linear")
    axis.set(xlabel="input MB (replicated corpus)", ylabel="seconds (after start-up)", xscale="log", yscale="log")
    axis.legend()
    figure.tight_layout()
    path = figure_path(scale, "data_spark_scaling.png")
    figure.savefig(path, dpi=120)
    lines.append(f"figure: {path}")
    return lines


MODEL_THRESHOLD = 0.1  # the quality model's threshold in notebook 01's hand-checked sample


def _best_of(runs: int, work) -> tuple[float, list]:
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        out = work()
        best = min(best, time.perf_counter() - start)
    return best, out


def quality_and_decontam_cost(train, config, runs: int = 3) -> list[str]:
    """Seconds per MB of quality screening and decontamination, before and after issue 19, on the same files."""
    files = [
        (path, text, language)
        for row in train
        if row["source"] == "code"
        for path, text, language in zip(
            row["paths"], split_sample(row["text"], row["paths"], row["languages"]), row["languages"], strict=True
        )
    ]
    mb = sum(len(text.encode()) for _, text, _ in files) / 1e6
    rules = replace(config, quality_model_threshold=0.0)
    model = replace(config, quality_model_threshold=config.quality_model_threshold or MODEL_THRESHOLD)
    quality_reason(*files[0], model)  # load the model and the grammars outside the clock
    before, _ = _best_of(runs, lambda: [syntax_error_reason(p, t, lang) for p, t, lang in files])
    after, reasons = _best_of(runs, lambda: [quality_reason(p, t, lang, rules) for p, t, lang in files])
    with_model, scored = _best_of(runs, lambda: [quality_reason(p, t, lang, model) for p, t, lang in files])
    humaneval = Decontaminator.from_benchmarks(benchmarks=("humaneval-python",))
    every = Decontaminator.from_benchmarks()
    texts = [text for _, text, _ in files]
    one, hits_one = _best_of(runs, lambda: [humaneval.find(t) for t in texts])
    all_, hits_all = _best_of(runs, lambda: [every.find(t) for t in texts])
    flagged, flagged_model = sum(r is not None for r in reasons), sum(r is not None for r in scored)
    return [
        f"{len(files)} code files, {mb:.2f} MB (best of {runs} runs)",
        f"{'':<44} {'ms/MB':>8} {'flagged':>8}",
        f"{'quality: compiler check only (before)':<44} {1e3 * before / mb:>8.1f}",
        f"{'quality: compiler + heuristic rules':<44} {1e3 * after / mb:>8.1f} {flagged / len(files):>8.2%}",
        f"{f'quality: + model at {model.quality_model_threshold}':<44} {1e3 * with_model / mb:>8.1f} "
        f"{flagged_model / len(files):>8.2%}",
        f"quality cost ratio: rules {after / before:.2f}x, rules + model {with_model / before:.2f}x (target <= 1.5x)",
        f"{'decontam: HumanEval (Python) only (before)':<44} {1e3 * one / mb:>8.1f} "
        f"{sum(h is not None for h in hits_one) / len(files):>8.2%}",
        f"{f'decontam: every shipped benchmark ({len(every)} strings)':<44} {1e3 * all_ / mb:>8.1f} "
        f"{sum(h is not None for h in hits_all) / len(files):>8.2%}",
        f"decontam cost ratio: {all_ / one:.2f}x; what it flags in these released packages: "
        + ", ".join(sorted({str(h) for h in hits_all if h})[:8]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 3 MB corpus for the stage throughput")
    parser.add_argument("--scale", default="smoke", help="whose data config to use (default smoke)")
    parser.add_argument("--spark", action="store_true", help="part 4 only: Spark local[2] against the local engine")
    parser.add_argument("--factors", default="1,4,16", help="input sizes for --spark, in copies of the corpus")
    parser.add_argument("--run-engine", nargs=3, metavar=("ENGINE", "SOURCE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_engine:
        engine, source, output = args.run_engine
        print(json.dumps(run_engine(engine, Path(source), Path(output), args.scale)))
        return
    if args.spark:
        with tempfile.TemporaryDirectory() as tmp:
            factors = [int(f) for f in args.factors.split(",")]
            print("\n".join([f"Spark local[2] vs the local engine ({args.scale} corpus replicated):"]))
            print("\n".join(spark_scaling(args.scale, factors, Path(tmp))))
        return
    config = replace(get_scale(args.scale).data, num_proc=1)
    if args.quick:
        config = replace(config, max_total_bytes=3_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        lines, train = stage_throughput(config, Path(tmp))
        print("\n".join(["Stage throughput, default corpus (one process):", *lines, ""]))
        quality = quality_and_decontam_cost(train, config)
        print("\n".join(["Quality screening and decontamination (issue 19):", *quality, ""]))
    print("\n".join(["Near-dedup against the libraries (one process):", *dedup_comparison()]))


if __name__ == "__main__":
    main()
