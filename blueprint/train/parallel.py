"""Scale-out with torchrun through torch's own engines: DistributedDataParallel, or FSDP2
(``fully_shard`` on each block of ``gm.layers``, then the root). gloo on CPU, NCCL on GPUs.

Every process computes the mean loss of its B/N sequences; both engines average gradients
over processes, so a step's gradient is the mean over the whole global batch, as on one
process (every sequence has the same number of targets, so the mean of means is the mean).
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from blueprint.errors import BlueprintError


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env(parallel: str) -> World:
    """The process's place in a torchrun launch (rank 0 of 1 without torchrun), checked
    against ``--parallel`` before anything starts."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    launched = "RANK" in os.environ and "MASTER_ADDR" in os.environ
    if parallel == "none" and size > 1:
        raise BlueprintError(f"--parallel none, but torchrun started {size} processes",
                             hint="pass --parallel ddp or --parallel fsdp")
    if parallel != "none" and not launched:
        raise BlueprintError(f"--parallel {parallel} needs processes started by torchrun",
                             hint=f"torchrun --nproc-per-node N -m blueprint train ... --parallel {parallel}")
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() and parallel != "none" else torch.device("cpu")
    return World(rank, size, local, device)


def init(world: World, parallel: str) -> None:
    if parallel != "none" and not dist.is_initialized():
        if world.device.type == "cuda":
            torch.cuda.set_device(world.device)
        dist.init_process_group("nccl" if world.device.type == "cuda" else "gloo")


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(gm: torch.nn.Module, parallel: str) -> torch.nn.Module:
    """The model the loop calls: ``gm`` itself, DDP(gm), or gm sharded in place by FSDP2."""
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(gm)
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in gm.layers.children():  # one all-gather per block, then the rest at the root
            fully_shard(block)
        fully_shard(gm)
    return gm


@contextmanager
def gradient_sync(model: torch.nn.Module, parallel: str, sync: bool):
    """Skip the gradient all-reduce on the first K-1 micro-batches of a step."""
    if parallel == "ddp" and not sync:
        with model.no_sync():
            yield
        return
    if parallel == "fsdp":
        model.set_requires_gradient_sync(sync)
    with nullcontext():
        yield


def mean(value: float, world: World) -> float:
    """The mean of a per-process number over all processes."""
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def total(values: list[float], world: World) -> list[float]:
    if world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def on_main(world: World, fn, *args):
    """Run ``fn`` on rank 0 only; every process gets its result, or rank 0's error."""
    result, error = None, None
    if world.main:
        try:
            result = fn(*args)
        except BlueprintError as err:
            error = err
    if world.size > 1:
        box = [(result, None if error is None else (error.message, error.hint))]
        dist.broadcast_object_list(box, src=0)
        result, err = box[0]
        if err is not None and error is None:
            error = BlueprintError(*err)
    if error is not None:
        raise error
    return result
