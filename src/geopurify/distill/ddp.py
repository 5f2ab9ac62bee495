"""torch.distributed set-up from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 without DDP).
        world_size: number of processes (1 without DDP).
        local_rank: rank on this host (selects the GPU).
        backend: ``"nccl"``, ``"gloo"`` or ``None`` when not distributed.
        device: the device this rank should use.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current(device: torch.device | None = None) -> DistInfo:
    """DistInfo of an already initialised process group, else a single-process one."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(),
            dist.get_world_size(),
            int(os.environ.get("LOCAL_RANK", 0)),
            dist.get_backend(),
            device or torch.device("cpu"),
        )
    return DistInfo(device=device or torch.device("cpu"))


def init_from_env(backend: str | None = None) -> DistInfo:
    """Initialise torch.distributed when ``WORLD_SIZE`` > 1 is set (torchrun); gloo on CPU, nccl on GPU.

    Safe to call twice and in a plain single process (returns rank 0 of 1).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(device=device)
    if not dist.is_initialized():
        backend = backend or ("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=int(os.environ["RANK"]), world_size=world)
        log.info("initialised %s process group: rank %d of %d", backend, dist.get_rank(), world)
    return current(device)
