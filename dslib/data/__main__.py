"""``python -m dslib.data``: build the corpus at a scale from the Python environment, your repositories or a hub
dataset, and print its funnel (DeepSeek-Coder §2)."""

from __future__ import annotations

import argparse
import sys

from dslib.config import ConfigError, get_scale
from dslib.data.pipeline import corpus_dir, corpus_manifest
from dslib.data.report import drop_rows, funnel_balances, stage_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dslib.data", description=__doc__)
    parser.add_argument("--scale", default=None, help="smoke, cpu, gpu or paper (default: $DSLIB_SCALE or smoke)")
    parser.add_argument("--source", default=None, help='"python_env", a folder of repositories, or "hub:<dataset>"')
    parser.add_argument("overrides", nargs="*", help="data.field=value assignments, e.g. data.max_repos=100")
    args = parser.parse_args(argv)
    overrides = list(args.overrides) + ([f"data.source={args.source}"] if args.source else [])
    try:
        scale = get_scale(args.scale, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    directory = corpus_dir(scale)
    manifest = corpus_manifest(scale)
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
