"""Pinhole projection and the visibility test (frustum, border, depth consistency).

Pixel convention (OpenCV): pixel ``(i, j)`` has its centre at integer coordinates ``u = i, v = j``,
so the pixel a projection falls in is ``rint(u), rint(v)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FrameError


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


def visible_mask(
    proj: Projection,
    image_hw: tuple[int, int],
    border: int = 10,
    depth: np.ndarray | None = None,
    depth_proj: Projection | None = None,
    tolerance: float = 0.05,
) -> np.ndarray:
    """(N,) bool: which projected points a frame sees.

    A point is visible when ``z > 0``, its pixel ``rint(u), rint(v)`` lies inside the ``image_hw``
    image at least ``border`` pixels from every edge, and -- when ``depth`` is given -- the depth
    image at the point's pixel in the DEPTH image (``depth_proj``, which defaults to ``proj`` for
    aligned images) is valid (> 0) and ``|depth - z| <= tolerance * depth`` (occlusion test).

    Args:
        proj: projection into the colour image.
        image_hw: (H, W) of the colour image.
        depth: (Hd, Wd) float depth in metres, 0 = invalid, or None to skip the occlusion test.
        depth_proj: projection into the depth image (own intrinsics, same pose).
    """
    H, W = image_hw
    with np.errstate(invalid="ignore"):
        ui, vi = np.rint(proj.u), np.rint(proj.v)
        ok = (proj.z > 0) & (ui >= border) & (ui < W - border) & (vi >= border) & (vi < H - border)
    if depth is None:
        return ok
    dp = proj if depth_proj is None else depth_proj
    if depth_proj is None and tuple(depth.shape) != (H, W):
        raise ValueError(f"depth image {depth.shape} differs from colour {image_hw}: pass depth_proj")
    Hd, Wd = depth.shape
    with np.errstate(invalid="ignore"):
        ud, vd = np.rint(dp.u), np.rint(dp.v)
        ok &= (ud >= 0) & (ud < Wd) & (vd >= 0) & (vd < Hd)
    sel = np.flatnonzero(ok)
    d = depth[vd[sel].astype(np.int64), ud[sel].astype(np.int64)].astype(np.float64)
    good = (d > 0) & (np.abs(d - dp.z[sel]) <= tolerance * d)
    ok[sel[~good]] = False
    return ok


def check_pose(camera_to_world: np.ndarray, source: str = "") -> None:
    """Raise FrameError(reason="bad_pose") unless the (4, 4) pose is finite and rigid."""
    T = np.asarray(camera_to_world, dtype=np.float64)
    where = f"{source}: " if source else ""
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise FrameError(f"{where}camera pose is not a finite 4x4 matrix", reason="bad_pose")
    R = T[:3, :3]
    rigid = (
        np.allclose(T[3], [0, 0, 0, 1], atol=1e-6)
        and np.allclose(R.T @ R, np.eye(3), atol=1e-3)
        and np.linalg.det(R) > 0
    )
    if not rigid:
        raise FrameError(f"{where}camera pose is not a rigid transform", reason="bad_pose")
