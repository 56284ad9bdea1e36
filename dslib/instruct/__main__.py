"""``python -m dslib.instruct``: fine-tune a Base model on instruction data (DeepSeek-Coder §3.7)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from dslib.config import ConfigError, get_scale
from dslib.instruct.finetune import finetune, heldout_rows, response_loss
from dslib.instruct.template import InstructDataError
from dslib.tokenizer import load_tokenizer
from dslib.training.checkpoint import CheckpointError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dslib.instruct", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--scale", default=None, help="smoke, cpu, gpu or paper (default: $DSLIB_SCALE or smoke)")
    parser.add_argument("--init-from", type=Path, default=None, help="HF model folder (default: the scale's Base)")
    parser.add_argument(
        "--data", default="mbpp", help="a .jsonl file (instruction/output or messages), hf:NAME, or mbpp (default)"
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="default: artifacts/<scale>/instruct/")
    parser.add_argument("--fresh", action="store_true", help="delete the output folder's checkpoints first")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many steps (no export)")
    parser.add_argument("overrides", nargs="*", help="stage.field=value, e.g. instruct.lr=2e-5 instruct.max_steps=100")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        scale = get_scale(args.scale, args.overrides)
        result = finetune(args.init_from, args.data, scale, args.output_dir, not args.fresh, args.stop_after)
    except (ConfigError, CheckpointError, InstructDataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0 or not result.train.metrics:
        return 0
    summary = {"output_dir": str(result.train.output_dir), "hf": str(result.hf) if result.hf else None}
    summary |= {"step": result.train.metrics[-1]["step"], "loss": result.train.metrics[-1]["loss"]}
    summary |= {"examples": result.examples, "skipped": dict(result.skipped)}
    if result.hf is not None:
        tokenizer = load_tokenizer(result.hf)
        rows = heldout_rows(scale)
        for name, model in (("before", result.init_from), ("after", result.hf)):
            loss = response_loss(model, tokenizer, rows, scale.instruct.seq_len)["loss"]
            summary[f"heldout_response_loss_{name}"] = round(loss, 4)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
