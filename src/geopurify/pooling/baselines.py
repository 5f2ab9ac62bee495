"""Affinities to compare the student's against, on the same kNN graph and the same ``X <- A X`` pooling.

* :func:`uniform_affinity`: every one of the K neighbours weighs the same (no affinity at all);
* :func:`bilateral_affinity`: weight-free, from normals and colours, ``exp(-sharpness * (|n_i - n_j|^2 /
  sigma_n^2 + |c_i - c_j|^2 / sigma_c^2))``, row-normalised: what geometry gives without learning;
* :func:`oracle_affinity`: weights only between voxels of the same ground-truth class: the ceiling of
  any affinity on this graph (it cannot fix a voxel whose whole neighbourhood is wrong);
* :func:`untrained_student`: the student architecture with its initial, random weights.

All take neighbour indices from :func:`geopurify.pooling.neighbors` and return the same row-stochastic
sparse CSR ``(V, V)`` float32 matrix :func:`geopurify.pooling.propagate` consumes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ConfigError, InputError
from .pool import PoolConfig, affinity_from_neighbors

if TYPE_CHECKING:
    from ..student import AffinityNet


def _csr(nbr: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """Row-normalised CSR from (V, k) neighbour indices and (V, k) non-negative weights."""
    v, k = nbr.shape
    order = np.argsort(nbr, axis=1)
    cols = np.take_along_axis(nbr, order, 1)
    w = np.take_along_axis(weights, order, 1).astype(np.float64)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-30)
    crow = torch.arange(0, v * k + 1, k, dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(crow, torch.from_numpy(cols.reshape(-1).astype(np.int64)),
                                       torch.from_numpy(w.reshape(-1).astype(np.float32)), size=(v, v))  # fmt: skip


def _check(nbr: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    nbr = np.asarray(nbr)
    if nbr.ndim != 2:
        raise InputError(f"baselines: neighbours must be (V, k), got {nbr.shape}")
    for a in arrays:
        if len(a) != len(nbr):
            raise InputError(f"baselines: {len(a)} rows of per-voxel data for {len(nbr)} voxels")
    return nbr


def uniform_affinity(nbr: np.ndarray) -> torch.Tensor:
    """Equal weights over each voxel's neighbours (plain kNN averaging)."""
    nbr = _check(nbr)
    return _csr(nbr, np.ones(nbr.shape))


@dataclass
class BilateralConfig:
    """Weights of :func:`bilateral_affinity`.

    Attributes:
        sharpness: multiplies the exponent (0 = uniform); the value the benchmarks tune.
        sigma_normal: normal difference (unit vectors, 0..2) that counts as one unit.
        sigma_colour: RGB difference (0..1 per channel, Euclidean) that counts as one unit.
    """

    sharpness: float = 1.0
    sigma_normal: float = 0.5
    sigma_colour: float = 0.15

    def __post_init__(self) -> None:
        if not self.sharpness >= 0:
            raise ConfigError(f"BilateralConfig.sharpness must be >= 0, got {self.sharpness!r}")
        if not (self.sigma_normal > 0 and self.sigma_colour > 0):
            raise ConfigError("BilateralConfig.sigma_normal and sigma_colour must be > 0")


def bilateral_affinity(nbr: np.ndarray, normals: np.ndarray, colors: np.ndarray,
                       config: BilateralConfig | None = None) -> torch.Tensor:  # fmt: skip
    """Weight-free affinity from (V, 3) unit normals and (V, 3) colours in [0, 1]."""
    config = config or BilateralConfig()
    nbr = _check(nbr, normals, colors)
    n, c = np.asarray(normals, np.float32), np.asarray(colors, np.float32)
    dn = np.sum((n[nbr] - n[:, None]) ** 2, axis=2) / config.sigma_normal**2
    dc = np.sum((c[nbr] - c[:, None]) ** 2, axis=2) / config.sigma_colour**2
    e = -config.sharpness * (dn + dc)
    return _csr(nbr, np.exp(e - e.max(axis=1, keepdims=True)))


def oracle_affinity(nbr: np.ndarray, gt: np.ndarray) -> torch.Tensor:
    """Weights 1 between voxels of the same GT class (ignored voxels, -1, form their own class), else ~0.

    Args:
        gt: (V,) int ground-truth class per voxel.
    """
    nbr = _check(nbr, gt)
    gt = np.asarray(gt)
    same = gt[nbr] == gt[:, None]
    return _csr(nbr, np.where(same, 1.0, 1e-6))


def embedding_affinity(nbr: np.ndarray, embeddings: np.ndarray | torch.Tensor, sharpen: float) -> torch.Tensor:
    """The pooling's own rule, ``softmax(sharpen * cos)``, on any per-voxel embedding (V, E)."""
    return affinity_from_neighbors(nbr, embeddings, PoolConfig(sharpen=sharpen))


def untrained_student(in_dim: int, width: int = 32, out_dim: int = 128, blocks: int = 3, seed: int = 0) -> AffinityNet:
    """An :class:`~geopurify.student.AffinityNet` with the initial weights training would start from."""
    from ..student import AffinityNet, StudentConfig

    torch.manual_seed(seed)
    return AffinityNet(StudentConfig(in_dim=in_dim, width=width, out_dim=out_dim, blocks=blocks))


__all__ = [
    "BilateralConfig", "bilateral_affinity", "embedding_affinity", "oracle_affinity", "uniform_affinity",
    "untrained_student",
]  # fmt: skip
