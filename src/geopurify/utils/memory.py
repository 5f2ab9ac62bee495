"""Up-front memory estimates, so a too-large scene is refused with advice instead of swapping to death."""

from __future__ import annotations

import os
import resource
import sys


def available_bytes() -> int | None:
    """Memory the OS says is available now (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def estimate_segment_bytes(n_points: int, dim: int, n_classes: int, k: int, purify: bool, save_features: bool,
                           n_voxels: int | None = None) -> int:
    """Rough peak bytes of ``segment`` for a scene (float32 working arrays).

    Lifting holds the (N, D) fused features plus about one more (N, D) buffer; purification adds the CSR
    affinity (V x min(K, V - 1) values and indices; V = points when the voxel count is not given) and the
    pooled columns (D when features are saved, else the C class logits), twice for the propagation's
    ping-pong.

    >>> estimate_segment_bytes(1_000_000, 64, 20, 96, purify=True, save_features=False) // 2**20
    1815
    """
    lift = 2 * n_points * dim * 4
    if not purify:
        return lift + n_points * dim * 2
    cols = dim if save_features else n_classes
    v = n_points if n_voxels is None else n_voxels
    csr = v * max(min(k, v - 1), 0) * (4 + 8)
    pool = 3 * v * cols * 4
    return lift + csr + pool + (n_points * dim * 2 if save_features else 0)


def parse_size(text: str) -> int:
    """'4G', '512M', '1000' -> bytes.

    >>> parse_size("4G"), parse_size("512M"), parse_size("1000")
    (4294967296, 536870912, 1000)
    """
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def check_fits(need: int, what: str, hint: str, limit: str | None = None) -> None:
    """Refuse up front (InputError) when ``need`` bytes exceed ``limit`` (a size such as 4G), else
    ``$GEOPURIFY_MEMORY_LIMIT``, else what the OS reports available."""
    from ..errors import InputError

    limit = limit or os.environ.get("GEOPURIFY_MEMORY_LIMIT")
    have = parse_size(limit) if limit else available_bytes()
    if have is not None and need > have:
        raise InputError(
            f"{what} need about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB is available; try {hint}"
        )
