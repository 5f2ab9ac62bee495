"""Camera pose validation, shared by the readers (drop at read time) and lifting (frames given directly)."""

from __future__ import annotations

import numpy as np


def pose_problem(pose: np.ndarray, tol: float = 1e-3) -> str | None:
    """Why a 4x4 camera-to-world pose is unusable, or None if it is a finite rigid transform.

    >>> pose_problem(np.eye(4)) is None
    True
    >>> pose_problem(np.full((4, 4), -np.inf))
    'non-finite pose'
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        return f"pose has shape {pose.shape}, expected 4x4"
    if not np.isfinite(pose).all():
        return "non-finite pose"
    R = pose[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > tol or abs(np.linalg.det(R) - 1) > tol:
        return "non-rigid pose (rotation is not orthonormal)"
    if np.abs(pose[3] - [0, 0, 0, 1]).max() > tol:
        return "pose's last row is not [0 0 0 1]"
    return None
