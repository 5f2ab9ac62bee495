"""Lifting: project points into posed frames, test visibility, fuse the 2D features they see."""

from .lift import LiftConfig, LiftedFeatures, frame_view, lift
from .projection import (
    PointProjector,
    Projection,
    camera_points,
    check_pose,
    project_camera,
    project_points,
    visible_mask,
)

__all__ = [
    "LiftConfig",
    "LiftedFeatures",
    "PointProjector",
    "Projection",
    "camera_points",
    "check_pose",
    "frame_view",
    "lift",
    "project_camera",
    "project_points",
    "visible_mask",
]
