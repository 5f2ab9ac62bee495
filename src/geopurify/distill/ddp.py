"""torch.distributed for training: set-up from the torchrun environment, scene shards, collectives.

One process group per run (:func:`process_group`), gloo on the CPU and NCCL on GPUs. Every helper here
also works in a plain single process, where it does the obvious local thing, so the training code has
one path. Errors that one rank meets on purpose (:class:`GeoPurifyError`) are shared with the others
(:func:`raise_if_any`) so that every rank stops with the same one-line message instead of hanging in
the next collective.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..errors import ConfigError, GeoPurifyError, InputError
from ..utils.device import pick_device

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# minutes a rank waits in a collective for the others (a rank that crashed without a message)
TIMEOUT_MINUTES = 30


@dataclass
class DistInfo:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 without DDP).
        world_size: number of processes (1 without DDP).
        local_rank: rank on this host (selects the GPU).
        backend: ``"nccl"``, ``"gloo"`` or ``None`` when not distributed.
        device: the device this rank computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def backend_for(device: torch.device) -> str:
    """The process-group backend for ``device``: ``nccl`` for CUDA, else ``gloo``."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(name: str, local_rank: int = 0) -> torch.device:
    """The device of the rank with ``local_rank`` on its host: ``cuda:<local_rank>`` when ``name`` picks CUDA."""
    device = pick_device(name)
    if device.type == "cuda" and device.index is None:
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ConfigError(f"LOCAL_RANK {local_rank} but this host has {count} CUDA device(s)")
        device = torch.device("cuda", local_rank)
    return device


def _env_int(name: str, default: int | None) -> int:
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise ConfigError(f"{name} is not set although WORLD_SIZE > 1; launch with torchrun")
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer") from None


def current(device: torch.device | None = None) -> DistInfo:
    """DistInfo of an already initialised process group, else a single-process one."""
    device = device or torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0), dist.get_backend(), device
        )
    return DistInfo(device=device)


def init_from_env(device: str = "auto", backend: str | None = None) -> DistInfo:
    """Initialise torch.distributed when ``WORLD_SIZE`` > 1 is set (torchrun); gloo on CPU, NCCL on CUDA.

    ``device`` is the run's device option (``auto`` picks CUDA when present); each rank takes
    ``cuda:<LOCAL_RANK>``. Safe to call twice and in a plain single process (rank 0 of 1).
    """
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise ConfigError(f"WORLD_SIZE={world} must be >= 1")
    local = _env_int("LOCAL_RANK", 0)
    dev = rank_device(device, local)
    if dist.is_available() and dist.is_initialized():
        return current(dev)
    if world == 1:
        return DistInfo(local_rank=local, device=dev)
    rank = _env_int("RANK", None)
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} outside 0..{world - 1}")
    backend = backend or backend_for(dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    try:
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world, timeout=datetime.timedelta(minutes=TIMEOUT_MINUTES)
        )
    except (ValueError, RuntimeError) as exc:  # missing MASTER_ADDR, port in use, unreachable master
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"could not start the {backend} process group (rank {rank} of {world}): {first}") from None
    log.info("initialised %s process group: rank %d of %d on %s", backend, rank, world, dev)
    return current(dev)


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DistInfo]:
    """:func:`init_from_env` for the length of a block; destroys the group on exit only if it created it."""
    created = not (dist.is_available() and dist.is_initialized())
    info = init_from_env(device)
    try:
        yield info
    finally:
        if created and info.distributed and dist.is_initialized():
            dist.destroy_process_group()


def shard(num_items: int, info: DistInfo) -> list[int]:
    """Indices of this rank's items, ``rank, rank + W, rank + 2W, ...``: disjoint, together all of them."""
    return list(range(info.rank, num_items, info.world_size))


def owns(index: int, info: DistInfo) -> bool:
    """Whether item ``index`` of a global list is this rank's (see :func:`shard`)."""
    return index % info.world_size == info.rank


def all_gather(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (picklable, small objects); ``[obj]`` in one process."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_dict(d: dict, info: DistInfo) -> dict:
    """The union of every rank's ``d`` (later ranks win on equal keys); ``d`` in one process."""
    out: dict = {}
    for part in all_gather(d, info):
        out.update(part)
    return out


_ERRORS = {cls.__name__: cls for cls in (GeoPurifyError, InputError, ConfigError)}


def _as_record(exc: GeoPurifyError | None) -> tuple[str, str] | None:
    if exc is None:
        return None
    kind = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in _ERRORS), "GeoPurifyError")
    return kind, str(exc)


def raise_if_any(error: GeoPurifyError | None, info: DistInfo) -> None:
    """Collective: raise on every rank when ``error`` is set on any (first failing rank's error, rank named).

    Call it where every rank arrives; a rank without an error passes ``None``.
    """
    records = all_gather(_as_record(error), info)
    failed = [(r, rec) for r, rec in enumerate(records) if rec is not None]
    if not failed:
        return
    if error is not None and not info.distributed:
        raise error
    rank, (kind, message) = failed[0]
    others = f" (and {len(failed) - 1} more rank(s))" if len(failed) > 1 else ""
    raise _ERRORS[kind](f"rank {rank}: {message}{others}")


def map_shard(items: Sequence[T], fn: Callable[[T], R], info: DistInfo) -> list[R | None]:
    """``fn`` over this rank's items (:func:`shard`); ``None`` in the other ranks' places.

    Collective: the first :class:`GeoPurifyError` on any rank is raised on every rank.
    """
    out: list[R | None] = [None] * len(items)
    error: GeoPurifyError | None = None
    for i in shard(len(items), info):
        try:
            out[i] = fn(items[i])
        except GeoPurifyError as exc:
            error = exc
            break
    raise_if_any(error, info)
    return out


def on_main(fn: Callable[[], R], info: DistInfo) -> R:
    """Run ``fn`` on rank 0 and hand its result (or its :class:`GeoPurifyError`) to every rank."""
    if not info.distributed:
        return fn()
    box: list[Any] = [None]
    if info.is_main:
        try:
            box[0] = ("ok", fn())
        except GeoPurifyError as exc:
            box[0] = ("error", _as_record(exc))
    dist.broadcast_object_list(box, src=0, device=info.device if info.backend == "nccl" else None)
    status, value = box[0]
    if status == "error":
        kind, message = value
        raise _ERRORS[kind](message)
    return value


def _by_dtype(tensors: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    return list(groups.values())


def _collective_(tensors: Sequence[torch.Tensor], op: Callable[[torch.Tensor], Any]) -> None:
    # one flat buffer per dtype: a few collectives per call instead of one per parameter
    with torch.no_grad():
        for group in _by_dtype(tensors):
            flat = torch.cat([t.reshape(-1) for t in group])
            op(flat)
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset : offset + n].view_as(t))
                offset += n


def all_reduce_sum_(tensors: Sequence[torch.Tensor], info: DistInfo) -> None:
    """Sum each tensor over the ranks, in place (flattened into one buffer per dtype)."""
    if info.distributed and tensors:
        _collective_(tensors, lambda flat: dist.all_reduce(flat, op=dist.ReduceOp.SUM))


def broadcast_(tensors: Sequence[torch.Tensor], info: DistInfo) -> None:
    """Overwrite each tensor with rank 0's, in place (flattened into one buffer per dtype)."""
    if info.distributed and tensors:
        _collective_(tensors, lambda flat: dist.broadcast(flat, src=0))


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
