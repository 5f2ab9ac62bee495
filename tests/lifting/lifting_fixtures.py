"""Synthetic posed RGB-D frames with a z-buffered depth image, and a fake encoder."""

from __future__ import annotations

import numpy as np
import pytest

from geopurify.encoders.base import Encoder, FeatureMap
from geopurify.errors import FrameError
from geopurify.io.scene import Frame


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world pose at ``eye`` looking at ``target`` (y down)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


def zbuffer(points: np.ndarray, K: np.ndarray, c2w: np.ndarray, hw: tuple[int, int], splat: int = 1) -> np.ndarray:
    """(H, W) float32 depth: the nearest point per pixel (splatted to a (2s+1)^2 square), 0 = empty."""
    H, W = hw
    T = np.linalg.inv(c2w)
    cam = points @ T[:3, :3].T + T[:3, 3]
    z = cam[:, 2]
    front = z > 0
    u = np.rint(K[0, 0] * cam[front, 0] / z[front] + K[0, 2]).astype(int)
    v = np.rint(K[1, 1] * cam[front, 1] / z[front] + K[1, 2]).astype(int)
    zf = z[front]
    depth = np.full((H, W), np.inf)
    for dy in range(-splat, splat + 1):
        for dx in range(-splat, splat + 1):
            uu, vv = u + dx, v + dy
            ok = (uu >= 0) & (uu < W) & (vv >= 0) & (vv < H)
            np.minimum.at(depth, (vv[ok], uu[ok]), zf[ok])
    depth[~np.isfinite(depth)] = 0
    return depth.astype(np.float32)


def make_frame(fid, K_c, K_d, c2w, color_hw, depth, source=None) -> Frame:
    return Frame(
        frame_id=str(fid),
        K_color=np.asarray(K_c, float),
        K_depth=np.asarray(K_d, float),
        camera_to_world=np.asarray(c2w, float),
        color_size=tuple(color_hw),
        depth_size=tuple(depth.shape),
        load_color=lambda: np.zeros((*color_hw, 3), np.uint8),
        load_depth=lambda: depth,
        source=source or f"frame{fid}",
    )


class FakeEncoder(Encoder):
    """Deterministic random feature maps per frame: dense, or segments with some unmasked pixels."""

    name = "fake"

    def __init__(self, dim: int = 6, hw=(12, 16), segments: bool = False, fail: set[str] = frozenset()):
        self.dim, self.hw, self.segments, self.fail = dim, hw, segments, set(fail)
        self.calls: list[str] = []

    def encode(self, frame) -> FeatureMap:
        self.calls.append(frame.frame_id)
        if frame.frame_id in self.fail:
            raise FrameError(f"no features for {frame.frame_id}", reason="missing_features")
        rng = np.random.default_rng(1000 + int(frame.frame_id))
        if not self.segments:
            return FeatureMap(dense=rng.normal(size=(*self.hw, self.dim)).astype(np.float32))
        seg = rng.integers(-1, 7, size=self.hw).astype(np.int32)
        return FeatureMap(segments=seg, embeddings=rng.normal(size=(7, self.dim)).astype(np.float32))


@pytest.fixture
def scene_setup():
    return make_setup()


def make_setup():
    """120 points in a 1 m box seen by 8 cameras on a circle (64x48 colour, 32x24 depth)."""
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, size=(120, 3))
    K_c = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    K_d = np.array([[25.0, 0, 15.75], [0, 25.0, 11.75], [0, 0, 1]])
    frames = []
    for i in range(8):
        a = 2 * np.pi * i / 8
        c2w = look_at(np.array([2.2 * np.cos(a), 2.2 * np.sin(a), 0.4 * (-1) ** i]), np.zeros(3))
        depth = zbuffer(points, K_d, c2w, (24, 32), splat=0)
        frames.append(make_frame(i, K_c, K_d, c2w, (48, 64), depth))
    return points, frames
