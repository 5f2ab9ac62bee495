"""Normals from mesh faces (area-weighted) or estimated by local PCA."""

from __future__ import annotations

import numpy as np

from .knn import knn


def mesh_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals. vertices (N, 3), faces (F, 3) int -> (N, 3) float32 unit."""
    v = vertices.astype(np.float64)
    f = faces.astype(np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    idx = f.ravel()  # bincount per axis: ~30x faster than np.add.at on millions of faces
    for a in range(3):
        n[:, a] = np.bincount(idx, weights=np.repeat(fn[:, a], 3), minlength=len(v))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    out = np.where(norm > 0, n / np.maximum(norm, 1e-12), np.array([0.0, 0.0, 1.0]))
    return out.astype(np.float32)


def pca_axes(points: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(M, 3) float64 unit least-spread axes (unoriented normals) of the neighbourhoods ``idx (M, k)``
    int of ``points (N, 3)``: the eigenvector of the smallest eigenvalue of each local covariance."""
    nb = points[idx].astype(np.float64)  # (M, k, 3)
    nb -= nb.mean(axis=1, keepdims=True)
    return np.linalg.eigh(np.einsum("cki,ckj->cij", nb, nb))[1][:, :, 0]


def estimate_normals(points: np.ndarray, k: int = 16, chunk: int = 200_000) -> np.ndarray:
    """PCA normals from the k nearest neighbours, oriented towards +z then the centroid side.

    points (N, 3) -> (N, 3) float32 unit normals. Memory is bounded by ``chunk``.
    """
    pts = points.astype(np.float64)
    n = len(pts)
    k = max(3, min(k, n))
    out = np.zeros((n, 3), dtype=np.float32)
    center = pts.mean(axis=0)
    for s in range(0, n, chunk):
        idx, _ = knn(pts, pts[s : s + chunk], k)
        nrm = pca_axes(pts, idx)
        # orient towards the room's interior (scans are seen from inside)
        flip = np.einsum("ci,ci->c", nrm, center - pts[s : s + chunk]) < 0
        nrm[flip] *= -1
        out[s : s + chunk] = nrm
    return out
