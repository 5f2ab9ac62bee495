"""Boxes around point sets: axis-aligned, and oriented by PCA in the floor plane (z up)."""

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
    """Upright box of ``points (M, 3)`` aligned with the principal axes of their floor-plane (x, y) spread.

    ``yaw`` is the angle of the major axis, in [0, pi); ``size[0] >= size[1]`` unless the spread is round.
    """
    p = np.asarray(points, np.float64)
    xy = p[:, :2] - p[:, :2].mean(axis=0)
    if len(p) < 3:
        return axis_aligned_box(p)
    w, v = np.linalg.eigh(xy.T @ xy)
    major = v[:, int(np.argmax(w))]
    yaw = float(np.arctan2(major[1], major[0]) % np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    local = xy @ np.array([[c, -s], [s, c]])  # coordinates along the major and minor axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    mid = (lo + hi) / 2
    center_xy = p[:, :2].mean(axis=0) + np.array([[c, -s], [s, c]]) @ mid
    zlo, zhi = p[:, 2].min(), p[:, 2].max()
    return Box(np.array([center_xy[0], center_xy[1], (zlo + zhi) / 2]),
               np.array([hi[0] - lo[0], hi[1] - lo[1], zhi - zlo]), yaw)  # fmt: skip
