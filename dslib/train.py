"""Pretraining (DeepSeek-Coder §3.4–3.6): the training loop, ``torchrun`` DDP / FSDP2, exact resume, long context.

What the paper fixes, and where the value lives (``dslib.config.TrainConfig``):

- AdamW with β1 0.9, β2 0.95 (§3.4); weight decay 0.1 and gradient clipping at 1.0 come from DeepSeek LLM
  §2.3, since the Coder paper does not state them. Decay applies to the weight matrices (embeddings, projections,
  output head) and not to the RMSNorm gains, the usual GPT / LLaMA practice.
- Warm-up, then the multi-step schedule: × √(1/10) at 80% of the tokens, × 1/10 at 90% (``dslib.training.schedule``).
- A global batch of sequences per step, reached by gradient accumulation over micro-batches on each process.
- bf16 autocast on CUDA (FlashAttention-2 needs half precision), fp32 on the CPU.
- Long-context stage (§3.6, ``dslib.config.LongContextConfig``): from the pretrained weights, linear RoPE scaling
  factor 4, ``rope_theta`` 100000, 4× the sequence length, at the final pretraining learning rate
  (:func:`long_context_scale`).
- Instruction tuning (§3.7, ``dslib.instruct``) is the ``"instruct"`` stage: from an HF Base folder, on its own
  :class:`DataSource` of labelled batches (loss on the responses only), with ``TrainConfig.lr_schedule="cosine"``.

The components the loop uses live in ``dslib.training``: the schedule, checkpoints, metrics, the process group.

Run it as ``python -m dslib.train --scale smoke`` or, on several devices,
``torchrun --nproc_per_node 8 -m dslib.train --scale paper train.distributed=fsdp``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from tqdm.auto import tqdm

from dslib.artifacts import artifact_dir, fingerprint, is_complete, write_manifest
from dslib.config import ConfigError, ModelConfig, Scale, TrainConfig, get_scale, resolve, result_fields
from dslib.model import Transformer, to_hf
from dslib.packing import packed_dataset
from dslib.tokenizer import ensure_tokenizer, save_tokenizer
from dslib.training import checkpoint as ckpt
from dslib.training.batches import DataSource, labelled_batch_loss, labelled_token_loss, next_token_loss
from dslib.training.metrics import METRICS_FILE, MetricsLog, flops_per_token, peak_flops, plot_metrics, read_metrics
from dslib.training.parallel import autocast, gradient_sync, init_distributed, parallelize, rank_and_world
from dslib.training.schedule import learning_rate
from dslib.training.synthetic import SyntheticStream

__all__ = [
    "DataSource",
    "NonFiniteLossError",
    "SyntheticStream",
    "TrainResult",
    "TrainRun",
    "accumulation_steps",
    "build_optimizer",
    "ensure_pretrained",
    "export_hf",
    "flops_per_token",
    "labelled_token_loss",
    "long_context_scale",
    "main",
    "next_token_loss",
    "peak_flops",
    "plot_metrics",
    "read_metrics",
    "train",
]

log = logging.getLogger(__name__)

STAGES = ("pretrain", "long_context", "instruct")
DATA_SOURCES = ("corpus", "synthetic")


class NonFiniteLossError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradient norm."""


@dataclass(frozen=True)
class TrainRun:
    """One training run: the scale's configs plus where it writes and how it starts.

    ``data="synthetic"`` trains on :class:`SyntheticStream` instead of the packed corpus, for
    the golden curve, the multi-process test and the benchmark. ``stop_after`` ends the run after that many
    steps without a final checkpoint, as a pre-emption would (the resume demonstration uses it).
    """

    scale: Scale
    output_dir: Path | None = None  # None = artifacts/<scale>/<stage>/
    resume: bool = True  # continue from the newest valid checkpoint in output_dir; False deletes them
    stage: str = "pretrain"  # "pretrain", "long_context" (§3.6) or "instruct" (§3.7)
    init_from: Path | None = None  # checkpoint or HF folder to start from (long_context: pretraining's newest)
    data: str | DataSource = "corpus"
    stop_after: int | None = None
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.scale, Scale):
            object.__setattr__(self, "scale", resolve(self.scale))
        if self.stage not in STAGES:
            raise ConfigError(f"TrainRun.stage={self.stage!r} is not valid; choose one of: {', '.join(STAGES)}")
        if isinstance(self.data, str) and self.data not in DATA_SOURCES:
            raise ConfigError(f"TrainRun.data={self.data!r} is not valid; choose one of: {', '.join(DATA_SOURCES)}")

    @property
    def stage_scale(self) -> Scale:
        """The scale with this stage's model and training config (long context: :func:`long_context_scale`)."""
        return long_context_scale(self.scale) if self.stage == "long_context" else self.scale

    @property
    def directory(self) -> Path:
        return Path(self.output_dir) if self.output_dir is not None else artifact_dir(self.scale.name, self.stage)


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (unwrapped; FSDP2 leaves it sharded), where the run wrote."""

    model: Transformer
    output_dir: Path
    final_checkpoint: Path | None
    metrics: list[dict] = field(default_factory=list)
    resumed_from: int = 0  # the step the run continued from (0 = a fresh start)


def long_context_scale(scale: Scale) -> Scale:
    """The §3.6 stage as a config (``scale.long_context``): RoPE linear ×4 and ``rope_theta`` 100000, 4× sequence
    length, its own batch and step count, and the final pretraining learning rate held constant ("LR as in the
    final stage").

    Each micro-batch keeps roughly the pretraining token count (the micro-batch shrinks by the same factor).
    """
    t, m, lc = scale.train, scale.model, scale.long_context
    seq_len = t.seq_len * lc.seq_multiplier
    micro = max(1, t.micro_batch_size // lc.seq_multiplier)
    while lc.batch_size % micro:
        micro -= 1
    model = replace(
        m,
        rope_theta=lc.rope_theta,
        rope_scaling={"type": "linear", "factor": lc.rope_factor},
        max_position_embeddings=max(m.max_position_embeddings, seq_len),
    )
    train = replace(
        t,
        seq_len=seq_len,
        micro_batch_size=micro,
        global_batch_size=lc.batch_size,
        max_steps=lc.steps,
        lr=t.lr * t.lr_decay ** len(t.lr_milestones),
        warmup_steps=0,
        lr_milestones=(),
        checkpoint_every=min(t.checkpoint_every, lc.steps),
    )
    return replace(scale, model=model, train=train)


# ----------------------------------------------------------------------------------------------------------
# Data


def make_stream(run: TrainRun, rank: int, world: int):
    """The batches of ``run`` for process ``rank`` of ``world``: ``[micro_batch, seq_len + 1]`` token ids, from
    an iterable with ``state_dict()`` / ``load_state_dict()`` that knows what the loop has received.

    ``data="corpus"`` is the scale's packed training stream (FIM per document, then packing; §3.1) from
    :func:`dslib.packing.packed_dataset`, built with the corpus and tokenizer when missing.
    """
    scale = run.stage_scale
    tc = scale.train
    if not isinstance(run.data, str):
        return run.data.stream(scale, rank, world)
    if run.data == "synthetic":
        return SyntheticStream(
            tc.seq_len,
            scale.model.vocab_size,
            scale.model.eos_token_id,
            batch_size=tc.micro_batch_size,
            seed=tc.seed,
            rank=rank,
            world_size=world,
        )
    dataset = packed_dataset(
        scale,
        "train",
        scale.fim,
        seq_len=tc.seq_len,
        batch_size=tc.micro_batch_size,
        rank=rank,
        world_size=world,
        seed=tc.seed,
    )
    return dataset.loader(tc.num_workers, pin_memory=torch.cuda.is_available())


# ----------------------------------------------------------------------------------------------------------
# Model, optimizer, parallelism


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW (§3.4) with weight decay on matrices only (ndim ≥ 2), none on norm gains and biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=torch.cuda.is_available() or None)


# ----------------------------------------------------------------------------------------------------------
# The loop


def run_fingerprint(run: TrainRun) -> str:
    """What makes two runs' checkpoints interchangeable: every config the stage's result depends on (data,
    tokenizer, FIM, model, training, long context), less the fields marked as how it runs (:data:`HOW`)."""
    scale = run.stage_scale
    train = result_fields(scale.train)
    if train["lr_schedule"] == "multistep":  # added with §3.7: the runs recorded before it keep their fingerprint
        del train["lr_schedule"]
    # The long-context settings are hashed under their former TrainConfig names, so that the checkpoints and
    # ablation runs recorded before LongContextConfig existed keep their fingerprint and are not retrained.
    train |= {f"long_context_{k}": v for k, v in result_fields(scale.long_context).items()}
    configs = [result_fields(c) for c in (scale.data, scale.tokenizer, scale.fim, scale.model)]
    data = run.data if isinstance(run.data, str) else run.data.fingerprint
    return fingerprint([*configs, train, run.stage, data])


def accumulation_steps(config: TrainConfig, world: int) -> int:
    """Micro-batches each process accumulates per optimizer step to reach ``global_batch_size``."""
    per_step = config.micro_batch_size * world
    if config.global_batch_size % per_step:
        raise ConfigError(
            f"TrainConfig.global_batch_size={config.global_batch_size} must be a multiple of micro_batch_size × "
            f"processes = {config.micro_batch_size} × {world}"
        )
    return config.global_batch_size // per_step


def train(config: TrainRun | Scale | str | None = None) -> TrainResult:
    """Train one stage (§3.4–3.6) and return the model with its metrics; resumes from the newest valid checkpoint.

    ``config`` is a :class:`TrainRun`, or a scale (preset name, :class:`Scale`, None = ``$DSLIB_SCALE``) for
    the default pretraining run. Under ``torchrun`` every process calls this; rank 0 writes metrics.
    """
    run = config if isinstance(config, TrainRun) else TrainRun(resolve(config))
    scale = run.stage_scale
    tc, mc = scale.train, replace(scale.model, initializer_range=scale.train.init_std)
    rank, world, device, started = init_distributed()
    try:
        return _train(run, tc, mc, rank, world, device)
    finally:
        if started:
            dist.destroy_process_group()


def _train(run: TrainRun, tc: TrainConfig, mc: ModelConfig, rank: int, world: int, device: torch.device):
    out = run.directory
    ckdir, metrics_path = out / "checkpoints", out / METRICS_FILE
    accumulation_steps(tc, world)  # a batch that does not split fails here, before any work
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not run.resume:
            shutil.rmtree(ckdir, ignore_errors=True)
            metrics_path.unlink(missing_ok=True)
    if dist.is_initialized():
        dist.barrier()

    torch.manual_seed(tc.seed)  # every process builds the same initial weights
    with torch.device(device):
        model = Transformer(mc)
    source = run.init_from
    if source is None and run.stage == "long_context":
        source = ckpt.latest_checkpoint(artifact_dir(run.scale.name, "pretrain") / "checkpoints")
        if source is None:
            raise FileNotFoundError("the long-context stage needs a pretraining checkpoint; run the pretrain stage")
    if source is not None:
        ckpt.load_model_weights(source, model)
    num_params = model.num_parameters()
    wrapped = parallelize(model, tc, device)
    optimizer = build_optimizer(wrapped, tc)
    stream = make_stream(run, rank, world)

    start, skipped_total, resumed = 0, 0, ckpt.latest_checkpoint(ckdir) if run.resume else None
    if resumed is not None:
        trainer, data_state = ckpt.load_training_state(resumed, wrapped, optimizer)
        if trainer["fingerprint"] != run_fingerprint(run):
            raise ckpt.CheckpointError(
                f"{resumed} was written by a run with another config; pass resume=False (or --fresh) to start "
                "over, or choose another output_dir"
            )
        stream.load_state_dict(data_state)
        start, skipped_total = trainer["step"], trainer["skipped_steps"]
        log.info("resumed from %s at step %d", resumed, start)
    else:
        random.seed(tc.seed + rank)
        np.random.seed(tc.seed + rank)
    metrics = MetricsLog(out, start, write=rank == 0)

    flops = flops_per_token(mc, tc.seq_len, num_params)
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    batches = iter(stream)
    end = min(tc.max_steps, run.stop_after) if run.stop_after else tc.max_steps
    bar = tqdm(total=end, initial=start, desc=f"{run.stage} ({run.scale.name})", disable=rank != 0 or not run.progress)
    in_a_row, last_checkpoint = 0, resumed
    for step in range(start, end):
        t0 = time.perf_counter()
        lr = learning_rate(step, tc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = _accumulate_gradients(wrapped, batches, accumulation_steps(tc, world), device)
        grad_norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), tc.grad_clip)
        if hasattr(grad_norm, "full_tensor"):  # FSDP2 returns a replicated DTensor
            grad_norm = grad_norm.full_tensor()
        # All ranks hold the same reduced loss and norm, so they all take (or skip) the step together.
        loss_value, norm_value = loss.item(), grad_norm.item()
        finite = math.isfinite(loss_value) and math.isfinite(norm_value)
        if finite:
            optimizer.step()
            in_a_row = 0
        else:
            skipped_total, in_a_row = skipped_total + 1, in_a_row + 1
            log.warning(
                "step %d skipped: loss %s, gradient norm %s (%d in a row)", step + 1, loss_value, norm_value, in_a_row
            )
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        row = {
            "step": step + 1,
            "loss": loss_value if finite else None,
            "lr": lr,
            "grad_norm": norm_value if finite else None,
            "tokens": (step + 1) * tc.tokens_per_step,
            "tokens_per_s": tc.tokens_per_step / (time.perf_counter() - t0),
            "skipped": not finite,
        }
        if peak is not None:
            row["mfu"] = flops * row["tokens_per_s"] / world / peak
        metrics.append(row)
        bar.update(1)
        if finite and (step + 1) % tc.log_every == 0:
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_s']:.0f}")
        if in_a_row >= tc.max_bad_steps:
            bar.close()
            raise NonFiniteLossError(
                f"{in_a_row} steps in a row had a non-finite loss or gradient norm (TrainConfig.max_bad_steps="
                f"{tc.max_bad_steps}); last: loss {loss_value}, gradient norm {norm_value} at step {step + 1}. "
                f"Lower train.lr or check the data; the last good checkpoint is in {ckdir}"
            )
        if (step + 1) % tc.checkpoint_every == 0 or step + 1 == tc.max_steps:
            state = {
                "fingerprint": run_fingerprint(run),
                "skipped_steps": skipped_total,
                "stage": run.stage,
                "model_config": mc.to_dict(),
            }
            last_checkpoint = ckpt.save_checkpoint(
                ckdir, step + 1, wrapped, optimizer, state, stream.state_dict(), tc.keep_last
            )
    bar.close()
    return TrainResult(model, out, last_checkpoint, metrics.rows, resumed_from=start)


def _accumulate_gradients(model: torch.nn.Module, batches, accum: int, device: torch.device) -> torch.Tensor:
    """Run ``accum`` micro-batches forward and backward; returns the global batch's mean loss (all ranks)."""
    total = torch.zeros((), device=device)
    for micro in range(accum):
        batch = next(batches)
        with gradient_sync(model, micro == accum - 1), autocast(device):
            if isinstance(batch, dict):  # labelled (instruction tuning): its loss_scale weighs every token alike
                loss = labelled_batch_loss(model, batch, device)
            else:
                loss = next_token_loss(model, batch.to(device, non_blocking=True)) / accum
        loss.backward()
        total += loss.detach()
    _, world = rank_and_world()
    if dist.is_initialized() and world > 1:
        dist.all_reduce(total)  # a sum: gloo has no average
        total /= world
    return total


# ----------------------------------------------------------------------------------------------------------
# Export, the pretrained model of a scale, plots, command line


def export_hf(model: torch.nn.Module, path: Path, tokenizer=None, chat_template: str | None = None) -> Path:
    """Write ``model`` (plain, DDP-unwrapped or FSDP2-sharded) as an HF ``LlamaForCausalLM`` folder, with the
    tokenizer files when given; rank 0 writes, every process must call it."""
    model = getattr(model, "module", model)
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank_and_world()[0] != 0:
        return Path(path)
    with torch.device("meta"):
        full = Transformer(model.config)
    full.load_state_dict(state, assign=True)
    to_hf(full, path)
    if tokenizer is not None:
        save_tokenizer(tokenizer, path, chat_template)
    return Path(path)


def ensure_pretrained(scale: Scale | str | None = None) -> Path:
    """The scale's pretrained model as an HF folder ``artifacts/<scale>/pretrain/hf/``, trained when missing.

    Runs the two stages the released Base models went through: pretraining (§3.4) and the long-context
    continuation (§3.6), then exports the result with the tokenizer files, ready for ``from_hf``. An
    interrupted build resumes from its checkpoints; one left by another config is cleared first.
    """
    scale = resolve(scale)
    stage_dir = artifact_dir(scale.name, "pretrain")
    config = {
        "pretrain": run_fingerprint(TrainRun(scale)),
        "long_context": run_fingerprint(TrainRun(scale, stage="long_context")),
    }
    hf = stage_dir / "hf"
    if is_complete(stage_dir, config) and (hf / "config.json").exists():
        return hf
    long_dir = artifact_dir(scale.name, "long_context")
    for run, directory in ((TrainRun(scale), stage_dir), (TrainRun(scale, stage="long_context"), long_dir)):
        newest = ckpt.latest_checkpoint(directory / "checkpoints")
        if newest is not None and ckpt.read_trainer_state(newest)["fingerprint"] != run_fingerprint(run):
            log.warning("clearing %s: its checkpoints belong to another config", directory)
            shutil.rmtree(directory / "checkpoints")
    tokenizer = ensure_tokenizer(scale)
    t0 = time.perf_counter()
    pre = train(TrainRun(scale, output_dir=stage_dir))
    t1 = time.perf_counter()
    long = train(TrainRun(scale, output_dir=long_dir, stage="long_context", init_from=pre.final_checkpoint))
    t2 = time.perf_counter()
    shutil.rmtree(hf, ignore_errors=True)
    export_hf(long.model, hf, tokenizer)
    last = pre.metrics[-1] if pre.metrics else {}
    write_manifest(
        stage_dir,
        config,
        inputs={
            "pretrain_checkpoint": str(pre.final_checkpoint),
            "long_context_checkpoint": str(long.final_checkpoint),
        },
        counts={
            "pretrain_steps": len(pre.metrics),
            "long_context_steps": len(long.metrics),
            "final_loss": last.get("loss"),
            "long_context_final_loss": (long.metrics or [{}])[-1].get("loss"),
        },
        timings={"pretrain_s": t1 - t0, "long_context_s": t2 - t1},
    )
    return hf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dslib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default=None, help="smoke, cpu, gpu or paper (default: $DSLIB_SCALE or smoke)")
    parser.add_argument("--stage", default="pretrain", choices=STAGES)
    parser.add_argument("--output-dir", type=Path, default=None, help="default: artifacts/<scale>/<stage>/")
    parser.add_argument("--init-from", type=Path, default=None, help="checkpoint or HF folder to start from")
    parser.add_argument("--data", default="corpus", choices=DATA_SOURCES)
    parser.add_argument("--fresh", action="store_true", help="delete the output folder's checkpoints first")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many steps (no checkpoint)")
    parser.add_argument("overrides", nargs="*", help="stage.field=value, e.g. train.lr=1e-3 fim.fim_rate=0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        scale = get_scale(args.scale, args.overrides)
        run = TrainRun(
            scale,
            output_dir=args.output_dir,
            resume=not args.fresh,
            stage=args.stage,
            init_from=args.init_from,
            data=args.data,
            stop_after=args.stop_after,
        )
        result = train(run)
    except (ConfigError, ckpt.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result.metrics and rank_and_world()[0] == 0:
        last = result.metrics[-1]
        print(json.dumps({"output_dir": str(result.output_dir), "step": last["step"], "loss": last["loss"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
