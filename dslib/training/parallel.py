"""Several processes under ``torchrun``: the process group, DDP or FSDP2, activation checkpointing and compile.

DeepSeek-Coder trained with HAI-LLM (tensor, ZeRO data and pipeline parallelism; §3.4). A 1.3B model fits a
GPU with FSDP2 (ZeRO-3-style sharding of parameters, gradients and optimizer state) or plain DDP, which is what
``TrainConfig.distributed`` selects; the wrapping order follows torchtitan (checkpointing, then compile, then
sharding, each per decoder layer).
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch
import torch.distributed as dist

from dslib.config import TrainConfig


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes: the process group's, else torchrun's environment
    (``$RANK``, ``$WORLD_SIZE``: before the group starts or after it ends), else ``(0, 1)``. Every module asks here."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def autocast(device: torch.device):
    """bf16 autocast on CUDA (FlashAttention-2 needs half precision); fp32, no autocast, on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def init_distributed() -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether this call started the process group), from torchrun's environment.

    NCCL on CUDA, gloo on the CPU; one process (no ``WORLD_SIZE``) starts no group.
    """
    _, world = rank_and_world()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    started = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    return *rank_and_world(), device, started


def _fully_shard():
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # torch 2.4–2.5 kept FSDP2 under _composable
        from torch.distributed._composable.fsdp import fully_shard
    return fully_shard


def parallelize(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.nn.Module:
    """Apply activation checkpointing, ``torch.compile`` and DDP or FSDP2 as ``config`` asks; returns the module
    to train (DDP wraps ``model``; the other steps change it in place, keeping its parameter names)."""
    layers = model.model.layers
    if config.activation_checkpointing:
        from torch.utils.checkpoint import checkpoint

        for layer in layers:  # recompute each block in the backward pass instead of keeping its activations
            layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)
    if config.compile:
        for layer in layers:  # per block: the identical layers share one compiled graph, quick to compile
            layer.compile()
    _, world = rank_and_world()
    if not dist.is_initialized() or world == 1:
        return model
    if config.distributed == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh

        fully_shard = _fully_shard()
        mesh = init_device_mesh(device.type, (world,))
        for layer in layers:  # one all-gather per layer, overlapped with the previous layer's compute
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def gradient_sync(model: torch.nn.Module, sync: bool):
    """A context for one micro-batch's backward that skips the gradient reduction unless ``sync`` (the last
    micro-batch of an accumulation): reducing once per optimizer step instead of once per micro-batch."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext() if sync else model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()
