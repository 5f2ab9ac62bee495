"""The frozen 3D teacher interface and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..geometry import VoxelGrid
from ..io.scene import Scene
from ..registry import Registry


class Teacher(ABC):
    """A frozen 3D feature extractor whose feature similarities the student learns to mimic."""

    name: str = "teacher"
    #: (V,) int64 segment ids (e.g. superpoints) of the last :meth:`features` call, for samplers that
    #: spread anchors over segments; None when the teacher cuts no segments
    last_segments: np.ndarray | None = None

    @abstractmethod
    def features(self, scene: Scene, grid: VoxelGrid, lifted: np.ndarray | None = None) -> np.ndarray:
        """Per-voxel teacher features (V, T) float32 for ``grid`` (built from ``scene.points``).

        ``lifted``: the scene's (N, D) per-point lifted 2D features, for teachers that use them
        (the others ignore it). Never the ground truth: teachers are label-free.
        """

    def cache_key(self) -> str:
        """A string that changes whenever the features would."""
        return self.name


TEACHERS: Registry[Teacher] = Registry("teacher", "geopurify.teachers")
