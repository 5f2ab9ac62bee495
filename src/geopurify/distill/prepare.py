"""Build a :class:`TrainScene` from a scene, its lifted features and a teacher."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..geometry import VOXEL_SIZE, VoxelGrid, estimate_normals, voxelize
from ..io.scene import Scene
from ..student import student_inputs
from ..teachers import Teacher, build_teacher
from .config import TrainScene


def student_voxel_inputs(scene: Scene, grid: VoxelGrid, lifted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel student inputs ``(V, D + 6)`` float32 [unit lifted | rgb | normal] and the mean lifted
    features ``(V, D)`` float32 of ``grid`` (built from ``scene.points``)."""
    lifted = np.asarray(lifted)
    if lifted.ndim != 2 or lifted.shape[0] != scene.num_points:
        raise InputError(f"{scene.name}: lifted features {lifted.shape} do not match {scene.num_points} points")
    normals = grid.reduce(scene.normals) if scene.normals is not None else estimate_normals(grid.centers)
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    vf = grid.reduce(lifted)
    return student_inputs(vf, grid.reduce(scene.colors), normals), vf


def voxel_inputs(scene: Scene, lifted: np.ndarray, voxel_size: float = VOXEL_SIZE):
    """The voxel grid of ``scene``, per-voxel student inputs ``(V, D + 6)`` and mean features ``(V, D)``."""
    grid = voxelize(scene.points, voxel_size)
    inputs, vf = student_voxel_inputs(scene, grid, lifted)
    return grid, inputs, vf


def build_train_scene(
    scene: Scene, lifted: np.ndarray, teacher: Teacher | None = None, voxel_size: float = VOXEL_SIZE,
    grid: VoxelGrid | None = None,
) -> TrainScene:
    """Voxelise ``scene`` and assemble student inputs and teacher features.

    Args:
        scene: the scan (points, colours, optional normals/faces).
        lifted: (N, D) float32 per-point lifted 2D features.
        teacher: a :class:`Teacher` (default: ``build_teacher("geometric")``).
        voxel_size: metres.
        grid: the voxel grid, when the caller has built it already.
    """
    grid = grid if grid is not None else voxelize(scene.points, voxel_size)
    inputs, _ = student_voxel_inputs(scene, grid, lifted)
    teacher = teacher or build_teacher("geometric")
    feats = np.asarray(teacher.features(scene, grid, lifted), np.float32)
    if feats.shape[0] != grid.num_voxels:
        raise InputError(f"{scene.name}: teacher gave {feats.shape[0]} rows for {grid.num_voxels} voxels")
    return TrainScene(scene.name, grid.coords, grid.centers, inputs, feats, teacher.last_segments)
