"""Lifting throughput: point-views per second on synthetic points and frames of growing size.

Usage: ``python benchmarks/lift.py [--dim 64] [--fusion both] [--sizes 100000x60,1000000x60] [--repeat 3]
[--real] [--out benchmarks/results/lift.md]`` (``--real``: also a real 7-Scenes sequence, when present)
Prints a markdown table (and writes it to ``--out``). The encoder returns precomputed random 120x160
float16 dense maps held in memory, so the numbers measure projection, the depth test, sampling and
fusion, not a neural network. Columns: point-views (visible (point, frame) pairs), seconds (best of
``--repeat`` runs), point-views/s, and point-frames/s = points x frames / seconds (every point is
tested against every frame, and most points are outside any one frame).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

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


SEVEN_SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "7scenes-redkitchen"


def real_scene(folder: Path, every: int = 10, stride: int = 2) -> tuple[np.ndarray, list[Frame]]:
    """A 7-Scenes sequence: every frame (colour and depth 480x640, one K), and points back-projected
    from the depth of every ``every``-th frame on a ``stride``-pixel grid."""
    from PIL import Image

    K = np.loadtxt(folder / "camera-intrinsics.txt")
    frames, pts = [], []
    for i, pose_file in enumerate(sorted(folder.glob("frame-*.pose.txt"))):
        depth = np.asarray(Image.open(str(pose_file).replace(".pose.txt", ".depth.png"))).astype(np.float32) / 1000
        depth[depth >= 65.0] = 0  # 65535 marks invalid
        pose = np.loadtxt(pose_file)
        hw = (480, 640)
        frames.append(Frame(str(i), K, K, pose, hw, hw, lambda: None, lambda d=depth: d, pose_file.name))
        if i % every == 0:
            v, u = np.mgrid[0:480:stride, 0:640:stride]
            z = depth[v, u]
            ok = z > 0
            cam = np.stack([(u[ok] - K[0, 2]) * z[ok] / K[0, 0], (v[ok] - K[1, 2]) * z[ok] / K[1, 1], z[ok]], 1)
            pts.append(cam @ pose[:3, :3].T + pose[:3, 3])
    return np.concatenate(pts), frames


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--fusion", choices=["mean", "consensus", "both"], default="both")
    ap.add_argument("--sizes", default="100000x60,1000000x60", help="comma-separated POINTSxFRAMES")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest counts")
    ap.add_argument("--real", action="store_true", help=f"also lift a real 7-Scenes sequence ({SEVEN_SCENES})")
    ap.add_argument("--out", type=Path, help="also write the table (and the setup) to this markdown file")
    ap.add_argument("--vs", default=None, help="PYTHONPATH of another tree: run the same sizes there first, "
                    "then here, and add its seconds and the speed-up")
    ap.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    other = None
    if args.vs:
        import json
        import subprocess
        import sys
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--dim", str(args.dim), "--fusion", args.fusion, "--sizes", args.sizes,
                   "--repeat", str(args.repeat), "--json", f"{tmp}/rows.json"] + (["--real"] if args.real else [])
            subprocess.run(cmd, env={**os.environ, "PYTHONPATH": args.vs}, check=True)
            other = json.loads(Path(f"{tmp}/rows.json").read_text())
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(120, 160, args.dim)).astype(np.float16) for _ in range(4)]
    text = rng.normal(size=(20, args.dim))
    fusions = ["mean", "consensus"] if args.fusion == "both" else [args.fusion]
    load0 = os.getloadavg()[0]
    head = ["scene", "points", "frames", "fusion", "point-views", "seconds", "point-views/s", "point-frames/s"]
    rows = []
    print(" | ".join(head))
    scenes = []
    for spec in args.sizes.split(","):
        n, nf = (int(s) for s in spec.split("x"))
        frames = make_frames(nf, rng)
        scenes.append(("synthetic", points_for(frames, n, rng), frames))
    if args.real:
        scenes.append(("7-Scenes redkitchen", *real_scene(SEVEN_SCENES)))
    for name, pts, frames in scenes:
        n, nf = len(pts), len(frames)
        for fusion in fusions:
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                res = lift(pts, frames, MemoryEncoder(maps), LiftConfig(fusion=fusion), text=text)
                times.append(time.perf_counter() - t0)
            dt = min(times)
            row = [name, f"{n:,}", nf, fusion, f"{res.point_views:,}", f"{dt:.2f}"]
            row += [f"{res.point_views / dt / 1e6:.1f} M", f"{n * nf / dt / 1e6:.1f} M"]
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    if args.json:
        import json

        args.json.write_text(json.dumps(rows))
        return
    if other is not None:
        head = head[:6] + [f"seconds, {args.vs}", "speed-up"] + head[6:]
        rows = [r[:6] + [o[5], f"{float(o[5]) / float(r[5]):.1f}x"] + r[6:] for r, o in zip(rows, other)]
    if args.out:
        from common import markdown_table

        note = (
            f"{datetime.date.today()}, {machine()}, numpy {np.__version__}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads). {args.dim}-d float16 120x160 feature maps held in memory; "
            f"synthetic: 480x640 colour, 240x320 depth; 7-Scenes: 480x640 colour and depth, points "
            f"back-projected from every 10th frame. Seconds are the best of {args.repeat} runs. 1-min load "
            f"average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end: the machine was shared, so "
            f"timings are noisy."
            + (f" The other tree ({args.vs}) ran the same sizes in a subprocess just before." if other else "")
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Lifting throughput\n\n{markdown_table(head, rows)}\n\n{note}\n")


if __name__ == "__main__":
    main()
