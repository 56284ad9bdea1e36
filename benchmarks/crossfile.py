"""Cross-file benchmark speed (DeepSeek-Coder Table 7; CrossCodeEval), two comparisons in one run:

1. Retrieval: ``dslib.eval.retrieval`` (BM25 postings in numpy, one index per repository) against
   ``rank_bm25.BM25Okapi`` (what CrossCodeEval used) on the same chunks and queries, with the top 5 of
   every query checked identical. Goal: ≥ 10× faster.
2. Building the benchmark (completion points, retrieval, records) from repositories against one pass of the
   data pipeline (``build_corpus``) over the same repositories. Goal: cheaper than the pipeline.

    python benchmarks/crossfile.py [--packages email asyncio ...] [--points 200]

The repositories are real code: standard-library packages, each copied into a folder as one repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from rank_bm25 import BM25Okapi

from dslib.config import CrossFileConfig, DataConfig
from dslib.data.pipeline import build_corpus
from dslib.eval.crossfile import build_benchmark, completion_points
from dslib.eval.retrieval import Retriever, tokens

PACKAGES = ("email", "asyncio", "http", "json", "urllib", "xml", "logging", "concurrent", "importlib", "unittest")


def repositories(names: list[str]) -> dict[str, dict[str, str]]:
    stdlib = Path(json.__file__).parents[1]
    return {
        name: {str(p.relative_to(stdlib)): p.read_text(encoding="utf-8") for p in sorted((stdlib / name).rglob("*.py"))}
        for name in names
    }


def retrieval(repos: dict[str, dict[str, str]], points_per_repo: int) -> dict:
    """Seconds to index each repository and answer its points' queries (ours: top 5 included; rank_bm25's: the
    scores only), and how many top-5 lists agree."""
    ours = reference = 0.0
    queries = same = 0
    chunks = 0
    for files in repos.values():
        points = completion_points(files)[:points_per_repo]
        if not points:
            continue
        start = time.perf_counter()
        retriever = Retriever(files)
        found = [[(c["path"], c["line"]) for c in retriever.retrieve(p)] for p in points]
        ours += time.perf_counter() - start

        documents = [tokens(retriever.text(path, line)) for path, line in retriever.chunks]
        start = time.perf_counter()
        bm25 = BM25Okapi(documents)
        scores = [bm25.get_scores(retriever.query(point["prefix"])) for point in points]
        reference += time.perf_counter() - start  # index and scores only: the ranking below is not timed
        expected = []
        for point, row in zip(points, scores, strict=True):
            allowed = [i for i, (path, _) in enumerate(retriever.chunks) if path != point["path"]]
            expected.append([retriever.chunks[i] for i in sorted(allowed, key=lambda i: (-row[i], i))[:5]])
        chunks += len(retriever.chunks)
        queries += len(points)
        same += sum(a == b for a, b in zip(found, expected, strict=True))
    return dict(chunks=chunks, queries=queries, identical_top5=same, ours_s=ours, rank_bm25_s=reference)


def building(repos: dict[str, dict[str, str]]) -> dict:
    """Seconds to build the benchmark from the repositories, and for one pass of the data pipeline over them."""
    start = time.perf_counter()
    records, counts = build_benchmark(repos, CrossFileConfig(), progress=False)
    bench = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repos"
        for name, files in repos.items():
            for path, text in files.items():
                target = root / name / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        start = time.perf_counter()
        build_corpus(DataConfig(source=str(root), num_proc=1, num_shards=2, heldout_fraction=0.0), Path(tmp) / "out")
        pipeline = time.perf_counter() - start
        shutil.rmtree(root)
    return dict(records=len(records), points=counts.get("points", 0), benchmark_s=bench, pipeline_s=pipeline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES))
    parser.add_argument("--points", type=int, default=200, help="completion points queried per repository")
    args = parser.parse_args()
    repos = repositories(args.packages)
    files = sum(len(f) for f in repos.values())
    size = sum(len(t.encode()) for f in repos.values() for t in f.values())
    print(f"{len(repos)} repositories, {files} files, {size / 1e6:.1f} MB of Python")

    r = retrieval(repos, args.points)
    print("\n| retrieval | chunks | queries | identical top-5 | seconds | queries/s |")
    print("|---|---|---|---|---|---|")
    for name, seconds in (("dslib BM25 (index + queries)", r["ours_s"]), ("rank_bm25 BM25Okapi", r["rank_bm25_s"])):
        same = f"{r['identical_top5']}/{r['queries']}"
        print(f"| {name} | {r['chunks']} | {r['queries']} | {same} | {seconds:.3f} | {r['queries'] / seconds:,.0f} |")
    print(f"speed-up: {r['rank_bm25_s'] / r['ours_s']:.1f}x (goal >= 10x)")

    b = building(repos)
    print("\n| pass over the repositories | seconds |")
    print("|---|---|")
    print(f"| build the cross-file benchmark ({b['points']} points, {b['records']} records) | {b['benchmark_s']:.2f} |")
    print(f"| data pipeline (build_corpus, one process) | {b['pipeline_s']:.2f} |")
    print(f"benchmark / pipeline: {b['benchmark_s'] / b['pipeline_s']:.2f} (goal < 1)")
    if r["identical_top5"] != r["queries"]:
        raise SystemExit("top-5 results differ from rank_bm25")


if __name__ == "__main__":
    main()
