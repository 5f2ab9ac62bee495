"""The pinhole camera: world -> camera coordinates -> pixels (OpenCV: x right, y down, z forward).

One projection for io (the free-space check of depth fusion) and lifting alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Projection:
    """Points projected into one camera.

    Attributes:
        u, v: (N,) float64 pixel coordinates (x right, y down); non-finite where ``z <= 0``.
        z: (N,) float64 depth along the optical axis, metres (negative behind the camera).
    """

    u: np.ndarray
    v: np.ndarray
    z: np.ndarray


def camera_points(points: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:
    """(N, 3) float64 camera coordinates of (N, 3) world ``points`` under a (4, 4) world-to-camera matrix."""
    T = np.asarray(world_to_camera, dtype=np.float64)
    P = np.asarray(points, dtype=np.float64)
    # explicit 3x3 products: a (N,3)@(3,3) matmul goes through BLAS threads and is slower here
    out = np.empty((len(P), 3), dtype=np.float64)
    for r in range(3):
        out[:, r] = P[:, 0] * T[r, 0] + P[:, 1] * T[r, 1] + P[:, 2] * T[r, 2] + T[r, 3]
    return out


def project_camera(cam: np.ndarray, K: np.ndarray) -> Projection:
    """Project (N, 3) camera-frame points with (3, 3) intrinsics ``K``."""
    K = np.asarray(K, dtype=np.float64)
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(z > 0, 1.0 / z, np.nan)
        u = (K[0, 0] * cam[:, 0] + K[0, 1] * cam[:, 1]) * inv + K[0, 2]
        v = K[1, 1] * cam[:, 1] * inv + K[1, 2]
    return Projection(u=u, v=v, z=z)


def project_points(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray) -> Projection:
    """Project (N, 3) world points through a pinhole camera.

    Args:
        points: (N, 3) float world coordinates.
        K: (3, 3) intrinsics in pixels.
        world_to_camera: (4, 4) rigid transform (inverse of the camera-to-world pose).
    Returns:
        :class:`Projection` with (N,) float64 ``u, v, z``.

    >>> p = project_points(np.array([[0.5, -0.25, 2.0]]), np.array([[100, 0, 50], [0, 100, 40], [0, 0, 1]]), np.eye(4))
    >>> float(p.u[0]), float(p.v[0]), float(p.z[0])
    (75.0, 27.5, 2.0)
    """
    return project_camera(camera_points(points, world_to_camera), K)
