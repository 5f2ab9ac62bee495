"""Felzenszwalb-Huttenlocher graph segmentation into superpoints (as ScanNet's mesh segmentator).

Edges come from mesh faces when present, else from a kNN graph; weights compare normals and colour.
"""

from __future__ import annotations

import logging

import numpy as np

from ..geometry import knn

log = logging.getLogger(__name__)


def voxel_edges(point_to_voxel: np.ndarray, faces: np.ndarray | None, centers: np.ndarray, k: int = 8) -> np.ndarray:
    """Undirected voxel adjacency (E, 2) int64 with i < j, unique.

    From mesh ``faces`` (F, 3) mapped through ``point_to_voxel`` (N,) when given, else the ``k``
    nearest voxel centres (V, 3). Voxels left without a face edge (isolated points) get kNN edges.
    """
    v = len(centers)
    parts = []
    if faces is not None and len(faces):
        f = point_to_voxel[np.asarray(faces, dtype=np.int64)]
        parts.append(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]))
    covered = np.zeros(v, bool)
    if parts:
        covered[parts[0].ravel()] = True
    need = np.flatnonzero(~covered)
    if len(need) and v > 1:
        idx, _ = knn(centers, centers[need], min(k + 1, v))
        src = np.repeat(need, idx.shape[1])
        parts.append(np.stack([src, idx.ravel()], axis=1))
    if not parts:
        return np.zeros((0, 2), np.int64)
    e = np.concatenate(parts).astype(np.int64)
    e = np.sort(e, axis=1)
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(e, axis=0)


def felzenszwalb(num_nodes: int, edges: np.ndarray, weights: np.ndarray, c: float, min_size: int) -> np.ndarray:
    """Graph segmentation (Felzenszwalb & Huttenlocher 2004) -> (num_nodes,) int64 labels 0..S-1.

    Edges (E, 2) are processed by increasing weight; two components merge when the edge weight is at
    most ``min(Int(A) + c/|A|, Int(B) + c/|B|)``; afterwards components smaller than ``min_size`` merge
    along their cheapest edge. Union-find with path halving, O(E log E).
    """
    order = np.argsort(weights, kind="stable")
    ea = edges[order, 0].tolist()
    eb = edges[order, 1].tolist()
    ew = weights[order].astype(np.float64).tolist()
    parent = list(range(num_nodes))
    size = [1] * num_nodes
    thresh = [float(c)] * num_nodes

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, w in zip(ea, eb, ew):
        ra, rb = find(a), find(b)
        if ra == rb or w > thresh[ra] or w > thresh[rb]:
            continue
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
        thresh[ra] = w + c / size[ra]
    # Pass 2 only needs edges touching a component that is small now: components only grow, so an edge
    # between two big ones can never qualify (same result, far fewer Python iterations).
    small = [size[find(i)] < min_size for i in range(num_nodes)]
    for a, b in zip(ea, eb):
        if not (small[a] or small[b]):
            continue
        ra, rb = find(a), find(b)
        if ra != rb and (size[ra] < min_size or size[rb] < min_size):
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
    par = np.asarray(parent, dtype=np.int64)
    while True:  # pointer jumping to the roots, vectorised
        nxt = par[par]
        if np.array_equal(nxt, par):
            break
        par = nxt
    _, labels = np.unique(par, return_inverse=True)
    return labels.astype(np.int64)


def segment_mean(values: np.ndarray, seg: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of ``values (V, D)`` per segment ``seg (V,)`` int64 in [0, n) -> (n, D) float64.

    Weights default to 1; a segment without weight gets zeros. A sparse (n, V) product: ``np.add.at``
    is serial and about 10x slower.
    """
    from scipy.sparse import csr_matrix

    w = np.ones(len(seg)) if weights is None else np.asarray(weights, np.float64)
    m = csr_matrix((w, (seg, np.arange(len(seg)))), shape=(n, len(seg)))
    tot = np.bincount(seg, weights=w, minlength=n)
    return (m @ np.asarray(values, np.float64)) / np.maximum(tot, 1e-12)[:, None]
