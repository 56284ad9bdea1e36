"""Throughput of each data stage (DeepSeek-Coder §2) and vectorised MinHash against datasketch.

    python benchmarks/data_pipeline.py [--quick] [--scale smoke]

Part 1 builds the scale's default corpus in one process and prints MB/s per stage (the bytes that enter
a stage over the seconds spent in it). Part 2 computes the MinHash signatures of the corpus's repository
samples with ``dslib.data.dedup.minhash_signatures`` and with datasketch's per-document loop of
``MinHash.update`` (one call per shingle, its default SHA-1 hash), and checks both estimates against the
exact Jaccard similarity of sampled pairs: each sample against a copy with every k-th line edited (so the
pairs span high and low similarity) and against other samples.

Part 3 (``--spark``) runs the local engine and the Spark engine (``local[2]``) on the same Parquet input in
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
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash

from dslib.artifacts import figure_path
from dslib.config import get_scale
from dslib.data import pipeline, spark
from dslib.data.dedup import estimated_jaccard, minhash_signatures, shingles
from dslib.data.pipeline import build_corpus
from dslib.data.sources import read_text

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


def datasketch_loop(texts: list[str], num_perm: int, seed: int) -> list[MinHash]:
    minhashes = []
    for text in texts:
        minhash = MinHash(num_perm=num_perm, seed=seed)
        for shingle in shingles(text):
            minhash.update(shingle.encode())
        minhashes.append(minhash)
    return minhashes


def minhash_comparison(texts: list[str], num_perm: int, pairs: int, seed: int = 1) -> list[str]:
    minhash_signatures(texts[:1], num_perm=num_perm, seed=seed)  # warm both up (permutations, numpy, caches)
    datasketch_loop(texts[:1], num_perm, seed)
    start = time.perf_counter()
    ours = minhash_signatures(texts, num_perm=num_perm, seed=seed)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference = datasketch_loop(texts, num_perm, seed)
    reference_seconds = time.perf_counter() - start
    mb = sum(len(t.encode()) for t in texts) / 1e6
    count = sum(len(shingles(t)) for t in texts)
    lines = [
        f"{len(texts)} repository samples, {mb:.2f} MB, {count:,} distinct shingles, {num_perm} permutations",
        f"{'':<34} {'seconds':>8} {'MB/s':>8} {'µs/shingle':>11}",
        f"{'datasketch MinHash.update loop':<34} {reference_seconds:>8.2f} {mb / reference_seconds:>8.2f} "
        f"{1e6 * reference_seconds / count:>11.2f}",
        f"{'dslib minhash_signatures':<34} {ours_seconds:>8.2f} {mb / ours_seconds:>8.2f} "
        f"{1e6 * ours_seconds / count:>11.2f}",
        f"speed-up: {reference_seconds / ours_seconds:.1f}x (target >= 10x)",
    ]
    rng = random.Random(0)
    errors_ours, errors_reference, exacts = [], [], []
    for _ in range(pairs):
        a = rng.randrange(len(texts))
        if rng.random() < 0.75:  # a fork of the same sample, edited every k-th line
            every = rng.choice([2, 3, 5, 10, 20, 50])
            lines_a = texts[a].splitlines()
            b_text = "\n".join(line + " # edited" if i % every == 0 else line for i, line in enumerate(lines_a))
        else:
            b_text = texts[rng.randrange(len(texts))]
        exact_a, exact_b = shingles(texts[a]), shingles(b_text)
        exact = len(exact_a & exact_b) / len(exact_a | exact_b)
        signature_b = minhash_signatures([b_text], num_perm=num_perm, seed=seed)[0]
        reference_b = datasketch_loop([b_text], num_perm, seed)[0]
        exacts.append(exact)
        errors_ours.append(abs(estimated_jaccard(ours[a], signature_b) - exact))
        errors_reference.append(abs(reference[a].jaccard(reference_b) - exact))
    lines.append(f"Jaccard on {pairs} sampled pairs (exact values {min(exacts):.2f}–{max(exacts):.2f}):")
    lines.append(f"{'':<34} {'mean |err|':>10} {'95th pct':>9} {'max':>7} {'within 0.05':>12}")
    for name, errors in (("datasketch", errors_reference), ("dslib", errors_ours)):
        errors = np.array(errors)
        lines.append(
            f"{name:<34} {errors.mean():>10.4f} {np.percentile(errors, 95):>9.4f} {errors.max():>7.4f} "
            f"{np.mean(errors <= 0.05):>11.0%}"
        )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 3 MB corpus and fewer pairs")
    parser.add_argument("--scale", default="smoke", help="whose data config to use (default smoke)")
    parser.add_argument("--spark", action="store_true", help="part 3 only: Spark local[2] against the local engine")
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
        texts = train["text"]
    print(
        "\n".join(["MinHash signatures:", *minhash_comparison(texts, config.dedup_num_perm, 40 if args.quick else 120)])
    )


if __name__ == "__main__":
    main()
