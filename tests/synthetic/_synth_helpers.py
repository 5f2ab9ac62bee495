"""Independent readers and a naive raw-fusion baseline for the synthetic-scene tests.

Deliberately written without the package's io/ or lifting/ code: plyfile, PIL and plain numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from plyfile import PlyData

SCANNET20_NYU40 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
NYU40_TO_20 = {nyu: i for i, nyu in enumerate(SCANNET20_NYU40)}


def to20(raw: np.ndarray) -> np.ndarray:
    return np.array([NYU40_TO_20.get(int(x), -1) for x in np.asarray(raw).ravel()], dtype=np.int64).reshape(
        np.shape(raw)
    )


def read_matrix(path: Path) -> np.ndarray:
    return np.loadtxt(path).reshape(4, 4)


def read_labels_ply(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) float64 vertices, (N,) int64 NYU40 labels, (N,) int64 instances."""
    v = PlyData.read(str(path))["vertex"]
    xyz = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    return xyz, np.asarray(v["label"], dtype=np.int64), np.asarray(v["instance"], dtype=np.int64)


def frame_ids(root: Path) -> list[str]:
    return sorted((p.stem for p in (root / "pose").glob("*.txt")), key=int)


def project_visible(root: Path, fid: str, xyz: np.ndarray, tol: float = 0.05):
    """Indices of vertices visible in a frame (depth test) and their colour-image coordinates."""
    pose = read_matrix(root / "pose" / f"{fid}.txt")
    Kc = read_matrix(root / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    Kd = read_matrix(root / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
    depth = np.asarray(Image.open(root / "depth" / f"{fid}.png"), dtype=np.float64) / 1000.0
    w2c = np.linalg.inv(pose)
    pc = xyz @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    front = z > 0.1
    zs = np.where(front, z, 1.0)
    ud = np.round(pc[:, 0] / zs * Kd[0, 0] + Kd[0, 2]).astype(np.int64)
    vd = np.round(pc[:, 1] / zs * Kd[1, 1] + Kd[1, 2]).astype(np.int64)
    Hd, Wd = depth.shape
    ok = front & (ud >= 0) & (ud < Wd) & (vd >= 0) & (vd < Hd)
    d = np.zeros(len(xyz))
    d[ok] = depth[vd[ok], ud[ok]]
    vis = ok & (d > 0) & (np.abs(d - z) <= tol * d)
    idx = np.nonzero(vis)[0]
    uc = pc[idx, 0] / z[idx] * Kc[0, 0] + Kc[0, 2]
    vc = pc[idx, 1] / z[idx] * Kc[1, 1] + Kc[1, 2]
    return idx, uc, vc


def mask_classes(root: Path, fid: str, text: np.ndarray, uc: np.ndarray, vc: np.ndarray, color_hw):
    """ScanNet-20 class (cosine argmax of the mask embedding) at colour coordinates; -1 = no mask."""
    with np.load(root / "features_2d" / f"{fid}.npz") as z:
        seg, emb = z["segments"], z["embeddings"].astype(np.float32)
    h, w = seg.shape
    H, W = color_hw
    x = np.clip(np.floor(uc * w / W).astype(np.int64), 0, w - 1)
    y = np.clip(np.floor(vc * h / H).astype(np.int64), 0, h - 1)
    s = seg[y, x]
    cls_of_mask = np.argmax(emb @ text.T, axis=1)
    return np.where(s >= 0, cls_of_mask[np.maximum(s, 0)], -1)


def raw_majority(root: Path, xyz: np.ndarray, fill_unseen: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex majority class over the views that see it: (N,) int64 (-1 unseen unless filled from
    the nearest seen vertex), and (N, 20) vote counts."""
    with np.load(root / "text_embeddings.npz") as z:
        text = z["embeddings"].astype(np.float32)
    first = frame_ids(root)[0]
    H, W = np.asarray(Image.open(root / "color" / f"{first}.jpg")).shape[:2]
    votes = np.zeros((len(xyz), 20), dtype=np.int64)
    for fid in frame_ids(root):
        idx, uc, vc = project_visible(root, fid, xyz)
        cls = mask_classes(root, fid, text, uc, vc, (H, W))
        good = cls >= 0
        np.add.at(votes, (idx[good], cls[good]), 1)
    seen = votes.sum(1) > 0
    pred = np.where(seen, votes.argmax(1), -1)
    if fill_unseen and seen.any() and not seen.all():  # copy the nearest seen vertex, like lifting
        from scipy.spatial import cKDTree

        _, nn = cKDTree(xyz[seen]).query(xyz[~seen])
        pred[~seen] = pred[seen][nn]
    return pred, votes


def miou(gt20: np.ndarray, pred: np.ndarray) -> tuple[float, dict[int, float]]:
    """Mean IoU over the classes present in ``gt20`` (ignore -1 in gt; -1 predictions count as wrong)."""
    ious = {}
    keep = gt20 >= 0
    g, p = gt20[keep], pred[keep]
    for c in np.unique(g):
        inter = np.sum((g == c) & (p == c))
        union = np.sum((g == c) | (p == c))
        ious[int(c)] = inter / union
    return float(np.mean(list(ious.values()))), ious
