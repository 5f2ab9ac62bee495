"""Scene builders shared by tests (imported as a module; fixtures stay in conftest.py)."""

from __future__ import annotations

from pathlib import Path


def write_tiny_scannet(root: Path, name: str = "scene0000_00", n_side: int = 40, frames: int = 2,
                       color_hw=(120, 160), depth_hw=(60, 80), labels: bool = True) -> Path:
    """A hand-checkable scene in ScanNet export layout.

    A 1 m x 1 m plane of n_side^2 vertices at z = 2 m (world), faces included, seen by ``frames`` cameras
    at the origin looking down +z (identity pose, slightly shifted in x). The 2D "VLM" says: pixels left of
    the image centre are class 0 ("wall"), right are class 1 ("floor"); text embeddings are e0, e1 in 4-d.
    GT (NYU40): x < 0 -> 1 (wall), x >= 0 -> 2 (floor).
    """
    import numpy as np
    from PIL import Image
    from plyfile import PlyData, PlyElement

    d = root / name
    for sub in ("color", "depth", "pose", "intrinsic", "features_2d"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    xs = np.linspace(-0.5, 0.5, n_side)
    X, Y = np.meshgrid(xs, xs)
    pts = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2.0)].astype(np.float32)
    col = np.where(pts[:, :1] < 0, [200, 50, 50], [50, 50, 200]).astype(np.uint8)
    v = np.empty(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                  ("blue", "u1")])
    v["x"], v["y"], v["z"] = pts.T
    v["red"], v["green"], v["blue"] = col.T
    faces = []
    for i in range(n_side - 1):
        for j in range(n_side - 1):
            a = i * n_side + j
            faces += [(a, a + 1, a + n_side), (a + 1, a + n_side + 1, a + n_side)]
    f = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
    f["vertex_indices"] = np.array(faces)
    PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")]).write(
        str(d / f"{name}_vh_clean_2.ply"))
    if labels:
        lv = np.empty(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("label", "u2")])
        lv["x"], lv["y"], lv["z"] = pts.T
        lv["label"] = np.where(pts[:, 0] < 0, 1, 2)
        PlyData([PlyElement.describe(lv, "vertex")]).write(str(d / f"{name}_vh_clean_2.labels.ply"))
    H, W = color_hw
    Hd, Wd = depth_hw
    f_c = W * 1.0  # 90-degree-ish field of view: the plane fills most of the image
    Kc = np.array([[f_c, 0, W / 2, 0], [0, f_c, H / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    Kd = np.array([[f_c * Wd / W, 0, Wd / 2, 0], [0, f_c * Wd / W, Hd / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.savetxt(d / "intrinsic" / "intrinsic_color.txt", Kc)
    np.savetxt(d / "intrinsic" / "intrinsic_depth.txt", Kd)
    for k in range(frames):
        pose = np.eye(4)
        pose[0, 3] = 0.02 * k
        np.savetxt(d / "pose" / f"{k}.txt", pose)
        Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(d / "color" / f"{k}.jpg")
        Image.fromarray(np.full((Hd, Wd), 2000, np.uint16)).save(d / "depth" / f"{k}.png")
        # the world x = 0 line projects to u = W/2 - f*0.02k/2; masks split there
        seg = np.zeros((H // 2, W // 2), np.int32)
        u0 = (W / 2 - f_c * 0.02 * k / 2.0) / 2
        seg[:, int(round(u0)):] = 1
        emb = np.eye(4, dtype=np.float32)[:2]
        np.savez(d / "features_2d" / f"{k}.npz", segments=seg, embeddings=emb)
    np.savez(d / "text_embeddings.npz", names=np.array(["wall", "floor"]), embeddings=np.eye(4, dtype=np.float32)[:2])
    return d
