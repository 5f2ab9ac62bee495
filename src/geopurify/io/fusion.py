"""A point cloud built from posed depth frames, for captures that come without a mesh.

Two passes over the frames, both vectorised per frame and memory-bounded (only one depth image and
the per-voxel accumulators are held at a time):

1. **Integrate.** Each frame's valid depth is back-projected (every ``stride``-th pixel) after
   rejecting depth discontinuities (flying pixels at object borders) and grazing-angle samples.
   Samples are merged into a voxel grid as a weighted mean (weight ``cos(view angle) / z^2``, the
   inverse of the Kinect noise growth), so each voxel holds one point *on* the surface.
2. **Check.** Every fused point is projected into every frame and compared with that frame's depth,
   TSDF-style: ``|d - z| <= tau`` supports it, ``d - z > tau`` (the frame sees *through* it, i.e. it
   lies in free space) violates it. Points with more violations than support, or less than
   ``min_support`` supporting frames, are dropped. This removes the smeared, in-front-of-the-wall
   samples that make a wall a slab, and leftover flying pixels.

Normals come from local PCA on the fused cloud, oriented towards the cameras that saw each point.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from ..errors import FrameError, InputError
from ..geometry import estimate_normals
from ..utils.progress import bar_disable
from .scene import Frame

log = logging.getLogger(__name__)

_OFFSET = 1 << 20  # voxel keys: 21 bits per axis, centred, so +-20 km at 2 cm
_BUFFER_ROWS = 2_000_000  # consolidate the per-frame partial sums beyond this many rows


class FusedCloud(NamedTuple):
    """points (M, 3) float32 world metres; colors (M, 3) float32 in [0, 1]; normals (M, 3) float32 unit."""

    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) metres + (3, 3) intrinsics -> (H, W, 3) float32 camera-frame points (OpenCV axes)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    x = (u - cx) / fx * depth
    y = (v - cy) / fy * depth
    return np.stack([x, y, depth], axis=-1).astype(np.float32)


def valid_depth_mask(
    depth: np.ndarray,
    K: np.ndarray,
    min_depth: float = 0.1,
    max_depth: float = 6.0,
    edge_ratio: float = 0.05,
    min_cos: float = 0.15,
    normal_step: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Which depth pixels to trust, and the cosine between their surface normal and view ray.

    Rejects pixels outside [min_depth, max_depth], pixels whose 4-neighbourhood jumps by more than
    ``edge_ratio * depth`` (or touches invalid depth: the border of a hole is unreliable), and
    pixels whose surface is seen at a grazing angle (``cos < min_cos``).

    Returns (mask (H, W) bool, cos (H, W) float32 in [0, 1]).
    """
    d = depth.astype(np.float32)
    ok = (d > min_depth) & (d < max_depth) & np.isfinite(d)
    dz = np.where(ok, d, 0.0)
    pad = np.pad(dz, 1, mode="edge")
    jump = np.zeros_like(dz)
    for nb in (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]):
        jump = np.maximum(jump, np.where(nb > 0, np.abs(nb - dz), np.inf))
    ok &= jump <= edge_ratio * dz
    # surface normal from central differences of the back-projected points
    P = backproject(dz, K)
    s = max(1, int(normal_step))
    Pp = np.pad(P, ((s, s), (s, s), (0, 0)), mode="edge")
    du = Pp[s:-s, 2 * s :] - Pp[s:-s, : -2 * s]
    dv = Pp[2 * s :, s:-s] - Pp[: -2 * s, s:-s]
    n = np.cross(du, dv)
    n_norm = np.linalg.norm(n, axis=-1)
    ray_norm = np.linalg.norm(P, axis=-1)
    cos = np.abs(np.einsum("hwc,hwc->hw", n, P)) / np.maximum(n_norm * ray_norm, 1e-12)
    ok &= (cos >= min_cos) & (n_norm > 0)
    return ok, cos.astype(np.float32)


def _pack(cells: np.ndarray) -> np.ndarray:
    c = cells + _OFFSET
    if (c < 0).any() or (c >= 2 * _OFFSET).any():
        raise InputError("fused cloud spans more than 2^21 voxels along an axis; check the poses' units")
    return (c[:, 0] << 42) | (c[:, 1] << 21) | c[:, 2]


def _consolidate(keys: list[np.ndarray], sums: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sum rows with equal keys. keys: list of (n_i,) int64; sums: list of (n_i, C) float64."""
    k = np.concatenate(keys)
    s = np.concatenate(sums)
    uniq, inv = np.unique(k, return_inverse=True)
    out = np.zeros((len(uniq), s.shape[1]), dtype=np.float64)
    np.add.at(out, inv, s) if len(k) < 4096 else _index_add(out, inv, s)
    return uniq, out


def _index_add(out: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    import torch

    torch.from_numpy(out).index_add_(0, torch.from_numpy(index.astype(np.int64)), torch.from_numpy(values))


def _color_lookup(frame: Frame, color: np.ndarray, pc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (M, 3) float in [0, 1] of camera points pc (M, 3) and a validity mask (M,).

    Depth and colour are treated as registered (same optical centre), as ScanNet's and 7-Scenes'
    exports do; only the intrinsics and image sizes may differ.
    """
    K = frame.K_color
    z = pc[:, 2]
    u = np.round(pc[:, 0] / z * K[0, 0] + K[0, 2]).astype(np.int64)
    v = np.round(pc[:, 1] / z * K[1, 1] + K[1, 2]).astype(np.int64)
    h, w = color.shape[:2]
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    rgb = np.zeros((len(pc), 3), dtype=np.float64)
    rgb[ok] = color[v[ok], u[ok]] / 255.0
    return rgb, ok


def fuse_depth(
    frames: Sequence[Frame],
    voxel_size: float = 0.02,
    *,
    stride: int = 2,
    min_depth: float = 0.1,
    max_depth: float = 6.0,
    edge_ratio: float = 0.05,
    min_cos: float = 0.15,
    check: bool = True,
    tolerance: float = 0.02,
    min_support: int = 1,
) -> FusedCloud:
    """Fuse posed depth frames into one geometrically consistent coloured cloud (one point per voxel).

    Args:
        frames: posed frames (``load_depth`` in metres, ``camera_to_world`` OpenCV, 4x4).
        voxel_size: merge grid, metres.
        stride: use every ``stride``-th pixel in both image axes (the edge/normal tests use all).
        min_depth, max_depth: trusted depth range, metres.
        edge_ratio: reject a pixel whose neighbour's depth differs by more than this fraction.
        min_cos: reject samples whose surface is seen at more than ``arccos(min_cos)`` from frontal.
        check: run the multi-view free-space check (pass 2).
        tolerance: pass-2 agreement band, metres at 1 m; it grows linearly with depth and is never
            below one voxel.
        min_support: a point needs this many frames whose depth agrees with it.

    Returns:
        FusedCloud(points (M, 3) float32, colors (M, 3) float32 in [0, 1], normals (M, 3) float32).

    Raises:
        InputError: no frame gave a single valid depth sample.
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    stride = max(1, int(stride))
    keys: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    rows = 0
    skipped: dict[str, int] = {}
    used = 0
    out_of_range: list[float] = []  # median depth (m) of frames whose depth lies wholly outside the range
    # columns: w, w*xyz (3), w*rgb (3), view direction sum (3), frames seeing it
    for frame in tqdm(frames, desc="fuse depth", unit="frame", disable=bar_disable()):
        try:
            depth = frame.depth()
            color = frame.color()
        except FrameError as exc:
            skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
            log.warning("fusion skips frame %s: %s", frame.frame_id, exc)
            continue
        mask, cos = valid_depth_mask(depth, frame.K_depth, min_depth, max_depth, edge_ratio, min_cos, stride)
        sub = (slice(None, None, stride), slice(None, None, stride))
        mask_s = mask[sub]
        if not mask_s.any():
            pos = depth[sub][depth[sub] > 0]
            if pos.size:  # depth there, all out of range: its median names a wrong depth scale
                out_of_range.append(float(np.median(pos)))
            continue
        v, u = np.nonzero(mask_s)
        v, u = v * stride, u * stride
        z = depth[v, u].astype(np.float64)
        K = frame.K_depth
        pc = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
        rgb, in_color = _color_lookup(frame, color, pc)
        pc, rgb, z, c = pc[in_color], rgb[in_color], z[in_color], cos[v, u][in_color].astype(np.float64)
        T = np.asarray(frame.camera_to_world, dtype=np.float64)
        pw = pc @ T[:3, :3].T + T[:3, 3]
        to_cam = T[:3, 3] - pw
        to_cam /= np.maximum(np.linalg.norm(to_cam, axis=1, keepdims=True), 1e-12)
        w = c / np.maximum(z, 0.3) ** 2
        k = _pack(np.floor(pw / voxel_size).astype(np.int64))
        uniq, inv = np.unique(k, return_inverse=True)
        vals = np.concatenate([w[:, None], w[:, None] * pw, w[:, None] * rgb, to_cam], axis=1)
        part = np.zeros((len(uniq), 11), dtype=np.float64)
        _index_add(part[:, :10], inv, vals)
        part[:, 10] = 1.0
        keys.append(uniq)
        sums.append(part)
        used += 1
        rows += len(uniq)
        if rows > _BUFFER_ROWS and len(keys) > 1:
            k1, s1 = _consolidate(keys, sums)
            keys, sums, rows = [k1], [s1], len(k1)
    if skipped:
        log.warning("fusion skipped %d bad frames: %s", sum(skipped.values()), skipped)
    if not keys:
        hint = ""
        if out_of_range:
            hint = (f"; the depth of {len(out_of_range)} frame(s) lies outside {min_depth:g}-{max_depth:g} m (median "
                    f"{np.median(out_of_range):.4g} m): is the depth scale right? (--depth-scale, depth units per "
                    "metre: 1000 for millimetres, 1 for float images in metres)")
        raise InputError(f"no valid depth in any of the {len(frames)} frames: cannot build a point cloud{hint}")
    _, acc = _consolidate(keys, sums)
    points = acc[:, 1:4] / acc[:, :1]
    colors = acc[:, 4:7] / acc[:, :1]
    view = acc[:, 7:10]
    log.info("fused %d frames into %d voxels of %.3f m", used, len(points), voxel_size)
    if check and used > 1:
        keep = consistency_mask(points, frames, voxel_size, tolerance, min_support, min_depth, max_depth)
        log.info("multi-view check keeps %d of %d points", int(keep.sum()), len(keep))
        points, colors, view = points[keep], colors[keep], view[keep]
    if len(points) == 0:
        raise InputError("no fused point is consistent across frames: check the poses and depth scale")
    normals = estimate_normals(points) if len(points) >= 3 else np.tile([0.0, 0.0, 1.0], (len(points), 1))
    flip = np.einsum("ij,ij->i", normals, view) < 0
    normals[flip] *= -1
    return FusedCloud(points.astype(np.float32), colors.clip(0, 1).astype(np.float32), normals.astype(np.float32))


def consistency_mask(
    points: np.ndarray,
    frames: Sequence[Frame],
    voxel_size: float = 0.02,
    tolerance: float = 0.02,
    min_support: int = 1,
    min_depth: float = 0.1,
    max_depth: float = 6.0,
    chunk: int = 1_000_000,
) -> np.ndarray:
    """(M,) bool: points whose depth agrees with at least ``min_support`` frames and is seen through
    (lies in front of the observed surface, i.e. in free space) by no more frames than agree with it.

    points (M, 3) world metres. The band is ``max(voxel_size, tolerance * depth)``.
    """
    from ..geometry.camera import camera_points, project_camera  # the one pinhole projection

    support = np.zeros(len(points), dtype=np.int32)
    violate = np.zeros(len(points), dtype=np.int32)
    for frame in tqdm(frames, desc="check cloud", unit="frame", disable=bar_disable()):
        try:
            depth = frame.depth()
        except FrameError:
            continue
        h, w = depth.shape
        W2C = np.linalg.inv(np.asarray(frame.camera_to_world, dtype=np.float64))
        K = frame.K_depth
        for s in range(0, len(points), chunk):
            proj = project_camera(camera_points(points[s : s + chunk], W2C), K)
            z = proj.z
            with np.errstate(invalid="ignore"):
                u, v = np.rint(proj.u), np.rint(proj.v)
                inside = (z > 1e-6) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
            idx = np.nonzero(inside)[0]
            d = depth[v[idx].astype(np.int64), u[idx].astype(np.int64)]
            good = (d > min_depth) & (d < max_depth)
            idx, d = idx[good], d[good]
            r = d - z[idx]
            band = np.maximum(voxel_size, tolerance * d)
            support[s + idx[np.abs(r) <= band]] += 1
            violate[s + idx[r > band]] += 1
    return (support >= min_support) & (violate <= support)
