"""``python -m dslib.data``: build the corpus at a scale from the Python environment, your repositories, Parquet
shards in The Stack's schema or a hub dataset, on the local engine or Spark; print its funnel (DeepSeek-Coder §2)."""

from __future__ import annotations

import argparse
import sys

from dslib.artifacts import read_manifest
from dslib.config import ConfigError, get_scale
from dslib.data.pipeline import build_corpus_into, corpus_dir
from dslib.data.report import drop_rows, funnel_balances, stage_rows
from dslib.data.spark import SparkUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dslib.data", description=__doc__)
    parser.add_argument("--scale", default=None, help="smoke, cpu, gpu or paper (default: $DSLIB_SCALE or smoke)")
    parser.add_argument(
        "--source",
        default=None,
        help='"python_env", a folder of repositories, "parquet:<path or URL>" or "hub:<dataset>"',
    )
    parser.add_argument(
        "--engine", choices=("local", "spark"), default=None, help="where the stages run (default: local)"
    )
    parser.add_argument("--master", default=None, help="the Spark master URL, e.g. local[2] (default: spark-submit's)")
    parser.add_argument("--output", default=None, help="write the corpus here (atomically) instead of artifacts/")
    parser.add_argument("overrides", nargs="*", help="data.field=value assignments, e.g. data.max_repos=100")
    args = parser.parse_args(argv)
    overrides = list(args.overrides) + [
        f"data.{field}={value}"
        for field, value in [("source", args.source), ("engine", args.engine), ("spark_master", args.master)]
        if value
    ]
    try:
        scale = get_scale(args.scale, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        directory = build_corpus_into(scale.data, args.output) if args.output else corpus_dir(scale)
    except SparkUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    manifest = read_manifest(directory)
    print(f"corpus at scale {scale.name} from {scale.data.source}: {directory}")
    counts = manifest["counts"]
    print(f"documents: repo_level={scale.data.repo_level}; {counts['splits']['train'].get('documents', 0)} in train")
    print(f"held out ({counts['heldout']['rule']}): {', '.join(counts['heldout']['repositories']) or 'none'}")
    for row in stage_rows(manifest):
        print(f"  {row['stage']:<16} {row['files_out']:>8} files {row['bytes_out']:>14,} bytes  {row['retained']:6.1%}")
    print("dropped:")
    for row in drop_rows(manifest):
        print(f"  {row['reason']:<16} {row['files']:>8} files {row['bytes']:>14,} bytes")
    print(f"funnel balances (input = kept + dropped): {funnel_balances(manifest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
