"""k-nearest neighbours with a KD-tree (never brute force)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.spatial import cKDTree


def knn(points: np.ndarray, queries: np.ndarray, k: int, tree: cKDTree | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (M, k) int64 and distances (M, k) float32 of the k nearest ``points`` to each query.

    The query point itself is included when it is in ``points``.
    """
    from scipy.spatial import cKDTree  # loaded on first use: importing geometry stays cheap

    k = int(min(k, len(points)))
    from ..utils.interrupt import deferred_interrupt

    tree = tree if tree is not None else cKDTree(points)
    with deferred_interrupt():  # Ctrl-C inside scipy's threaded query would crash the process
        dist, idx = tree.query(queries, k=k, workers=-1)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    # the tree returns fresh intp (int64) indices: no second copy of the (M, k) table
    return idx.astype(np.int64, copy=False), dist.astype(np.float32)
