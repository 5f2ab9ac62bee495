"""A capture whose world is not z up (7-Scenes: its first camera's, y down) is levelled after fusion;
a z-up one is left as it is. Synthetic box room (exact geometry); the real 7-Scenes check is in
test_7scenes_real.py."""

from __future__ import annotations

import numpy as np
from io_synth import poses_circle
from test_rgbd_readers import write_7scenes

from geopurify.io import ReadOptions, read_scene
from geopurify.io.gravity import rotation_to_z, up_direction

OPTS = ReadOptions(fuse_voxel_size=0.05)


def _write_tilted(folder, R0: np.ndarray, poses: list[np.ndarray]) -> None:
    """The room of ``poses`` (same images), its poses given in a world rotated by ``R0``."""
    write_7scenes(folder, poses, with_intrinsics=True)
    T = np.eye(4)
    T[:3, :3] = R0
    for i, p in enumerate(poses):
        np.savetxt(folder / f"frame-{i:06d}.pose.txt", T @ p)


def test_a_y_down_world_is_levelled_and_a_z_up_one_is_not(tmp_path):
    poses = poses_circle(6)
    write_7scenes(tmp_path / "upright", poses, with_intrinsics=True)
    upright = read_scene(tmp_path / "upright", OPTS)
    assert "world_rotation" not in upright.meta
    for f, p in zip(upright.frames, poses):
        np.testing.assert_allclose(f.camera_to_world, p, atol=1e-9)

    # the same room in a 7-Scenes-like world: up is -y, tilted a further 12 degrees about x
    a = np.radians(90 + 12)
    R0 = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    _write_tilted(tmp_path / "tilted", R0, poses)
    scene = read_scene(tmp_path / "tilted", OPTS)
    R = np.asarray(scene.meta["world_rotation"])
    np.testing.assert_allclose((R @ R0)[:, 2], [0, 0, 1], atol=2e-3)  # z of the room is z again
    down = np.array([f.camera_to_world[:3, 1] for f in scene.frames])
    assert (down[:, 2] < -0.9).all()
    # the cloud is the upright one, turned about z at most
    z_up = np.sort(scene.points[:, 2])
    np.testing.assert_allclose(z_up[[len(z_up) // 10, len(z_up) // 2]],
                               np.sort(upright.points[:, 2])[[len(z_up) // 10, len(z_up) // 2]], atol=0.06)
    kept = read_scene(tmp_path / "tilted", ReadOptions(fuse_voxel_size=0.05, level=False))
    assert "world_rotation" not in kept.meta


def test_up_direction_and_rotation():
    rng = np.random.default_rng(0)
    for _ in range(5):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        R = rotation_to_z(u)
        np.testing.assert_allclose(R @ u, [0, 0, 1], atol=1e-9)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(R) > 0
    np.testing.assert_allclose(rotation_to_z(np.array([0, 0, -1.0])) @ [0, 0, -1.0], [0, 0, 1])
    # cameras alone (no normals): minus their mean image-down axis
    poses = np.stack(poses_circle(8))
    np.testing.assert_allclose(up_direction(poses), [0, 0, 1], atol=0.05)
