"""Synthetic RGB-D captures with exact geometry: cameras inside an axis-aligned box room."""

from __future__ import annotations

import numpy as np

ROOM_LO = np.array([-2.0, -1.5, 0.0])
ROOM_HI = np.array([2.0, 1.5, 2.5])
K_SYN = np.array([[60.0, 0, 40.0], [0, 60.0, 30.0], [0, 0, 1]])  # 80x60 images
HW = (60, 80)


def look_at(eye, target, up=(0, 0, 1)) -> np.ndarray:
    """(4, 4) camera-to-world pose, OpenCV axes (x right, y down, z forward)."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


def render_box(pose: np.ndarray, K: np.ndarray = K_SYN, hw=HW) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast the room interior: depth (H, W) float64 metres (z along the optical axis) and
    colour (H, W, 3) uint8 coding which wall was hit (x-/x+/y-/y+/floor/ceiling)."""
    h, w = hw
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays_c = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    rays_w = rays_c @ pose[:3, :3].T
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = (ROOM_HI - o) / rays_w
        t_lo = (ROOM_LO - o) / rays_w
    t = np.where(rays_w > 0, t_hi, t_lo)  # exit distance per axis (z-unit rays: t = depth)
    t[~np.isfinite(t)] = np.inf
    axis = t.argmin(axis=-1)
    depth = t.min(axis=-1)
    sign = np.take_along_axis(rays_w, axis[..., None], -1)[..., 0] > 0
    wall = axis * 2 + sign
    palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30], [120, 120, 120], [240, 240, 240]])
    return depth, palette[wall].astype(np.uint8)


def wall_distance(points: np.ndarray) -> np.ndarray:
    """(N,) distance of each point to the nearest wall plane of the room."""
    return np.minimum(np.abs(points - ROOM_LO), np.abs(points - ROOM_HI)).min(axis=1)


def poses_circle(n: int, radius: float = 0.6, height: float = 1.2) -> list[np.ndarray]:
    out = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([radius * np.cos(a), radius * np.sin(a), height])
        target = eye + np.array([np.cos(a + 0.6), np.sin(a + 0.6), -0.25])
        out.append(look_at(eye, target))
    return out


def write_png16(path, depth_m: np.ndarray, scale: float, invalid: np.ndarray | None = None, invalid_value=0):
    from PIL import Image

    raw = np.round(depth_m * scale).clip(0, 65535).astype(np.uint16)
    if invalid is not None:
        raw[invalid] = invalid_value
    Image.fromarray(raw).save(path)
    return raw


def write_rgb(path, rgb: np.ndarray):
    from PIL import Image

    Image.fromarray(rgb).save(path)


def rot_to_quat(R):
    """(3,3) -> (qx, qy, qz, qw), a naive reference independent of the reader's formula."""
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return np.array([x, y, z, w])
