"""Shared geometry: voxel grids, normals and nearest-neighbour search."""

from __future__ import annotations

from ..utils.lazy import lazy_exports

#: voxel edge (m) of the student and the pooling (the paper: 2 cm); written once, here
VOXEL_SIZE = 0.02

_WHERE = {
    "Projection": "camera",
    "camera_points": "camera",
    "project_camera": "camera",
    "project_points": "camera",
    "knn": "knn",
    "estimate_normals": "normals",
    "pca_axes": "normals",
    "mesh_normals": "normals",
    "pose_problem": "pose",
    "VoxelGrid": "voxel",
    "voxelize": "voxel",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
