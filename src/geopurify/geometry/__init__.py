"""Shared geometry: voxel grids, normals and nearest-neighbour search."""

from .knn import knn
from .normals import estimate_normals, mesh_normals
from .pose import pose_problem
from .voxel import VoxelGrid, voxelize

__all__ = ["VoxelGrid", "voxelize", "estimate_normals", "mesh_normals", "knn", "pose_problem"]
