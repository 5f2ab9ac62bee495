"""Neighbours from a fixed stencil of integer grid offsets (the released code's integer-coordinate kNN).

The released GeoPurify code searches neighbours among the integer voxel coordinates. Every voxel's
``k`` nearest voxels on the grid are then the first ``k`` occupied cells in one fixed list of integer
offsets ordered by length (ties by the offset itself), so no tree is needed: the offsets are walked
shell by shell (all offsets of one squared length at once) for every voxel still short of ``k``.

Against the default KD-tree over the voxels' mean point positions this changes some neighbour sets
(different positions, and a fixed rule among equally distant cells); ``benchmarks/pooling.py``
measures how many and what it does to the labels.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import InputError

#: offsets up to this length (in voxels) are walked; voxels still short of k then take an exact
#: KD-tree search over the grid coordinates instead (isolated voxels only)
MAX_RADIUS = 8
#: above this many cells in the bounding box, occupied cells are found by binary search, not a dense grid
DENSE_CELLS = 2**27
#: voxels walked through the stencil together
ROWS = 2048


@functools.cache
def _shells(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets (S, 3) int64 with 0 < |o| <= radius, ordered by (|o|^2, o); shell starts (n+1,)."""
    r = np.arange(-radius, radius + 1)
    o = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    d2 = (o**2).sum(1)
    keep = (d2 > 0) & (d2 <= radius * radius)
    o, d2 = o[keep], d2[keep]
    order = np.lexsort((o[:, 2], o[:, 1], o[:, 0], d2))
    o, d2 = o[order], d2[order]
    starts = np.flatnonzero(np.r_[True, d2[1:] != d2[:-1], True])
    return o, starts


class _Cells:
    """Index of the voxel occupying an integer cell, -1 where none: a dense grid, or sorted keys.

    Cells are addressed by a linear key over the voxels' bounding box padded by ``MAX_RADIUS``, so
    ``key(c + o) == key(c) + key_offset(o)`` for every stencil offset ``o``.
    """

    def __init__(self, coords: np.ndarray) -> None:
        lo = coords.min(0) - MAX_RADIUS
        shape = coords.max(0) + MAX_RADIUS + 1 - lo
        self.strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
        self.keys = (coords - lo) @ self.strides
        cells = int(np.prod(shape))
        if cells <= DENSE_CELLS:
            self.dense = np.full(cells, -1, dtype=np.int32 if len(coords) < 2**31 else np.int64)
            self.dense[self.keys] = np.arange(len(coords))
        else:
            self.dense = None
            self.order = np.argsort(self.keys, kind="stable")
            self.sorted = self.keys[self.order]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Cell keys (any shape) -> voxel index (int64) or -1."""
        if self.dense is not None:
            return self.dense[keys].astype(np.int64)
        pos = np.clip(np.searchsorted(self.sorted, keys), 0, len(self.sorted) - 1)
        return np.where(self.sorted[pos] == keys, self.order[pos], -1)


def stencil_neighbors(coords: np.ndarray, k: int, include_self: bool = False) -> np.ndarray:
    """``(V, k')`` int64 indices of each voxel's ``k`` nearest occupied grid cells, nearest first.

    Args:
        coords: ``(V, 3)`` integer voxel coordinates (distinct).
        k: neighbours per voxel; ``k' = min(k, V - 1)`` without the voxel itself, ``min(k, V)`` with it.
        include_self: put the voxel itself first.
    """
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 3 or len(coords) == 0:
        raise InputError(f"pooling: stencil neighbours need (V, 3) integer voxel coordinates, got {coords.shape}")
    if not np.issubdtype(coords.dtype, np.integer):
        raise InputError(f"pooling: stencil neighbours need integer voxel coordinates, got {coords.dtype}")
    coords = coords.astype(np.int64)
    v = len(coords)
    k = min(int(k), v if include_self else v - 1)
    if k < 1:
        raise InputError("pooling: include_self=False needs at least 2 voxels")
    out = np.full((v, k), -1, dtype=np.int64)
    filled = np.zeros(v, dtype=np.int64)
    if include_self:
        out[:, 0] = np.arange(v)
        filled[:] = 1
    cells = _Cells(coords)
    offsets, starts = _shells(MAX_RADIUS)
    off_keys = offsets @ cells.strides
    short = []
    for c0 in range(0, v, ROWS):  # row blocks: the (rows, shell) temporaries stay in cache
        active = np.arange(c0, min(c0 + ROWS, v))
        active = active[filled[active] < k]
        for a, b in zip(starts[:-1], starts[1:]):
            if not len(active):
                break
            cand = cells.lookup(cells.keys[active, None] + off_keys[None, a:b])  # (A, shell)
            ok = cand >= 0
            hits = np.cumsum(ok, axis=1)
            pos = filled[active, None] + hits - 1  # slot of each hit, in stencil order
            take = ok & (pos < k)
            rows = np.broadcast_to(active[:, None], take.shape)[take]
            out[rows, pos[take]] = cand[take]
            filled[active] = np.minimum(filled[active] + hits[:, -1], k)
            active = active[filled[active] < k]
        short.append(active)
    active = np.concatenate(short)
    if len(active):  # voxels with fewer than k cells within MAX_RADIUS: exact search on the grid
        from ..geometry import knn

        idx, _ = knn(coords.astype(np.float64), coords[active].astype(np.float64), k + (0 if include_self else 1))
        for row, hits in zip(active, idx):
            hits = hits[hits != row] if not include_self else np.r_[row, hits[hits != row]]
            out[row] = hits[:k]
    return out
