"""Run bookkeeping for run.json: seconds per stage and the versions that produced an output."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Seconds per named stage, for run.json."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 4)


def versions() -> dict[str, str]:
    """Versions of geopurify, Python and the numeric stack."""
    import numpy as np
    import scipy
    import torch

    from ..version import __version__

    return {
        "geopurify": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
