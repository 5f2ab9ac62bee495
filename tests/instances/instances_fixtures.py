"""A hand-built room with known objects, and a segment output folder written from it (for the instances tests)."""

from __future__ import annotations

import json

import numpy as np

NAMES = ["wall", "floor", "chair", "table", "sofa"]
WALL, FLOOR, CHAIR, TABLE, SOFA = range(5)
STEP = 0.02


def box_surface(lo, hi, yaw=0.0, step=STEP):
    """Points on the 5 visible faces (no bottom) of a box, rotated by ``yaw`` about its centre."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    out = []
    for axis in range(3):
        for side in ((lo[axis], hi[axis]) if axis < 2 else (hi[axis],)):
            o = [a for a in range(3) if a != axis]
            u = np.arange(lo[o[0]], hi[o[0]] + 1e-9, step)
            v = np.arange(lo[o[1]], hi[o[1]] + 1e-9, step)
            U, V = np.meshgrid(u, v)
            p = np.zeros((U.size, 3))
            p[:, axis], p[:, o[0]], p[:, o[1]] = side, U.ravel(), V.ravel()
            out.append(p)
    p = np.concatenate(out)
    c = (lo + hi) / 2
    cs, sn = np.cos(yaw), np.sin(yaw)
    p[:, :2] = (p[:, :2] - c[:2]) @ np.array([[cs, sn], [-sn, cs]]) + c[:2]
    return p


def room(seed=0, noise=0.3):
    """A 3 x 3 m floor, a wall at x = 0, two chairs (one rotated 30 deg), a table touching a sofa.

    Returns points (N, 3), features (N, 8), text (5, 8), class (N,), object id (N,) (-1 for stuff).
    """
    rng = np.random.default_rng(seed)
    g = np.arange(0, 3, STEP)
    X, Y = np.meshgrid(g, g)
    floor = np.c_[X.ravel(), Y.ravel(), np.zeros(X.size)]
    Yw, Zw = np.meshgrid(g, np.arange(STEP, 1.5, STEP))
    wall = np.c_[np.zeros(Yw.size), Yw.ravel(), Zw.ravel()]
    parts = [(floor, FLOOR, -1), (wall, WALL, -1),
             (box_surface([0.5, 0.5, 0.02], [0.9, 0.9, 0.5]), CHAIR, 0),
             (box_surface([2.0, 0.4, 0.02], [2.6, 0.7, 0.5], yaw=np.pi / 6), CHAIR, 1),
             (box_surface([1.0, 1.8, 0.02], [1.8, 2.6, 0.75]), TABLE, 2),
             (box_surface([1.84, 1.8, 0.02], [2.8, 2.6, 0.45]), SOFA, 3)]  # fmt: skip  # 4 cm gap: touching
    pts = np.concatenate([p for p, _, _ in parts])
    cls = np.concatenate([np.full(len(p), c) for p, c, _ in parts])
    obj = np.concatenate([np.full(len(p), o) for p, _, o in parts])
    text = np.linalg.qr(rng.standard_normal((8, 8)))[0][:5].astype(np.float32)
    feats = (text[cls] + noise * rng.standard_normal((len(pts), 8))).astype(np.float32)
    return pts.astype(np.float32), feats, text, cls, obj


def segment_output(tmp_path):
    """A segment output folder written by hand (the files `instances` and `query` read)."""
    pts, feats, text, cls, obj = room()
    out = tmp_path / "out"
    out.mkdir()
    np.save(out / "points.npy", pts)
    np.save(out / "features.npy", feats.astype(np.float16))
    np.save(out / "colors.npy", np.full((len(pts), 3), 128, np.uint8))
    (out / "names.json").write_text(json.dumps(NAMES))
    np.savez(out / "text_embeddings.npz", names=np.array(NAMES), embeddings=text)
    (out / "labels.txt").write_text("\n".join(map(str, cls.tolist())) + "\n")
    (out / "run.json").write_text(json.dumps({"status": "complete", "command": "segment"}))  # a finished output
    return out, obj


