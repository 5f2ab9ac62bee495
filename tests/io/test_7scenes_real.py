"""Real Kinect data (7-Scenes redkitchen in ../shared/data): read, fuse, check against held-out depth."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from geopurify.io import ReadOptions, read_scene
from geopurify.io.fusion import backproject, valid_depth_mask

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "7scenes-redkitchen"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} not present")

FUSED = list(range(0, 40, 4))  # frame indices (every 10th raw frame): 0, 40, ..., 360
HELD_OUT = [2, 14, 26, 34]
DUMMY_PLY = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
             "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
             "0 0 0 1 1 1\n1 0 0 1 1 1\n0 1 0 1 1 1\n")


def link_frames(folder: Path, indices, mesh: bool) -> Path:
    folder.mkdir()
    os.symlink(DATA / "camera-intrinsics.txt", folder / "camera-intrinsics.txt")
    for i in indices:
        for kind in ("color.jpg", "depth.png", "pose.txt"):
            name = f"frame-{10 * i:06d}.{kind}"
            os.symlink(DATA / name, folder / name)
    if mesh:  # a stand-in mesh so the reader skips fusion: we only want these frames' poses/images
        (folder / f"{folder.name}.ply").write_text(DUMMY_PLY)
    return folder


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    root = tmp_path_factory.mktemp("redkitchen")
    scene = read_scene(link_frames(root / "fuse", FUSED, mesh=False), ReadOptions(layout="7scenes"))
    held = read_scene(link_frames(root / "held", HELD_OUT, mesh=True), ReadOptions(layout="7scenes")).frames
    T = np.eye(4)
    T[:3, :3] = scene.meta["world_rotation"]  # the fused cloud's world was levelled (z up); these frames' not
    for f in held:
        f.camera_to_world = T @ f.camera_to_world
    return scene, held


def project(points, frame):
    W = np.linalg.inv(frame.camera_to_world)
    pc = points @ W[:3, :3].T + W[:3, 3]
    z = pc[:, 2]
    zs = np.where(z > 0.05, z, 1.0)
    K = frame.K_depth
    u = np.round(pc[:, 0] / zs * K[0, 0] + K[0, 2]).astype(int)
    v = np.round(pc[:, 1] / zs * K[1, 1] + K[1, 2]).astype(int)
    h, w = frame.depth_size
    ok = (z > 0.05) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    return u, v, z, ok


def test_fused_cloud_matches_held_out_depth(fused):
    scene, held = fused
    assert scene.meta["fused_from_depth"]["frames"] == len(FUSED)
    assert scene.points.shape == scene.colors.shape == scene.normals.shape
    assert 20_000 < scene.num_points < 200_000
    for frame in held:
        u, v, z, ok = project(scene.points.astype(np.float64), frame)
        d = frame.depth()
        u, v, z = u[ok], v[ok], z[ok]
        dd = d[v, u]
        valid = dd > 0
        u, v, z, dd = u[valid], v[valid], z[valid], dd[valid]
        # keep only the front-most point per pixel (the ones the held-out camera can see)
        pix = v * d.shape[1] + u
        zbuf = np.full(d.size, np.inf)
        np.minimum.at(zbuf, pix, z)
        front = z <= zbuf[pix] + 1e-9
        err = np.abs(z[front] - dd[front])
        assert front.sum() > 5000, frame.frame_id
        assert np.median(err) < 0.025, (frame.frame_id, float(np.median(err)))


def _mad(s):
    return 1.4826 * float(np.median(np.abs(s - np.median(s))))


@pytest.mark.parametrize("ref", [0, 1, 4, 8])
def test_a_wall_stays_thin(fused, ref):
    """Find a planar wall patch in ONE raw frame (independent of fusion), then measure how thick the
    fused cloud is there: a smeared slab (pose drift, unfiltered samples) would be several cm."""
    scene, _ = fused
    rng = np.random.default_rng(ref)
    f = scene.frames[ref]
    d = f.depth()
    mask, _ = valid_depth_mask(d, f.K_depth)
    P = backproject(d, f.K_depth)[::4, ::4][mask[::4, ::4]].astype(np.float64)
    T = f.camera_to_world
    W = P @ T[:3, :3].T + T[:3, 3]
    best_n = 0
    for _ in range(200):  # RANSAC: the frame's dominant plane
        a, b, c = W[rng.choice(len(W), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-6:
            continue
        n /= np.linalg.norm(n)
        count = int((np.abs((W - a) @ n) < 0.01).sum())
        if count > best_n:
            (a0, n0), best_n = (a, n), count
    inliers = W[np.abs((W - a0) @ n0) < 0.01]

    def patch(Q, c):  # within 8 cm of the plane and 25 cm of c along it
        off = Q - c
        along = off - np.outer(off @ n0, n0)
        sel = (np.abs(off @ n0) < 0.08) & (np.linalg.norm(along, axis=1) < 0.25)
        return off[sel] @ n0

    cands = [(c, patch(W, c)) for c in inliers[rng.choice(len(inliers), 30)]]
    c, single = min(((c, s) for c, s in cands if len(s) >= 300), key=lambda cs: _mad(cs[1]))
    assert _mad(single) < 0.006  # the raw frame really sees a flat wall there
    s = patch(scene.points.astype(np.float64), c)
    assert len(s) > 300
    assert _mad(s) < 0.012, _mad(s)
    assert np.quantile(np.abs(s - np.median(s)), 0.9) < 0.02


def test_pose_handling(fused):
    scene, _ = fused
    frames = scene.frames
    centres = np.array([f.camera_to_world[:3, 3] for f in frames])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 0.5 and np.median(steps) < 0.3  # 40 raw frames (~1.3 s) apart
    for f in frames:
        R = f.camera_to_world[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-3)  # 7-Scenes: ~1e-4 off
    # back-projecting overlapping frames 0 and 1 (40 raw frames apart): the same pixel lands at the same place
    a, b = frames[0], frames[1]
    da = a.depth()
    mask, _ = valid_depth_mask(da, a.K_depth)
    P = backproject(da, a.K_depth)[::4, ::4][mask[::4, ::4]].astype(np.float64)
    Ta = a.camera_to_world
    world = P @ Ta[:3, :3].T + Ta[:3, 3]
    u, v, z, ok = project(world, b)
    db = b.depth()
    dd = db[v[ok], u[ok]]
    good = dd > 0
    Pb = backproject(db, b.K_depth)[v[ok][good], u[ok][good]].astype(np.float64)
    Tb = b.camera_to_world
    world_b = Pb @ Tb[:3, :3].T + Tb[:3, 3]
    gap = np.linalg.norm(world_b - world[ok][good], axis=1)
    assert good.sum() > 2000
    assert np.median(gap) < 0.03, float(np.median(gap))


def test_the_fused_world_is_levelled_z_up(fused, tmp_path):
    """7-Scenes' world is its first camera's (y down): top-down pictures, the viewer and the floor of
    `instances` all take z as up, so the fused cloud and its cameras are rotated once after fusion."""
    scene, _ = fused
    R = np.asarray(scene.meta["world_rotation"])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)
    down = np.array([f.camera_to_world[:3, 1] for f in scene.frames])  # each camera's image-down axis
    assert np.median(down[:, 2]) < -0.85  # hand-held cameras are upright: image-down is world-down
    n = scene.normals.astype(np.float64)
    assert (np.abs(n[:, 2]) > np.cos(np.radians(5))).mean() > 0.03  # table and counter tops are level
    assert (np.abs(n[:, 2]) < np.sin(np.radians(5))).mean() > 0.15  # walls and cabinet fronts stand up
    # --no-level keeps 7-Scenes' own frame: the same cloud, R apart
    raw = read_scene(link_frames(tmp_path / "raw", FUSED, mesh=False), ReadOptions(layout="7scenes", level=False))
    assert "world_rotation" not in raw.meta
    np.testing.assert_allclose(raw.points.astype(np.float64) @ R.T, scene.points, atol=1e-4)
    np.testing.assert_allclose(raw.frames[3].camera_to_world[:3, 1] @ R.T, down[3], atol=1e-6)
