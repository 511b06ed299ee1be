"""Several processes training one model: ``torch.distributed`` joined from torchrun's environment.

Under ``torchrun --nproc_per_node N [--nnodes M --rdzv-endpoint HOST:PORT]`` every process gets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` joins the process group (NCCL on
CUDA, gloo on the CPU) once per process and leaves a plain single process untouched. The helpers
below are no-ops in a single process, so training and evaluation code calls them
unconditionally. Multi-node runs need the output and cache folders on a shared filesystem.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from emofuse.device import resolve_device

__all__ = [
    "World",
    "world",
    "setup",
    "process_device",
    "barrier",
    "gather_objects",
    "broadcast_object",
    "sum_over_ranks",
    "broadcast_buffers",
    "check_same_weights",
    "shard",
]

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0


def _launched_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def world() -> World:
    """The process group this process belongs to (rank 0 of 1 when none was set up)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def setup(device: torch.device) -> World:
    """Join torchrun's process group (idempotent): NCCL when ``device`` is CUDA, else gloo.

    A process not started by a launcher (``WORLD_SIZE`` unset or 1) stays a single process.
    """
    if _launched_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return world()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    atexit.register(_teardown)
    return world()


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def process_device(name: str) -> torch.device:
    """This process's device for a device name (``auto``, ``cpu``, ``cuda``;
    :func:`emofuse.device.resolve_device`): ``cuda:LOCAL_RANK`` for CUDA under torchrun."""
    device = resolve_device(name)
    if device.type == "cuda" and _launched_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def barrier() -> None:
    if world().distributed:
        dist.barrier()


def gather_objects(value: T) -> list[T]:
    """Every rank's ``value``, in rank order (``[value]`` in a single process)."""
    if not world().distributed:
        return [value]
    values: list[Any] = [None] * world().size
    dist.all_gather_object(values, value)
    return values


def broadcast_object(value: T) -> T:
    """Rank 0's ``value`` on every rank."""
    if not world().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(*values: float) -> list[float]:
    """Element-wise sums of ``values`` over all ranks."""
    if not world().distributed:
        return list(values)
    return [float(v) for v in map(sum, zip(*gather_objects(list(values)), strict=True))]


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    Without SyncBatchNorm each rank's running statistics drift on its own shard; evaluating and
    saving with rank 0's makes every rank hold exactly the model rank 0 writes.
    """
    if world().distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def check_same_weights(module: nn.Module) -> None:
    """RuntimeError if the ranks' parameters and buffers differ (a broken data-parallel step)."""
    if not world().distributed:
        return
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for value in module.state_dict().values():
            if value.is_floating_point():
                total += value.double().square().sum().cpu()
    sums = gather_objects(float(total))
    if len(set(sums)) > 1:
        raise RuntimeError(f"the training processes' weights differ (sums of squares {sums})")


def shard(items: Sequence[T], rank: int | None = None) -> list[T]:
    """A rank's share of ``items`` (this process's by default): every ``size``-th one from
    ``rank``."""
    w = world()
    return list(items[(w.rank if rank is None else rank) :: w.size])
