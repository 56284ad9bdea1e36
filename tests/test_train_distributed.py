"""``torchrun`` with 2 CPU processes (gloo): DDP and FSDP2 give the losses of one process on the same global batch."""

import json
from pathlib import Path

import pytest

from dslib.config import get_scale
from dslib.train import TrainRun, read_metrics, train

# Micro-batches of 2 and a global batch of 8: one process accumulates 4 micro-batches a step, two processes
# accumulate 2 each, so both the all-reduce (DDP) / reduce-scatter (FSDP2) and the skipped syncs are exercised.
OVERRIDES = ["train.max_steps=6", "train.warmup_steps=2", "train.micro_batch_size=2", "train.checkpoint_every=3"]

WORKER = """
import sys
import torch.distributed as dist
from dslib.config import get_scale
from dslib.train import TrainRun, train

out, overrides = sys.argv[1], sys.argv[2:]
dist.init_process_group("gloo")
scale = get_scale("smoke", overrides)
train(TrainRun(scale.override(["train.distributed=ddp"]), output_dir=f"{out}/ddp", data="synthetic", progress=False))
fsdp = scale.override(["train.distributed=fsdp", "train.activation_checkpointing=true"])
# FSDP2 (with activation checkpointing inside each sharded layer) is also pre-empted after step 4 and resumed
# from its step-3 checkpoint: a collective save and load.
train(TrainRun(fsdp, output_dir=f"{out}/fsdp", data="synthetic", progress=False, stop_after=4))
train(TrainRun(fsdp, output_dir=f"{out}/fsdp", data="synthetic", progress=False))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, torchrun_two):
    reference = train(
        TrainRun(get_scale("smoke", OVERRIDES), output_dir=tmp_path / "one", data="synthetic", progress=False)
    )
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    torchrun_two(worker, tmp_path, *OVERRIDES, timeout=300)

    expected = [r["loss"] for r in reference.metrics]
    for mode in ("ddp", "fsdp"):
        losses = [r["loss"] for r in read_metrics(tmp_path / mode)]
        assert losses == pytest.approx(expected, rel=1e-5), mode
    marker = json.loads((tmp_path / "fsdp" / "checkpoints" / "step_00000006" / "COMPLETE.json").read_text())
    assert marker["world_size"] == 2 and {"rank0.pt", "rank1.pt", "model.pt"} <= set(marker["files"])
    assert Path(tmp_path / "fsdp" / "checkpoints" / "step_00000003").exists()
