"""The data every reader produces: :class:`Scene` with a lazy list of :class:`Frame`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Frame:
    """One posed RGB-D frame. Images load lazily, so a scene never holds all of them.

    Attributes:
        frame_id: the frame's name (e.g. ``"120"``), used to find ``features_2d/<id>.npz``.
        K_color: (3, 3) float64 colour intrinsics, pixels.
        K_depth: (3, 3) float64 depth intrinsics, pixels.
        camera_to_world: (4, 4) float64 pose (OpenCV camera: x right, y down, z forward).
        color_size: (H, W) of the colour image.
        depth_size: (Hd, Wd) of the depth image.
        load_color: returns (H, W, 3) uint8.
        load_depth: returns (Hd, Wd) float32 metres, 0 where invalid.
        source: where the frame came from, for error messages.
    """

    frame_id: str
    K_color: np.ndarray
    K_depth: np.ndarray
    camera_to_world: np.ndarray
    color_size: tuple[int, int]
    depth_size: tuple[int, int]
    load_color: Callable[[], np.ndarray]
    load_depth: Callable[[], np.ndarray]
    source: str = ""

    def color(self) -> np.ndarray:
        """(H, W, 3) uint8 colour image."""
        return self.load_color()

    def depth(self) -> np.ndarray:
        """(Hd, Wd) float32 depth in metres, 0 = invalid."""
        return self.load_depth()

    @property
    def world_to_camera(self) -> np.ndarray:
        """(4, 4) float64 inverse pose."""
        return np.linalg.inv(self.camera_to_world)


@dataclass
class Scene:
    """A scan to label.

    Attributes:
        name: scene name (``scene0000_00``).
        points: (N, 3) float32 world coordinates, metres; the points to label, in file order.
        colors: (N, 3) float32 in [0, 1].
        normals: (N, 3) float32 unit normals, or None until estimated.
        faces: (F, 3) int64 triangle indices, or None for a point cloud.
        labels: (N,) int64 ground-truth ids in ``label_set`` (e.g. NYU40 raw ids), or None.
        label_set: name of the label set ``labels`` uses (``"nyu40"``, ``"scannet20"``...).
        frames: posed RGB-D frames that see the scene (may be empty).
        root: the folder or file it was read from.
        point_features: (N, D) float32 per-point 2D features given directly, or None.
        teacher_features: (N, T) float32 per-point teacher features given directly, or None.
        skipped_frames: {reason: count} of frames a reader dropped.
        meta: anything else a reader wants to record in run.json.
    """

    name: str
    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray | None = None
    faces: np.ndarray | None = None
    labels: np.ndarray | None = None
    label_set: str | None = None
    frames: list[Frame] = field(default_factory=list)
    root: Path | None = None
    point_features: np.ndarray | None = None
    teacher_features: np.ndarray | None = None
    skipped_frames: dict[str, int] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    def ensure_normals(self) -> Scene:
        """Estimate ``normals`` (N, 3) float32 from the points when the scene has none (a point cloud without
        usable normals is read with None: the estimate is most of the time it takes to read a large cloud,
        and reading only the labels, as ``eval`` does, needs none). Returns the scene itself."""
        if self.normals is None:
            from ..geometry import estimate_normals  # scipy: loaded when needed

            self.normals = estimate_normals(self.points)
        return self

    def skip(self, reason: str) -> None:
        """Count one dropped frame under ``reason``."""
        self.skipped_frames[reason] = self.skipped_frames.get(reason, 0) + 1
