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

    @abstractmethod
    def features(self, scene: Scene, grid: VoxelGrid) -> np.ndarray:
        """Per-voxel teacher features (V, T) float32 for ``grid`` (built from ``scene.points``)."""

    def cache_key(self) -> str:
        """A string that changes whenever the features would."""
        return self.name


TEACHERS: Registry[Teacher] = Registry("teacher", "geopurify.teachers")
