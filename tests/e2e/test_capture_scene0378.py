"""A user's own capture, end to end: the real ScanNet scene0378 frames in a capture app's layout
(rgb/, depth/, intrinsic.txt, a TUM gt_pose.txt) read through a five-line YAML with no conversion;
then the same capture re-laid in ScanNet's export layout without a mesh. inspect -> segment -> render.

The 2D "VLM" is simulated per frame from the frame's own depth and pose: pixels whose surface lies
under 0.15 m (world z, ScanNet's floor is z = 0) are "floor", under 1.2 m "low", above "high". Lifted
onto the fused cloud, labels must then follow the points' heights: poses read wrongly would scramble
them. Skips when ../shared/data/scannet-scene0378-rgbd/ is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geopurify.cli import main

SRC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scannet-scene0378-rgbd"
NAMES = ["floor", "low", "high"]
FRAMES = ["--max-frames", "12", "--voxel-fuse", "0.05"]  # keeps the three reads of the test to seconds
YAML = "color: rgb/*.png\ndepth: depth/*.png\npose: gt_pose.txt\nintrinsics: intrinsic.txt\ndepth_scale: 1000\n"

pytestmark = pytest.mark.skipif(not (SRC / "gt_pose.txt").is_file(), reason=f"{SRC} is not present")


def tum_poses() -> list[np.ndarray]:
    """Camera-to-world 4x4s of gt_pose.txt via scipy, independent of the reader's quaternion code."""
    from scipy.spatial.transform import Rotation

    rows = np.loadtxt(SRC / "gt_pose.txt", comments="#")
    out = []
    for r in rows:
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(r[4:8]).as_matrix()  # scipy: (x, y, z, w), as TUM
        T[:3, 3] = r[1:4]
        out.append(T)
    return out


def simulated_features(depth_png: Path, pose: np.ndarray, K: np.ndarray) -> dict:
    """Per-mask features at 1/4 resolution: 3 masks by world height, one-hot 3-d embeddings."""
    step = 4
    d = np.asarray(Image.open(depth_png), np.float64)[::step, ::step] / 1000.0
    v, u = np.mgrid[0 : d.shape[0], 0 : d.shape[1]] * step + (step - 1) / 2
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * d, (v - K[1, 2]) / K[1, 1] * d, d], -1)
    z = cam @ pose[2, :3] + pose[2, 3]
    seg = np.where(z < 0.15, 0, np.where(z < 1.2, 1, 2)).astype(np.int32)
    seg[d <= 0] = -1
    return {"segments": seg, "embeddings": np.eye(3, dtype=np.float32)}


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """(yaml capture, scannet-layout capture): symlinks to the shared files, simulated features beside."""
    root = tmp_path_factory.mktemp("cap")
    poses = tum_poses()
    K = np.loadtxt(SRC / "intrinsic.txt")[:3, :3]
    rgb = sorted((SRC / "rgb").glob("*.png"))
    assert len(rgb) == len(poses) == 64
    text = {"names": np.array(NAMES), "embeddings": np.eye(3, dtype=np.float32)}

    app = root / "scene0378_app"  # the capture app's own layout + a five-line YAML
    (app / "features_2d").mkdir(parents=True)
    for name in ("rgb", "depth", "gt_pose.txt", "intrinsic.txt"):
        (app / name).symlink_to(SRC / name)
    (app / "geopurify.yaml").write_text(YAML)

    exp = root / "scene0378_00"  # ScanNet's export layout, ids 0, 3, 6, ... and no mesh
    for sub in ("color", "depth", "pose", "intrinsic", "features_2d"):
        (exp / sub).mkdir(parents=True)
    (exp / "intrinsic" / "intrinsic_color.txt").symlink_to(SRC / "intrinsic.txt")
    for f, pose in zip(rgb, poses):
        fid = str(int(f.stem.split("_")[1]))
        (exp / "color" / f"{fid}.png").symlink_to(f)
        (exp / "depth" / f"{fid}.png").symlink_to(SRC / "depth" / f.name)
        np.savetxt(exp / "pose" / f"{fid}.txt", pose)
        feats = simulated_features(SRC / "depth" / f.name, pose, K)
        np.savez(app / "features_2d" / f"{f.stem}.npz", **feats)  # <id> = colour stem (generic)
        np.savez(exp / "features_2d" / f"{fid}.npz", **feats)  # <id> = pose stem (scannet)
    for d in (app, exp):
        np.savez(d / "text_embeddings.npz", **text)
    return app, exp


def segment(scene: Path, out: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    assert main(["-q", "segment", str(scene), "--no-purify", "--out", str(out), *FRAMES]) == 0
    run = json.loads((out / "run.json").read_text())
    return np.loadtxt(out / "labels.txt", dtype=np.int64), np.load(out / "points.npy"), run


def test_capture_app_layout_with_a_five_line_yaml(captures, tmp_path, capsys):
    app, _ = captures
    assert len(YAML.splitlines()) == 5
    assert main(["-q", "inspect", str(app), *FRAMES]) == 0
    out = capsys.readouterr().out
    assert "layout generic" in out and "64 found, 12 selected" in out and "12 usable" in out
    assert "64 poses (tum), paired to frames by order" in out
    assert "fx 574.54, fy 577.58, cx 322.52, cy 238.56" in out and "1000 units per metre" in out
    assert "<id> = the colour file's stem" in out and "frame_00000.npz" in out and "present 12 of 12 (3-d)" in out
    assert "WARNING" not in out
    agree = [float(x) for x in out.split("agrees with the cloud for ")[1].split("%")[:1]]
    assert agree[0] > 70  # real depth agrees with the cloud fused from it, under the poses as read

    labels, points, run = segment(app, tmp_path / "seg")
    assert run["counts"]["frames_used"] == 12 and run["counts"]["low_agreement_frames"] == 0
    assert run["counts"]["seen_fraction"] > 0.9
    # the labels follow the heights the simulated VLM saw: the poses were paired and applied right
    z = points[:, 2]
    assert np.median(z[labels == 0]) < 0.15 < np.median(z[labels == 1]) < 1.2 < np.median(z[labels == 2])
    assert (labels == 0).mean() > 0.05 and (labels == 2).mean() > 0.05

    assert main(["-q", "render", str(tmp_path / "seg"), "--view", "top"]) == 0
    assert main(["-q", "render", str(tmp_path / "seg"), "--view", "top", "--color", "rgb"]) == 0
    for name in ("render_top.png", "render_rgb_top.png"):
        img = np.asarray(Image.open(tmp_path / "seg" / name))
        assert img.shape[0] > 100 and img.std() > 10


def test_same_capture_in_scannet_export_layout_without_mesh(captures, tmp_path, capsys):
    app, exp = captures
    assert main(["-q", "inspect", str(exp), *FRAMES]) == 0
    out = capsys.readouterr().out
    assert "layout scannet" in out and "<id> = the pose file's stem" in out and "present 12 of 12" in out
    a_labels, a_points, _ = segment(app, tmp_path / "a")
    b_labels, b_points, run = segment(exp, tmp_path / "b")
    assert run["counts"]["frames_used"] == 12
    np.testing.assert_allclose(a_points, b_points, atol=1e-4)  # one capture, one fused cloud
    assert (a_labels == b_labels).mean() > 0.999
