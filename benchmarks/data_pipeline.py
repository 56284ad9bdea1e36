"""Throughput of each data stage (DeepSeek-Coder §2) and vectorised MinHash against datasketch.

    python benchmarks/data_pipeline.py [--quick] [--scale smoke]

Part 1 builds the scale's default corpus in one process and prints MB/s per stage (the bytes that enter
a stage over the seconds spent in it). Part 2 computes the MinHash signatures of the corpus's repository
samples with ``dslib.data.dedup.minhash_signatures`` and with datasketch's per-document loop of
``MinHash.update`` (one call per shingle, its default SHA-1 hash), and checks both estimates against the
exact Jaccard similarity of sampled pairs: each sample against a copy with every k-th line edited (so the
pairs span high and low similarity) and against other samples.

Part 3 (:func:`quality_and_decontam_cost`) splits the corpus back into files and times, on the same files in
the same run, the quality screening of before issue 19 (the compiler check alone) against the whole stage
(compiler, heuristic rules, quality model), and decontamination against HumanEval alone against every shipped
benchmark, with the share of these (clean, released) files each flags.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from datasketch import MinHash

from dslib.config import get_scale
from dslib.data.decontam import Decontaminator
from dslib.data.dedup import estimated_jaccard, minhash_signatures, shingles
from dslib.data.pipeline import build_corpus
from dslib.data.quality import quality_reason, syntax_error_reason
from dslib.tokenizer import split_sample


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
    parser.add_argument("--quick", action="store_true", help="a 3 MB corpus and fewer pairs")
    parser.add_argument("--scale", default="smoke", help="whose data config to use (default smoke)")
    args = parser.parse_args()
    config = replace(get_scale(args.scale).data, num_proc=1)
    if args.quick:
        config = replace(config, max_total_bytes=3_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        lines, train = stage_throughput(config, Path(tmp))
        print("\n".join(["Stage throughput, default corpus (one process):", *lines, ""]))
        print(
            "\n".join(["Quality screening and decontamination (issue 19):", *quality_and_decontam_cost(train, config)])
        )
        print()
        texts = train["text"]
    print(
        "\n".join(["MinHash signatures:", *minhash_comparison(texts, config.dedup_num_perm, 40 if args.quick else 120)])
    )


if __name__ == "__main__":
    main()
