"""A procedural multi-room flat: several synthetic rooms side by side in one scene folder.

One room saturates at about 300k voxels of 2 cm (its surface is finite), so scaling benchmarks need
scenes that keep growing: :func:`make_flat` writes ``rooms`` rooms (each from :func:`make_scene`,
seeds ``seed``, ``seed + 1``, ...) placed along x with a gap between them, as one ScanNet export
folder: the meshes and label meshes concatenated, every room's frames with their poses moved with the
room and renumbered (room r's frame ``f`` becomes ``r * 100000 + f``), one text-embedding file.

This is a fixture for timing and memory: the ScanNet layout has one intrinsic matrix per scene, so
every room's frames are written with room 0's intrinsics, while rooms 1.. were rendered with their own
(principal points differ by about 2 px). Lifting then sees slightly misplaced pixels in those rooms;
use single rooms (or real scans) for quality figures.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.ply import write_ply
from .config import SyntheticConfig
from .scene import _matrix_text, make_scene

#: metres between neighbouring rooms
GAP = 0.5
#: frame ids of room r start at r * FRAME_BLOCK
FRAME_BLOCK = 100_000


def make_flat(out_dir: str | Path, name: str = "flat0000_00", rooms: int = 4,
              config: SyntheticConfig | None = None) -> Path:
    """Write ``rooms`` synthetic rooms side by side as one scene ``out_dir/name``; returns its path.

    ``config`` is each room's :class:`SyntheticConfig` (``target_points`` and ``n_frames`` are per
    room; the seed advances by one per room).
    """
    from ..io.ply import read_ply

    if rooms < 1:
        raise InputError(f"make_flat: rooms must be >= 1, got {rooms}")
    config = config or SyntheticConfig()
    root = Path(out_dir) / name
    if root.exists():
        shutil.rmtree(root)
    for sub in ("color", "depth", "pose", "features_2d", "intrinsic"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    verts, cols, faces, labels, insts = [], [], [], [], []
    offset_x, n_vert, n_inst = 0.0, 0, 0
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        for r in range(rooms):
            room = make_scene(tmp, f"room{r}", dataclasses.replace(config, seed=config.seed + r))
            mesh = read_ply(room / f"room{r}_vh_clean_2.labels.ply")
            pts = mesh.points.astype(np.float64)
            shift = np.array([offset_x - pts[:, 0].min(), 0.0, 0.0])
            verts.append((pts + shift).astype(np.float32))
            cols.append(np.round(mesh.colors * 255).astype(np.uint8))
            faces.append(mesh.faces + n_vert)
            labels.append(mesh.properties["label"].astype(np.uint16))
            inst = mesh.properties["instance"].astype(np.int32)
            insts.append(np.where(inst >= 0, inst + n_inst, inst))
            n_vert += len(pts)
            n_inst += int(inst.max()) + 1 if len(inst) else 0
            offset_x = float(verts[-1][:, 0].max()) + GAP
            if r == 0:
                for f in ("intrinsic_color.txt", "intrinsic_depth.txt"):
                    shutil.copy(room / "intrinsic" / f, root / "intrinsic" / f)
                shutil.copy(room / "text_embeddings.npz", root / "text_embeddings.npz")
            for pose_file in sorted((room / "pose").glob("*.txt")):
                fid = pose_file.stem
                new = str(r * FRAME_BLOCK + int(fid))
                pose = np.loadtxt(pose_file)
                pose[:3, 3] += shift
                (root / "pose" / f"{new}.txt").write_text(_matrix_text(pose))
                shutil.move(room / "color" / f"{fid}.jpg", root / "color" / f"{new}.jpg")
                shutil.move(room / "depth" / f"{fid}.png", root / "depth" / f"{new}.png")
                shutil.move(room / "features_2d" / f"{fid}.npz", root / "features_2d" / f"{new}.npz")
            shutil.rmtree(room)
    v, c, fc = np.concatenate(verts), np.concatenate(cols), np.concatenate(faces)
    write_ply(root / f"{name}_vh_clean_2.ply", v, c, faces=fc)
    write_ply(root / f"{name}_vh_clean_2.labels.ply", v, c,
              extra={"label": np.concatenate(labels), "instance": np.concatenate(insts)}, faces=fc)
    return root
