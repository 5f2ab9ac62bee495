"""Analytic ray casting of a box layout, plus camera intrinsics and look-at poses.

Each box is only tested against the pixels inside its projected bounding rectangle, so the cost is
the sum of the boxes' image areas rather than pixels x boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import Layout

NEAR = 0.05


@dataclass
class Render:
    """What one camera sees.

    Attributes:
        depth: (H, W) float32 z-depth in metres along the optical axis, 0 where nothing is hit.
        box: (H, W) int32 box hit, -1 where nothing is hit.
        points: (H, W, 3) float32 world hit points (0 where nothing is hit).
        normals: (H, W, 3) float32 outward normals of the hit faces.
    """

    depth: np.ndarray
    box: np.ndarray
    points: np.ndarray
    normals: np.ndarray


def intrinsics(hw: tuple[int, int], fov_deg: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(3, 3) float64 pinhole K for an (H, W) image with the given horizontal field of view.

    Pixel centres sit at integer coordinates (OpenCV). ``offset`` shifts the principal point (pixels).
    """
    h, w = hw
    f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0, (w - 1) / 2 + offset[0]], [0, f, (h - 1) / 2 + offset[1]], [0, 0, 1.0]])


def rescale_intrinsics(K: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """K of the same camera for an image resized from ``src_hw`` to ``dst_hw`` (centre-aligned pixels)."""
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    out = K.astype(np.float64).copy()
    out[0, 0], out[1, 1] = K[0, 0] * sx, K[1, 1] * sy
    out[0, 2], out[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
    return out


def look_at(eye: np.ndarray, target: np.ndarray, roll_deg: float = 0.0) -> np.ndarray:
    """(4, 4) float64 camera-to-world pose (OpenCV: x right, y down, z forward), world z up."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-6:  # looking straight down/up
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    if roll_deg:
        c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
        x, y = c * x + s * y, -s * x + c * y
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def render(layout: Layout, K: np.ndarray, camera_to_world: np.ndarray, hw: tuple[int, int],
           pixel_centers: tuple[np.ndarray, np.ndarray] | None = None) -> Render:  # fmt: skip
    """Ray-cast the layout from one camera.

    Args:
        K: (3, 3) intrinsics; camera_to_world: (4, 4) pose; hw: (H, W) output size.
        pixel_centers: optional (u (W,), v (H,)) image coordinates the rays go through; by default
            the integer pixel centres 0..W-1, 0..H-1.
    """
    H, W = hw
    u, v = pixel_centers if pixel_centers is not None else (np.arange(W, dtype=float), np.arange(H, dtype=float))
    R, o = camera_to_world[:3, :3], camera_to_world[:3, 3]
    # Camera-space directions with z = 1, so the ray parameter t is the z-depth.
    dc = np.stack(np.broadcast_arrays((u[None, :] - K[0, 2]) / K[0, 0], (v[:, None] - K[1, 2]) / K[1, 1], 1.0), -1)
    d = dc @ R.T
    d = np.where(np.abs(d) < 1e-9, 1e-9, d)
    inv = np.ascontiguousarray((1.0 / d).astype(np.float32).transpose(2, 0, 1))  # (3, H, W)
    zbuf = np.full((H, W), np.inf, dtype=np.float32)
    hit_box = np.full((H, W), -1, dtype=np.int32)
    hit_axis = np.zeros((H, W), dtype=np.int8)

    # Pixel rectangle each box covers, for all boxes at once: (B, 8) projected corners.
    w2c = np.linalg.inv(camera_to_world)
    corners = np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), -1).reshape(-1, 3)
    pts = np.where(corners[None] == 0, layout.lo[:, None], layout.hi[:, None])  # (B, 8, 3)
    pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
    zc = pc[..., 2]
    all_front = np.all(zc > NEAR, axis=1)
    any_front = np.any(zc >= NEAR, axis=1)
    zs = np.where(zc > NEAR, zc, 1.0)
    px, py = pc[..., 0] / zs * K[0, 0] + K[0, 2], pc[..., 1] / zs * K[1, 1] + K[1, 2]
    c0s, c1s = np.searchsorted(u, px.min(1) - 1), np.searchsorted(u, px.max(1) + 1)
    r0s, r1s = np.searchsorted(v, py.min(1) - 1), np.searchsorted(v, py.max(1) + 1)
    # Boxes crossing the near plane get the whole image (rare: walls, floor, very close objects).
    c0s, r0s = np.where(all_front, c0s, 0), np.where(all_front, r0s, 0)
    c1s, r1s = np.where(all_front, c1s, W), np.where(all_front, r1s, H)
    todo = np.nonzero(any_front & (c0s < W) & (r0s < H) & (c1s > 0) & (r1s > 0) & (c1s > c0s) & (r1s > r0s))[0]
    for b in todo:
        lo, hi = layout.lo[b], layout.hi[b]
        c0, c1, r0, r1 = int(c0s[b]), int(c1s[b]), int(r0s[b]), int(r1s[b])
        # Slab test, one axis at a time (reductions over a length-3 last axis are slow in numpy).
        tmin = tmax = None
        enter = []
        for a in range(3):
            ia = inv[a, r0:r1, c0:c1]
            t1, t2 = np.float32(lo[a] - o[a]) * ia, np.float32(hi[a] - o[a]) * ia
            tn, tx = np.minimum(t1, t2), np.maximum(t1, t2)
            enter.append(tn)
            tmin = tn if tmin is None else np.maximum(tmin, tn)
            tmax = tx if tmax is None else np.minimum(tmax, tx)
        zb = zbuf[r0:r1, c0:c1]
        hit = (tmin > NEAR) & (tmin <= tmax) & (tmin < zb)
        if not hit.any():
            continue
        zb[hit] = tmin[hit]
        hit_box[r0:r1, c0:c1][hit] = b
        hit_axis[r0:r1, c0:c1][hit] = np.argmax(np.stack([e[hit] for e in enter], 1), axis=1)

    valid = hit_box >= 0
    depth = np.where(valid, zbuf, 0.0)
    points = np.where(valid[..., None], o + d * depth[..., None], 0.0)
    normals = np.zeros((H, W, 3))
    rr, cc = np.nonzero(valid)
    ax = hit_axis[rr, cc]
    normals[rr, cc, ax] = -np.sign(d[rr, cc, ax])
    return Render(
        depth=depth.astype(np.float32),
        box=hit_box,
        points=points.astype(np.float32),
        normals=normals.astype(np.float32),
    )
