"""Evaluate any checkpoint folder the way DeepSeek-Coder §4 does, and put the numbers beside the paper's.

    python -m dslib.eval CHECKPOINT [--device cuda] [--workers 8] [--modes psm spm] [--output results.json]
    python -m dslib.eval CHECKPOINT --tasks table3|table5|table8|NAME,... [--instruct] [--limit N] [--out DIR]
    python -m dslib.eval --score-only DIR/generations.jsonl [--tasks ...]

Without ``--tasks`` it scores HumanEval-Python and single-line infilling (Tables 3 and 6); with ``--tasks`` it
runs the suite of :mod:`dslib.eval.suite` (Tables 3, 5 and 8; task names in :data:`dslib.eval.tasks.TASKS`).

``CHECKPOINT`` is a ``LlamaForCausalLM`` folder with its tokenizer: ``ensure_pretrained()``'s output or a
released ``deepseek-coder-*-base`` download. The defaults are the paper's settings (``EvalConfig()``: all 164
problems and 1033 infilling tasks, greedy, 500 new tokens, 10 s per program).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from dslib import paper
from dslib.config import EvalConfig, get_scale
from dslib.eval import humaneval, infilling, suite
from dslib.eval.generation import load_hf_model
from dslib.eval.tasks import resolve
from dslib.model import Transformer, config_from_hf, to_hf

PAPER_MODELS = {  # released Base models by parameter count, as Tables 3 and 6 name them
    1_346_471_936: "DeepSeek-Coder-Base 1.3B",
    6_740_512_768: "DeepSeek-Coder-Base 6.7B",
    33_342_991_360: "DeepSeek-Coder-Base 33B",
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def paper_model_for(num_parameters: int) -> str:
    """The released Base model nearest in size: the row of Tables 3 and 6 to compare against."""
    return PAPER_MODELS[min(PAPER_MODELS, key=lambda n: abs(n - num_parameters))]


def expected_numbers() -> list[dict]:
    """The paper's numbers for each released Base model: what a faithful run of the command should approach."""
    return [
        {
            "model": model,
            "HumanEval (Python) pass@1, %": paper.TABLE3.get(model, "Python"),
            "single-line infilling, Python line EM, %": paper.TABLE6.get(model, "Python"),
            "source": f"{paper.TABLE3.source}, {paper.TABLE6.source}",
        }
        for model in PAPER_MODELS.values()
    ]


def evaluate_checkpoint(
    path: str | Path,
    config: EvalConfig | None = None,
    modes: tuple[str, ...] = ("psm",),
    device: str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> dict:
    """HumanEval pass@1 and single-line infilling (one entry per FIM mode) of the checkpoint at ``path``."""
    config = config or EvalConfig()
    start = time.perf_counter()
    model, tokenizer = load_hf_model(path, device, dtype)
    result = {
        "checkpoint": str(path),
        "parameters": model.num_parameters(),
        "device": str(next(model.parameters()).device),
        "config": dataclasses.asdict(config),
        "humaneval": humaneval.evaluate_model(model, tokenizer, config, k=(1,), progress=progress),
        "infilling": {
            mode: infilling.evaluate_infilling(model, tokenizer, mode=mode, config=config, progress=progress)
            for mode in modes
        },
    }
    result["seconds"] = time.perf_counter() - start
    return result


def paper_rows(result: dict, model: str | None = None) -> list[dict]:
    """Result rows (``metric``, ``ours``, ``paper``, ``source``, ``note``) beside Tables 3 and 6, in percent."""
    model = model or paper_model_for(result["parameters"])
    he = result["humaneval"]
    rows = [
        {
            "metric": "HumanEval (Python) pass@1, %",
            "ours": round(100 * he["pass@1"], 1),
            "paper": paper.TABLE3.get(model, "Python"),
            "source": f"{paper.TABLE3.source}, {model}",
            "note": f"{he['problems']} of 164 problems, greedy, {result['config']['max_new_tokens']} new tokens",
        }
    ]
    for mode, fim in result["infilling"].items():
        rows.append(
            {
                "metric": f"single-line infilling exact match ({mode.upper()}), %",
                "ours": round(100 * fim["exact_match"], 1),
                "paper": paper.TABLE6.get(model, "Python"),
                "source": f"{paper.TABLE6.source}, {model}",
                "note": f"{fim['tasks']} of 1033 HumanEval tasks; the paper's Python column is SantaCoder's "
                "single-line benchmark (MultiPL-E), comparable in kind only",
            }
        )
        rows.append(
            {
                "metric": f"single-line infilling pass@1 ({mode.upper()}), %",
                "ours": round(100 * fim["pass@1"], 1),
                "paper": round(100 * paper.BAVARIAN_SINGLE_LINE.get("joint, FIM 0.5", mode.upper()), 1),
                "source": f"{paper.BAVARIAN_SINGLE_LINE.source}, joint FIM 0.5",
                "note": "same 1033-task benchmark; Bavarian et al.'s large model with 100 samples at T=0.2",
            }
        )
    return rows


def markdown_table(rows: list[dict], columns: tuple[str, ...] | None = None) -> str:
    """Rows of dicts as a Markdown table (missing cells shown as –)."""
    columns = columns or tuple(dict.fromkeys(k for row in rows for k in row))
    cell = lambda v: "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|"))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def random_checkpoint(path: str | Path, like: str | Path, seed: int = 0) -> Path:
    """A random-weight checkpoint with the config and tokenizer of the folder ``like``, in the same format."""
    path, like = Path(path), Path(like)
    config = config_from_hf(json.loads((like / "config.json").read_text()))
    torch.manual_seed(seed)
    to_hf(Transformer(config), path)
    for name in TOKENIZER_FILES:
        if (like / name).exists():
            shutil.copy(like / name, path / name)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dslib.eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", help="a LlamaForCausalLM folder with tokenizer files")
    parser.add_argument("--tasks", help="table3, table5, table8 or task names, comma-separated (the suite)")
    parser.add_argument("--instruct", action="store_true", help="prompt in the Instruct models' chat format")
    parser.add_argument("--limit", type=int, help="suite: score this many problems per task, spread evenly")
    parser.add_argument("--score-only", type=Path, help="suite: re-score this generations.jsonl, no model")
    parser.add_argument("--out", type=Path, help="suite: folder for generations, results and table")
    parser.add_argument("--scale", help="take the evaluation settings of this scale (default: the paper's)")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), help="default: bf16 on CUDA, as stored on CPU")
    parser.add_argument("--modes", nargs="+", default=["psm"], choices=("psm", "spm"), help="FIM prompt formats")
    parser.add_argument("--humaneval-limit", type=int, help="score this many problems, spread over the 164")
    parser.add_argument("--infilling-limit", type=int, help="score this many tasks, spread over the 1033")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int, help="programs executed in parallel")
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--output", type=Path, help="also write every sample and verdict here as JSON")
    args = parser.parse_args(argv)
    suite_mode = args.tasks is not None or args.score_only is not None
    if args.score_only is None and args.checkpoint is None:
        parser.error("give a CHECKPOINT folder (or --score-only FILE)")
    if args.score_only is None and not (args.checkpoint / "config.json").is_file():
        parser.error(f"{args.checkpoint} holds no config.json: not a checkpoint folder")
    config = get_scale(args.scale).eval if args.scale else EvalConfig()
    overrides = {
        "humaneval_limit": args.humaneval_limit,
        "infilling_limit": args.infilling_limit,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "max_new_tokens": args.max_new_tokens,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(args.dtype)
    if suite_mode:
        try:
            names = resolve(args.tasks) if args.tasks else None
        except (KeyError, ValueError) as err:
            parser.error(str(err.args[0]))
        try:
            return _suite(args, names, config, dtype)
        except (FileNotFoundError, ValueError) as err:  # a bad checkpoint folder or generations file
            parser.error(str(err))
    result = evaluate_checkpoint(args.checkpoint, config, tuple(args.modes), args.device, dtype)
    print(markdown_table(paper_rows(result), ("metric", "ours", "paper", "source", "note")))
    print(f"\n{result['parameters']:,} parameters on {result['device']}, {result['seconds']:.0f} s")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2, default=str))
    return 0


def _suite(args: argparse.Namespace, names: list[str] | None, config: EvalConfig, dtype) -> int:
    """``--tasks`` / ``--score-only``: the suite's generations, verdicts and table in ``--out``."""
    if args.out is None:
        args.out = args.score_only.parent if args.score_only else Path("eval-runs") / args.checkpoint.resolve().name
    # The repository's lengths per task, unless a scale or --max-new-tokens sets them.
    paper_lengths = args.scale is None and args.max_new_tokens is None
    result = suite.evaluate(
        args.checkpoint,
        names,
        args.out,
        config,
        args.instruct,
        args.limit,
        paper_lengths,
        args.device,
        dtype,
        args.score_only,
    )
    table = markdown_table(result["rows"], ("task", "ours", "paper", "source", "note"))
    suite.write_scores(args.out, result["scores"], result["results"], result["rows"], table)
    print(table)
    print(f"\ngenerations: {result['generations']}; verdicts, scores and table in {args.out}")
    return 0
