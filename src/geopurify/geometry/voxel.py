"""Voxelisation: points -> unique voxels, with the map back to points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class VoxelGrid:
    """Points grouped into cubic voxels.

    Attributes:
        voxel_size: edge length, metres.
        coords: (V, 3) int32 integer grid coordinates, shifted so the minimum is 0.
        centers: (V, 3) float32 mean position of the points in each voxel.
        point_to_voxel: (N,) int64 index of each point's voxel.
        counts: (V,) int64 points per voxel.
    """

    voxel_size: float
    coords: np.ndarray
    centers: np.ndarray
    point_to_voxel: np.ndarray
    counts: np.ndarray

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Mean of per-point ``values`` (N, C) over each voxel -> (V, C) float32."""
        values = np.asarray(values)
        dtype = torch.float64 if values.dtype == np.float64 else torch.float32
        src = torch.from_numpy(np.require(values, requirements=["C", "W"])).to(dtype)  # copies read-only (mmap) input
        out = torch.zeros((self.num_voxels, values.shape[1]), dtype=dtype)
        # scatter_add_ with an expanded index runs in parallel; index_add_ and np.add.at are serial on CPU
        idx = torch.from_numpy(self.point_to_voxel)[:, None].expand(-1, values.shape[1])
        out.scatter_add_(0, idx, src)
        out /= torch.from_numpy(self.counts).to(dtype)[:, None]
        return out.numpy().astype(np.float32, copy=False)

    def expand(self, voxel_values: np.ndarray) -> np.ndarray:
        """Copy per-voxel values (V, C) back to the points -> (N, C)."""
        return voxel_values[self.point_to_voxel]


def voxelize(points: np.ndarray, voxel_size: float) -> VoxelGrid:
    """Group (N, 3) points into voxels of ``voxel_size`` metres.

    >>> g = voxelize(np.array([[0.0, 0, 0], [0.01, 0, 0], [0.05, 0, 0]], np.float32), 0.02)
    >>> g.num_voxels, g.point_to_voxel.tolist()
    (2, [0, 0, 1])
    """
    points = np.asarray(points, dtype=np.float64)
    grid = np.floor(points / voxel_size).astype(np.int64)
    grid -= grid.min(axis=0)
    if grid.max() >= 2**20:
        raise ValueError(f"scene spans more than 2^20 voxels of {voxel_size} m along an axis")
    key = (grid[:, 0] << 42) | (grid[:, 1] << 21) | grid[:, 2]
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    coords = np.stack([uniq >> 42, (uniq >> 21) & (2**21 - 1), uniq & (2**21 - 1)], axis=1).astype(np.int32)
    g = VoxelGrid(voxel_size, coords, np.zeros((len(uniq), 3), np.float32), inverse.astype(np.int64), counts)
    g.centers = g.reduce(points)
    return g
