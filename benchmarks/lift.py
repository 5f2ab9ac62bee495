"""Lifting throughput: point-views per second on synthetic points and frames of growing size.

Usage: ``python benchmarks/lift.py [--dim 64] [--fusion both] [--sizes 20000x8,100000x16,...]``
Prints a table (the integrator copies it into BENCHMARKS.md). The encoder returns precomputed
random 240x320 dense maps held in memory, so the numbers measure projection, the depth test,
sampling and fusion, not a neural network.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from geopurify.encoders.base import Encoder, FeatureMap
from geopurify.io.scene import Frame
from geopurify.lifting import LiftConfig, lift


class MemoryEncoder(Encoder):
    name = "memory"

    def __init__(self, maps: list[np.ndarray]) -> None:
        self.maps = maps

    def encode(self, frame) -> FeatureMap:
        return FeatureMap(dense=self.maps[int(frame.frame_id) % len(self.maps)])


def make_frames(n_frames: int, rng: np.random.Generator) -> list[Frame]:
    """Cameras on a circle around a 4 m room, 480x640 colour, 240x320 depth of a sphere of radius 3 m."""
    K_c = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
    K_d = K_c.copy()
    K_d[:2] /= 2
    frames = []
    for i in range(n_frames):
        a = 2 * np.pi * i / n_frames
        eye = np.array([0.5 * np.cos(a), 0.5 * np.sin(a), 1.5])
        z = -eye / np.linalg.norm(eye) * np.array([1, 1, 0.2])
        z /= np.linalg.norm(z)
        x = np.cross(z, [0, 0, 1.0])
        x /= np.linalg.norm(x)
        T = np.eye(4)
        T[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
        T[:3, 3] = eye
        depth = np.full((240, 320), 3.0, np.float32) + rng.uniform(-0.05, 0.05, (240, 320)).astype(np.float32)
        frames.append(Frame(str(i), K_c, K_d, T, (480, 640), (240, 320), lambda: None, lambda d=depth: d, f"bench/{i}"))
    return frames


def points_for(frames: list[Frame], n: int, rng: np.random.Generator) -> np.ndarray:
    """Points on the depth surfaces of the frames (each point is seen by its frame and some others)."""
    out = []
    per = -(-n // len(frames))
    for f in frames:
        u, v = rng.uniform(20, 620, per), rng.uniform(20, 460, per)
        z = np.full(per, 3.0)
        cam = np.stack([(u - 319.5) * z / 525.0, (v - 239.5) * z / 525.0, z], 1)
        out.append(cam @ f.camera_to_world[:3, :3].T + f.camera_to_world[:3, 3])
    return np.concatenate(out)[:n]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--fusion", choices=["mean", "consensus", "both"], default="both")
    ap.add_argument("--sizes", default="20000x8,100000x16,400000x32,1000000x32")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(120, 160, args.dim)).astype(np.float16) for _ in range(4)]
    text = rng.normal(size=(20, args.dim))
    fusions = ["mean", "consensus"] if args.fusion == "both" else [args.fusion]
    print(f"{'points':>9} {'frames':>6} {'fusion':>9} {'point-views':>12} {'seconds':>8} {'pv/s':>12}")
    for spec in args.sizes.split(","):
        n, nf = (int(s) for s in spec.split("x"))
        frames = make_frames(nf, rng)
        pts = points_for(frames, n, rng)
        for fusion in fusions:
            t0 = time.perf_counter()
            res = lift(pts, frames, MemoryEncoder(maps), LiftConfig(fusion=fusion), text=text)
            dt = time.perf_counter() - t0
            print(f"{n:>9} {nf:>6} {fusion:>9} {res.point_views:>12} {dt:>8.2f} {res.point_views / dt:>12.0f}")


if __name__ == "__main__":
    main()
