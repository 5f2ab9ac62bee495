"""Device choice: the GPU when present, else the CPU."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks ``cuda`` when available, then ``mps``, else ``cpu``."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def configure_threads(requested: int | None = None) -> int:
    """Set torch's CPU threads for a heavy command; returns the count in use.

    ``requested`` (or the environment variable ``GEOPURIFY_THREADS``) wins. Otherwise, when the user
    has not set ``OMP_NUM_THREADS`` either, use the CPUs this process may run on minus the machine's
    1-minute load average (at least 1): on a busy machine, torch threads that wait for a core spin at
    every barrier, and 2 threads on a loaded 2-core machine were measured 2.4x slower than 1.
    """
    env = os.environ.get("GEOPURIFY_THREADS")
    if requested is None and env:
        try:
            requested = int(env)
        except ValueError:
            requested = None
    if requested is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
        requested = max(1, min(cpus, int(round(cpus - load))))
    requested = max(1, int(requested))
    if requested != torch.get_num_threads():
        torch.set_num_threads(requested)
    return requested


@contextmanager
def cpu_threads(requested: int | None = None) -> Iterator[int]:
    """:func:`configure_threads` for the block, then torch's CPU thread count as it was: a heavy command
    called from Python (a notebook) does not leave the caller's process with its thread policy."""
    before = torch.get_num_threads()
    try:
        yield configure_threads(requested)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
