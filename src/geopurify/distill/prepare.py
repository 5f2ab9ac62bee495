"""Build a :class:`TrainScene` from a scene, its lifted features and a teacher."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..geometry import estimate_normals, voxelize
from ..io.scene import Scene
from ..student import student_inputs
from ..teachers import Teacher, build_teacher
from .config import TrainScene


def build_train_scene(
    scene: Scene, lifted: np.ndarray, teacher: Teacher | None = None, voxel_size: float = 0.02
) -> TrainScene:
    """Voxelise ``scene`` and assemble student inputs and teacher features.

    Args:
        scene: the scan (points, colours, optional normals/faces).
        lifted: (N, D) float32 per-point lifted 2D features.
        teacher: a :class:`Teacher` (default: ``build_teacher("geometric")``).
        voxel_size: metres.
    """
    lifted = np.asarray(lifted)
    if lifted.ndim != 2 or lifted.shape[0] != scene.num_points:
        raise InputError(f"{scene.name}: lifted features {lifted.shape} do not match {scene.num_points} points")
    grid = voxelize(scene.points, voxel_size)
    normals = grid.reduce(scene.normals) if scene.normals is not None else estimate_normals(grid.centers)
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    inputs = student_inputs(grid.reduce(lifted), grid.reduce(scene.colors), normals)
    teacher = teacher or build_teacher("geometric")
    return TrainScene(scene.name, grid.coords, grid.centers, inputs, teacher.features(scene, grid))
