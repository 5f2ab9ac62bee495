"""Boxes around point sets: axis-aligned, and upright of minimum footprint area (z up)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Box:
    """An upright box: ``center`` (3,) and ``size`` (3,) float64 metres, rotated by ``yaw`` about z.

    ``size`` is measured along the rotated x and y axes (and z); ``yaw = 0`` is an axis-aligned box.
    """

    center: np.ndarray
    size: np.ndarray
    yaw: float = 0.0

    def corners(self) -> np.ndarray:
        """(8, 3) float64 corners: bottom face counter-clockwise, then the top face."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        unit = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                         [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], np.float64)  # fmt: skip
        return (unit * (np.asarray(self.size) / 2)) @ R.T + np.asarray(self.center)

    def to_dict(self) -> dict:
        return {"center": [float(v) for v in self.center], "size": [float(v) for v in self.size],
                "yaw": float(self.yaw)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Box:
        return cls(np.asarray(d["center"], np.float64), np.asarray(d["size"], np.float64), float(d.get("yaw", 0.0)))


def axis_aligned_box(points: np.ndarray) -> Box:
    """Tightest axis-aligned box of ``points (M, 3)``, M >= 1."""
    p = np.asarray(points, np.float64)
    lo, hi = p.min(axis=0), p.max(axis=0)
    return Box((lo + hi) / 2, hi - lo, 0.0)


def oriented_box(points: np.ndarray) -> Box:
    """Smallest upright box of ``points (M, 3)``: the minimum-area rectangle of their floor-plane (x, y)
    footprint (one of its sides lies along an edge of the footprint's convex hull), with their z extent.

    ``yaw`` is the angle of the longer side, in [0, pi), and ``size[0] >= size[1]``. Its footprint is never
    larger than the axis-aligned box's. A footprint with no area (fewer than 3 points, collinear or
    coincident in x, y): along the direction of the spread (axis-aligned when it has none).
    """
    p = np.asarray(points, np.float64)
    xy = p[:, :2]
    origin = xy.mean(axis=0)
    hull = _hull(xy - origin) if len(p) >= 3 else None
    if hull is None:  # no area: the direction of the spread decides
        d = xy - origin
        w, v = np.linalg.eigh(d.T @ d)
        angles = np.array([np.arctan2(v[1, -1], v[0, -1])]) if w[-1] > 0 else np.zeros(1)
        hull = d
    else:
        edges = np.roll(hull, -1, axis=0) - hull
        angles = np.arctan2(edges[:, 1], edges[:, 0]) % (np.pi / 2)  # a rectangle repeats every 90 degrees
        angles[angles > np.pi / 2 - 1e-12] = 0.0  # -0.0 % (pi / 2) is pi / 2: the same direction as 0
    c, s = np.cos(angles), np.sin(angles)
    u = hull[:, 0][None, :] * c[:, None] + hull[:, 1][None, :] * s[:, None]  # (A, H) along each direction
    v = -hull[:, 0][None, :] * s[:, None] + hull[:, 1][None, :] * c[:, None]
    du, dv = u.max(axis=1) - u.min(axis=1), v.max(axis=1) - v.min(axis=1)
    k = int(np.argmin(du * dv))
    yaw, mid_u, mid_v = angles[k], (u[k].max() + u[k].min()) / 2, (v[k].max() + v[k].min()) / 2
    size_xy = np.array([du[k], dv[k]])
    if dv[k] > du[k]:  # the longer side gives the yaw
        yaw += np.pi / 2
        size_xy = size_xy[::-1]
    yaw = float(yaw % np.pi)
    yaw = 0.0 if yaw > np.pi - 1e-12 else yaw
    ca, sa = np.cos(angles[k]), np.sin(angles[k])
    center_xy = origin + np.array([ca * mid_u - sa * mid_v, sa * mid_u + ca * mid_v])
    zlo, zhi = p[:, 2].min(), p[:, 2].max()
    return Box(np.array([center_xy[0], center_xy[1], (zlo + zhi) / 2]),
               np.array([size_xy[0], size_xy[1], zhi - zlo]), yaw)  # fmt: skip


def _hull(xy: np.ndarray) -> np.ndarray | None:
    """(H, 2) convex hull vertices of ``xy (M, 2)`` in order, or None when the points span no area."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(xy)
    except (QhullError, ValueError):
        return None
    if hull.volume <= 1e-12 * max(float(np.ptp(xy, axis=0).max()) ** 2, 1e-300):  # "volume" is the 2-D area
        return None
    return xy[hull.vertices]
