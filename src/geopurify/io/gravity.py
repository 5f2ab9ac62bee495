"""Gravity for a capture whose world frame is not z up (7-Scenes' is its first camera's: y down).

Every stage after reading takes z as up (top-down pictures, the viewer, the floor of ``instances``), so
a cloud fused from depth in such a frame is rotated once, with its cameras, right after fusion
(:func:`level_scene`). The up direction comes from the cameras (hand-held cameras are upright: their
mean "up", ``-y``, is near gravity, but tilted by the mean pitch when they all look one way), refined
on the cloud's horizontal surfaces (floor, table and counter tops): the mean of the normals within a
shrinking cone around the estimate.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: a world whose up is within this angle (degrees) of +z is left as it is (ScanNet, TUM, most captures)
LEVEL_MIN_ANGLE = 30.0
_CONES = (30.0, 15.0, 8.0, 5.0)  # degrees, the refinement's shrinking cones


def up_direction(camera_to_world: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """(3,) float64 unit up vector of a capture's world.

    Args:
        camera_to_world: (F, 4, 4) poses, OpenCV cameras (y down).
        normals: (N, 3) unit normals of the scene's points, or None (then the cameras' estimate alone).
    """
    up = -np.asarray(camera_to_world, np.float64)[:, :3, 1].mean(0)
    up /= max(float(np.linalg.norm(up)), 1e-12)
    if normals is None or len(normals) == 0:
        return up
    n = np.asarray(normals, np.float64)
    for cone in _CONES:
        d = n @ up
        near = np.abs(d) > np.cos(np.radians(cone))
        if near.sum() < 100:  # too few horizontal samples to trust: keep what we have
            break
        m = (n[near] * np.sign(d[near])[:, None]).sum(0)
        up = m / np.linalg.norm(m)
    return up


def rotation_to_z(up: np.ndarray) -> np.ndarray:
    """(3, 3) float64 rotation taking the unit vector ``up`` to +z by the shortest arc."""
    u = np.asarray(up, np.float64) / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(u, z), float(u @ z)
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * ((1 - c) / s**2)


def level_scene(scene, min_angle: float = LEVEL_MIN_ANGLE) -> np.ndarray | None:
    """Rotate ``scene`` (points, normals and every frame's pose) so that z is up, when its up is more
    than ``min_angle`` degrees from +z. Records the (3, 3) rotation (new = R @ old) in
    ``scene.meta["world_rotation"]`` and returns it; None when the world was left as it is."""
    if not scene.frames or scene.num_points == 0:
        return None
    poses = np.stack([f.camera_to_world for f in scene.frames])
    up = up_direction(poses, scene.normals)
    angle = float(np.degrees(np.arccos(np.clip(up[2], -1.0, 1.0))))
    if angle <= min_angle:
        return None
    R = rotation_to_z(up)
    scene.points = (scene.points.astype(np.float64) @ R.T).astype(np.float32)
    if scene.normals is not None:
        scene.normals = (scene.normals.astype(np.float64) @ R.T).astype(np.float32)
    T = np.eye(4)
    T[:3, :3] = R
    for f in scene.frames:
        f.camera_to_world = T @ f.camera_to_world
    scene.meta["world_rotation"] = R.round(6).tolist()
    log.info("%s: the world's up was %s (%.0f degrees from +z): rotated so that z is up (new = R @ old, "
             "R = %s; --no-level keeps the capture's own frame)", scene.name, np.round(up, 3).tolist(), angle,
             R.round(4).tolist())
    return R
