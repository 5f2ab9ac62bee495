"""Shared by the viz tests: a tiny segmentation output folder with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NAMES = ["floor", "chair"]


def make_output(out: Path, n_floor: int = 6000, n_chair: int = 3000, seed: int = 0) -> Path:
    """A floor plane (class 0) with a box-shaped 'chair' (class 1) on it.

    Features are 8-d: floor points along e0, chair points along e1 (plus a little noise), and the
    text embeddings are exactly e0 ('floor') and e1 ('chair'), so a 'chair' query scores chair
    points near 1 and floor points near 0. Raw labels call the chair's top half 'floor'.
    """
    rng = np.random.default_rng(seed)
    floor = np.c_[rng.uniform(0, 4, n_floor), rng.uniform(0, 3, n_floor), np.zeros(n_floor)]
    chair = np.c_[rng.uniform(1.5, 2.5, n_chair), rng.uniform(1.0, 2.0, n_chair), rng.uniform(0, 0.8, n_chair)]
    points = np.concatenate([floor, chair]).astype(np.float32)
    labels = np.repeat([0, 1], [n_floor, n_chair])
    raw = labels.copy()
    raw[n_floor:][chair[:, 2] > 0.4] = 0
    d = 8
    feats = 0.05 * rng.standard_normal((len(points), d))
    feats[labels == 0, 0] += 1.0
    feats[labels == 1, 1] += 1.0
    colors = rng.integers(0, 255, (len(points), 3)).astype(np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "points.npy", points)
    np.save(out / "colors.npy", colors)
    np.save(out / "features.npy", feats.astype(np.float16))
    np.savetxt(out / "labels.txt", labels, fmt="%d")
    np.savetxt(out / "raw_labels.txt", raw, fmt="%d")
    (out / "names.json").write_text(json.dumps(NAMES))
    np.savez(out / "text_embeddings.npz", names=np.array(NAMES), embeddings=np.eye(2, d, dtype=np.float32))
    (out / "run.json").write_text(json.dumps({"scene": "toy", "status": "complete"}))
    return out
