"""Lifting: project points into posed frames, test visibility, fuse the 2D features they see."""

from __future__ import annotations

from ..utils.lazy import lazy_exports

_WHERE = {
    "FUSIONS": "config",
    "LiftConfig": "config",
    "LiftedFeatures": "lift",
    "frame_view": "lift",
    "lift": "lift",
    "PointProjector": "projection",
    "Projection": "projection",
    "camera_points": "projection",
    "check_pose": "projection",
    "project_camera": "projection",
    "project_points": "projection",
    "visible_mask": "projection",
    "Lifted": "scene",
    "lift_scene": "scene",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
