"""Two real 7-Scenes frames: back-projected depth must reproject consistently through lift's projection."""

from pathlib import Path

import numpy as np
import pytest

from geopurify.lifting import project_points, visible_mask

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "7scenes-redkitchen"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} not present")


def read(fid: str):
    from PIL import Image

    depth = np.asarray(Image.open(DATA / f"frame-{fid}.depth.png")).astype(np.float32) / 1000.0
    depth[depth >= 65.0] = 0  # 65535 marks invalid in 7-Scenes
    return depth, np.loadtxt(DATA / f"frame-{fid}.pose.txt")


def backproject(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, step: int = 4):
    v, u = np.mgrid[0 : depth.shape[0] : step, 0 : depth.shape[1] : step]
    z = depth[v, u]
    ok = z > 0
    u, v, z = u[ok], v[ok], z[ok]
    cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
    return cam @ c2w[:3, :3].T + c2w[:3, 3], u, v


def test_two_real_frames_reproject_consistently():
    K = np.loadtxt(DATA / "camera-intrinsics.txt")
    dA, poseA = read("000000")
    dB, poseB = read("000010")
    world, u, v = backproject(dA, K, poseA)
    assert len(world) > 5000
    # round trip into the same frame: exact pixels, and the depth test accepts (almost) all of them
    pA = project_points(world, K, np.linalg.inv(poseA))
    np.testing.assert_allclose(pA.u, u, atol=1e-6)
    np.testing.assert_allclose(pA.v, v, atol=1e-6)
    okA = visible_mask(pA, dA.shape, border=10, depth=dA)
    inner = (u >= 10) & (u < 630) & (v >= 10) & (v < 470)
    assert okA[inner].all() and not okA[~inner].any()
    # into the neighbouring frame: the camera moved, but most surface points agree with its depth
    pB = project_points(world, K, np.linalg.inv(poseB))
    okB = visible_mask(pB, dB.shape, border=10, depth=dB, tolerance=0.05)
    inside = visible_mask(pB, dB.shape, border=10)
    assert inside.mean() > 0.5
    assert okB.sum() > 0.7 * inside.sum()
    # a wrong pose convention (world-to-camera given as camera-to-world) breaks that agreement
    pBad = project_points(world, K, poseB)
    assert visible_mask(pBad, dB.shape, border=10, depth=dB).sum() < 0.2 * okB.sum()
