"""Teacher features given per point, in a ``.npy`` file or ``scene.teacher_features``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, load_reason
from ..geometry import VoxelGrid
from ..io.scene import Scene
from .base import TEACHERS, Teacher


@TEACHERS.register("precomputed")
class PrecomputedTeacher(Teacher):
    """Per-point features (N, T) averaged per voxel.

    Args:
        path: a ``.npy`` (N, T) file; ``{scene}`` in it is replaced by the scene name. Without it,
            ``scene.teacher_features`` is used.
    """

    name = "precomputed"

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = str(path) if path is not None else None

    def cache_key(self) -> str:
        return f"precomputed-{self.path}"

    def features(self, scene: Scene, grid: VoxelGrid, lifted: np.ndarray | None = None) -> np.ndarray:
        n = scene.num_points
        if self.path is not None:
            src = Path(self.path.format(scene=scene.name))
            try:
                feats = np.load(src, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise InputError(f"{src}: teacher feature file not found") from None
            except (ValueError, OSError) as exc:
                raise InputError(f"{src}: not a readable .npy file ({load_reason(exc)})") from None
        elif scene.teacher_features is not None:
            src, feats = f"{scene.name}.teacher_features", scene.teacher_features
        else:
            raise ConfigError(f"precomputed teacher: scene {scene.name} has no teacher_features; pass path=<.npy>")
        if feats.ndim != 2 or feats.shape[0] != n:
            raise InputError(f"{src}: teacher features have shape {feats.shape}, expected ({n}, T) for {n} points")
        feats = np.asarray(feats, dtype=np.float32)
        if not np.isfinite(feats).all():
            raise InputError(f"{src}: teacher features contain NaN or inf")
        return grid.reduce(feats)
