"""Options of the Geometry-Guided Pooling (torch-free, so the CLI builds its options without torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..utils.fields import check_field_types

KNN_METHODS = ("kdtree", "stencil")


@dataclass
class PoolConfig:
    """Options of the Geometry-Guided Pooling.

    Attributes:
        k: neighbours per voxel (paper: 96), the voxel itself excluded unless ``include_self``.
        sharpen: multiplier of the cosine before the softmax (paper: 20).
        steps: number of ``X <- A X`` products (paper: T = 18).
        chunk: rows of the affinity computed at once; ``None`` derives it from ``memory_mb``.
        memory_mb: budget for the per-chunk temporaries (cosines, weights and the sampled product's
            entries, about 16 bytes per neighbour), in MiB (16 MiB: ~10,900 rows at k = 96).
        knn: neighbour search: "kdtree" (exact, on voxel centres) or "stencil" (integer grid offsets, as released).
        include_self: keep the voxel itself among its ``k`` neighbours. The released GeoPurify code
            searches ``k + 1`` and drops the first hit (the voxel itself); ``False`` (the default)
            reproduces that. With the voxel itself included its cosine of 1 dominates the sharpened
            softmax and pooling barely moves the labels (measured: benchmarks/pooling.py).
    """

    k: int = 96
    sharpen: float = 20.0
    steps: int = 18
    chunk: int | None = None
    memory_mb: float = 16.0
    include_self: bool = False
    block_columns: int | None = None
    knn: str = "kdtree"

    def __post_init__(self) -> None:
        check_field_types(self)
        if int(self.k) != self.k or self.k < 1:
            raise ConfigError(f"PoolConfig.k must be a positive integer, got {self.k!r}")
        if not math.isfinite(self.sharpen) or self.sharpen < 0:
            raise ConfigError(f"PoolConfig.sharpen must be finite and >= 0, got {self.sharpen!r}")
        if int(self.steps) != self.steps or self.steps < 0:
            raise ConfigError(f"PoolConfig.steps must be an integer >= 0, got {self.steps!r}")
        if self.chunk is not None and (int(self.chunk) != self.chunk or self.chunk < 1):
            raise ConfigError(f"PoolConfig.chunk must be None or a positive integer, got {self.chunk!r}")
        if self.knn not in KNN_METHODS:
            raise ConfigError(f"PoolConfig.knn must be one of {', '.join(KNN_METHODS)}, got {self.knn!r}")
        b = self.block_columns
        if b is not None and (int(b) != b or b < 1):
            raise ConfigError(f"PoolConfig.block_columns must be None or a positive integer, got {b!r}")
        if not 0 < self.memory_mb < math.inf:
            raise ConfigError(f"PoolConfig.memory_mb must be a finite number > 0, got {self.memory_mb!r}")

    def rows_per_chunk(self, k: int) -> int:
        """Rows per affinity chunk: ``chunk`` if set, else what fits ``memory_mb`` (>= 1).

        Per row the chunk holds four ``(k,)`` vectors of 4 bytes: the sampled product's values and
        indices, the cosines and the weights.
        """
        if self.chunk is not None:
            return int(self.chunk)
        per_row = 16 * k
        return max(1, int(self.memory_mb * 2**20) // per_row)
