"""Multi-process training on the standard engine: `torchrun --nproc_per_node=N -m slcvae train ...`.

torchrun sets RANK / WORLD_SIZE / MASTER_ADDR; we start a process group (gloo on CPU, nccl on
GPU) and wrap the model in DistributedDataParallel. Every rank builds the same global batch order
(seeded) and takes rows rank, rank + N, ...: the global batch and the averaged gradient are those
of a single process with the same `train.batch_size`. Rank 0 validates, logs and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from slcvae.loading import resolve_device


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> Context:
    """Join the process group when started by torchrun, else a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world == 1:
        return Context(0, 1, dev)
    rank = int(os.environ["RANK"])
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, dev)


def wrap(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """DDP for several processes; the model itself for one. Phases leave parameters unused, hence find_unused_parameters."""
    if ctx.world == 1:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def mean(values: dict[str, float], ctx: Context) -> dict[str, float]:
    """Average scalar logs over ranks (equal local batches: the global batch's mean)."""
    if ctx.world == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return {k: float(v) / ctx.world for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(flag: bool, ctx: Context) -> bool:
    """True on every rank if it is true on one (e.g. one rank hit the time budget)."""
    if ctx.world == 1:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_rng(ctx: Context) -> list[torch.Tensor]:
    """Every rank's CPU RNG state, so a resumed run continues each rank's stream exactly."""
    state = torch.get_rng_state()
    if ctx.world == 1:
        return [state]
    states: list = [None] * ctx.world
    dist.all_gather_object(states, state)
    return states


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        dist.barrier()


def cleanup(ctx: Context) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
