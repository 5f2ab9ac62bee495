"""Shared geometry: voxel grids, normals and nearest-neighbour search."""

from .voxel import VoxelGrid, voxelize
from .normals import estimate_normals, mesh_normals
from .knn import knn

__all__ = ["VoxelGrid", "voxelize", "estimate_normals", "mesh_normals", "knn"]
