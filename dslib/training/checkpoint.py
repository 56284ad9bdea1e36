"""Atomic, verifiable training checkpoints that resume a run exactly (DeepSeek-Coder §3.4 training, our tooling).

A checkpoint is a folder ``step_00001000/`` holding

- ``model.pt`` and ``optimizer.pt``: full (unsharded) state dicts, keyed by parameter name, so a run saved
  under FSDP2 on 8 GPUs loads under DDP or in one process;
- ``trainer.pt``: the step, counters and anything else the loop needs (the schedule is a function of the step);
- ``rank{r}.pt``: per-process state, i.e. the python / numpy / torch (and CUDA) RNG states and the data
  stream's position, which differ from rank to rank;
- ``COMPLETE.json``: the completion marker, written last, with the size and SHA-256 of every file.

It is written under a temporary name, renamed into place, and only then marked complete, so a crash at any
moment leaves either the previous checkpoints untouched or an unmarked folder that :func:`latest_checkpoint`
skips. A marked folder whose files no longer match their checksums (a truncated copy, bit rot) is skipped
with a message too; it is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from dslib.model import from_hf
from dslib.training.parallel import rank_and_world

log = logging.getLogger(__name__)

MARKER = "COMPLETE.json"
_PREFIX = "step_"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from (written by a different number of processes, …)."""


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def rng_state() -> dict:
    """The python, numpy and torch (CPU and CUDA) generator states of this process."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        # Stored as plain ints so that the file loads with ``weights_only=True``.
        "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:08d}"


def save_checkpoint(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict,
    rank_state: dict,
    keep_last: int,
) -> Path:
    """Write ``root/step_<step>/`` atomically and prune to the newest ``keep_last``; collective under torchrun.

    ``trainer_state`` is shared by all processes (rank 0 writes it); ``rank_state`` (the data position) is
    written by each process beside its RNG states.
    """
    root = Path(root)
    rank, world = rank_and_world()
    # Gathering full state dicts is a collective: every rank takes part, rank 0 receives the tensors.
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state, optim_state = get_state_dict(model, optimizer, options=options)
    final = root / checkpoint_name(step)
    tmp = root / f".{final.name}.tmp"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    _barrier()
    if rank == 0:
        _save(model_state, tmp / "model.pt")
        _save(optim_state, tmp / "optimizer.pt")
        _save({**trainer_state, "step": step, "world_size": world}, tmp / "trainer.pt")
    _save({"rng": rng_state(), "data": rank_state}, tmp / f"rank{rank}.pt")
    _barrier()
    if rank == 0:
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        marker = {"step": step, "world_size": world, "files": files}
        (final / (MARKER + ".tmp")).write_text(json.dumps(marker, indent=1))
        (final / (MARKER + ".tmp")).rename(final / MARKER)
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old)
    _barrier()
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Every checkpoint folder under ``root`` (complete or not), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))


def verify_checkpoint(path: Path) -> str | None:
    """``None`` when ``path`` is a complete checkpoint whose files match their checksums, else the reason."""
    marker = path / MARKER
    if not marker.exists():
        return f"no {MARKER} (the run stopped while writing it)"
    try:
        files = json.loads(marker.read_text())["files"]
    except (json.JSONDecodeError, KeyError) as err:
        return f"unreadable {MARKER} ({err})"
    for name, expected in files.items():
        file = path / name
        if not file.exists():
            return f"{name} is missing"
        if file.stat().st_size != expected["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, {expected['bytes']} were written"
        if _sha256(file) != expected["sha256"]:
            return f"{name} does not match its SHA-256 checksum"
    return None


def latest_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint that verifies; incomplete or corrupted ones are skipped with a warning."""
    for path in reversed(list_checkpoints(root)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        log.warning("skipping checkpoint %s: %s", path, problem)
    return None


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Restore model, optimizer and this process's RNG states from ``path``; returns (trainer_state, rank_state).

    Every process reads the full state dicts (memory-mapped, so processes on one host share the pages) and
    keeps its own shard of them under FSDP2.
    """
    path = Path(path)
    trainer = torch.load(path / "trainer.pt", weights_only=True)
    rank, world = rank_and_world()
    if trainer["world_size"] != world:
        raise CheckpointError(
            f"{path} was written by {trainer['world_size']} processes and this run has {world}: the data "
            "stream's per-rank positions cannot be remapped, so resume with the same --nproc_per_node "
            "(or start a fresh run)"
        )
    model_state = torch.load(path / "model.pt", weights_only=True, mmap=True)
    options = StateDictOptions(full_state_dict=True)
    optim_state = torch.load(path / "optimizer.pt", weights_only=True, mmap=True)
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state, options=options)
    per_rank = torch.load(path / f"rank{rank}.pt", weights_only=True)
    set_rng_state(per_rank["rng"])
    return trainer, per_rank["data"]


def load_model_weights(path: Path, model: torch.nn.Module) -> None:
    """Load only the model weights of a verified checkpoint (the long-context stage starts from them), or of an HF
    model folder (``config.json``: the Base model that instruction tuning, §3.7, starts from)."""
    if (Path(path) / "config.json").exists():
        model.load_state_dict(from_hf(path).state_dict())
        return
    problem = verify_checkpoint(Path(path))
    if problem is not None:
        raise CheckpointError(f"cannot start from {path}: {problem}")
    state = torch.load(Path(path) / "model.pt", weights_only=True, mmap=True)
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def read_trainer_state(path: Path) -> dict:
    """The shared training state stored in a checkpoint (step, counters, the run's config fingerprint)."""
    return torch.load(Path(path) / "trainer.pt", weights_only=True)
