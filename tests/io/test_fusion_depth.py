"""fuse_depth on exactly known geometry: cameras inside a box room."""

from __future__ import annotations

import numpy as np
import pytest
from io_synth import HW, K_SYN, ROOM_HI, ROOM_LO, poses_circle, render_box, wall_distance

from geopurify.errors import FrameError, InputError
from geopurify.io.fusion import backproject, consistency_mask, fuse_depth, valid_depth_mask
from geopurify.io.scene import Frame


def make_frame(pose, depth=None, color=None, fid="0", bad=False):
    d, c = render_box(pose)
    d = d if depth is None else depth
    c = c if color is None else color

    def load_depth():
        if bad:
            raise FrameError("truncated", reason="bad_depth")
        return d.astype(np.float32)

    return Frame(fid, K_SYN, K_SYN, pose, HW, HW, lambda: c, load_depth)


def test_backproject_hand_case():
    K = np.array([[2.0, 0, 1.0], [0, 4.0, 0.5], [0, 0, 1]])
    P = backproject(np.array([[2.0, 4.0]], np.float32), K)
    # pixel (u=0,v=0) at depth 2: x = (0-1)/2*2 = -1, y = (0-0.5)/4*2 = -0.25
    np.testing.assert_allclose(P[0, 0], [-1.0, -0.25, 2.0])
    np.testing.assert_allclose(P[0, 1], [0.0, -0.5, 4.0])


def test_valid_mask_rejects_step_edges_and_grazing_planes():
    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    depth = np.full((100, 100), 2.0, np.float32)
    depth[:, 60:] = 3.0  # a depth step: both sides of it are flying-pixel candidates
    depth[5, 5] = 0.0  # a hole
    ok, cos = valid_depth_mask(depth, K)
    assert not ok[:, 59].any() and not ok[:, 60].any()
    assert ok[50, 30] and ok[50, 80]
    assert not ok[5, 5] and not ok[4, 5] and not ok[5, 6]  # hole border is untrusted
    assert cos[50, 50] == pytest.approx(1.0, abs=1e-3)  # fronto-parallel at the centre
    # the plane z = 1 + 5 x, normal (-5, 0, 1)/sqrt(26): along ray (t, 0, 1) the cosine is
    # (1 - 5 t) / (sqrt(26) sqrt(1 + t^2)): 0.196 at the centre (t = 0), 0.38 at t = -0.2 (u = 30)
    u = np.arange(100, dtype=np.float32)
    x_over_z = (u - 50) / 100
    slanted = np.tile(1.0 / (1 - 5 * x_over_z.clip(max=0.15)), (100, 1)).astype(np.float32)
    ok2, cos2 = valid_depth_mask(slanted, K, max_depth=100, edge_ratio=1.0, min_cos=0.25)
    assert cos2[50, 50] == pytest.approx(1 / np.sqrt(26), abs=0.01)
    assert cos2[50, 30] == pytest.approx(2 / (np.sqrt(26) * np.sqrt(1.04)), abs=0.01)
    assert not ok2[50, 48:62].any() and ok2[50, 20:36].all()


def test_fused_cloud_lies_on_the_walls_with_inward_normals():
    frames = [make_frame(p, fid=str(i)) for i, p in enumerate(poses_circle(6))]
    cloud = fuse_depth(frames, voxel_size=0.05, stride=1)
    pts, col, nrm = cloud
    assert pts.dtype == np.float32 and pts.shape == nrm.shape == col.shape
    dist = wall_distance(pts)
    # voxel means of a plane lie on the plane; only voxels straddling a corner edge move inside
    assert np.median(dist) < 1e-4
    assert np.quantile(dist, 0.95) < 0.025
    # at most one point per voxel: the room's surface (59 m^2) holds ~23.6k cells of 5 cm
    assert 3000 < len(pts) < 59 / 0.05**2 * 1.2
    # normals and colours: each wall's inward normal and its palette colour, away from the edges
    palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30], [120, 120, 120], [240, 240, 240]])
    gaps = np.concatenate([pts - ROOM_LO, ROOM_HI - pts], axis=1)  # (N, 6): x-, y-, z-, x+, y+, z+
    checked = 0
    for j in range(6):
        axis, high = j % 3, j >= 3
        sel = (gaps[:, j] < 1e-3) & (np.sort(gaps, axis=1)[:, 1] > 0.15)
        if sel.sum() < 20:
            continue
        checked += 1
        inward = np.zeros(3)
        inward[axis] = -1.0 if high else 1.0
        assert np.median(nrm[sel] @ inward) > 0.99
        np.testing.assert_allclose(np.median(col[sel], axis=0), palette[axis * 2 + high] / 255, atol=1e-6)
    assert checked >= 3


def test_held_out_view_matches_and_pass2_removes_inconsistent_frame():
    poses = poses_circle(8)
    nudged = poses[2].copy()
    nudged[:3, 3] += [0.05, -0.03, 0.02]
    frames = [make_frame(p, fid=str(i)) for i, p in enumerate([*poses[:7:2], nudged])]
    # a frame whose depth is 30% too short everywhere: its samples float in free space, and two
    # good frames (at its pose and 6 cm away) see through them: 2 violations against 1 support
    d_bad, _ = render_box(poses[2])
    frames.append(make_frame(poses[2], depth=(0.7 * d_bad), fid="liar"))
    cloud = fuse_depth(frames, voxel_size=0.04, stride=1)
    # the liar's floating samples are seen through by the other frames and dropped
    assert np.quantile(wall_distance(cloud.points), 0.99) < 0.03
    unchecked = fuse_depth(frames, voxel_size=0.04, stride=1, check=False)
    assert np.quantile(wall_distance(unchecked.points), 0.99) > 0.2
    # held-out view 5: fused points project onto its rendered depth
    T = poses[5]
    W = np.linalg.inv(T)
    pc = cloud.points @ W[:3, :3].T + W[:3, 3]
    z = pc[:, 2]
    u = np.round(pc[:, 0] / z * K_SYN[0, 0] + K_SYN[0, 2]).astype(int)
    v = np.round(pc[:, 1] / z * K_SYN[1, 1] + K_SYN[1, 2]).astype(int)
    ins = (z > 0) & (u >= 0) & (u < HW[1]) & (v >= 0) & (v < HW[0])
    d_held, _ = render_box(T)
    err = np.abs(d_held[v[ins], u[ins]] - z[ins])
    assert ins.sum() > 100 and np.median(err) < 0.02


def test_consistency_mask_hand_case():
    pose = poses_circle(4)[0]
    frame = make_frame(pose)
    d, _ = render_box(pose)
    ray = np.array([(40 - K_SYN[0, 2]) / K_SYN[0, 0], (30 - K_SYN[1, 2]) / K_SYN[1, 1], 1.0])
    z = d[30, 40]

    def world(zz):
        return (pose[:3, :3] @ (ray * zz) + pose[:3, 3])[None]

    pts = np.concatenate([world(z), world(z - 0.5), world(z + 0.5)])
    # on the surface: supported; in front (free space): violated; behind (occluded): no evidence
    keep = consistency_mask(pts, [frame, frame], voxel_size=0.02)
    assert keep.tolist() == [True, False, False]
    keep0 = consistency_mask(pts, [frame], voxel_size=0.02, min_support=0)
    assert keep0.tolist() == [True, False, True]


def test_bad_frames_are_skipped_and_all_bad_raises():
    poses = poses_circle(3)
    good = [make_frame(p, fid=str(i)) for i, p in enumerate(poses)]
    bad = make_frame(poses[0], bad=True, fid="bad")
    cloud = fuse_depth([bad, *good], voxel_size=0.05)
    assert len(cloud.points) > 100
    with pytest.raises(InputError, match="no valid depth"):
        fuse_depth([bad, bad], voxel_size=0.05)
    zero = make_frame(poses[0], depth=np.zeros(HW))
    with pytest.raises(InputError):
        fuse_depth([zero], voxel_size=0.05)


def test_depth_wholly_out_of_range_names_the_depth_scale(tmp_path):
    """Float depth images in metres (TIFF mode F) read with the default scale of 1000 units per metre:
    every sample is ~1 mm away. The refusal said only 'no valid depth'; it now says why."""
    from io_synth import write_rgb
    from PIL import Image

    from geopurify.io import ReadOptions, read_scene

    for sub in ("c", "d", "p"):
        (tmp_path / sub).mkdir()
    for i, pose in enumerate(poses_circle(2)):
        d, c = render_box(pose)
        write_rgb(tmp_path / "c" / f"{i}.png", c)
        Image.fromarray(d.astype(np.float32)).save(tmp_path / "d" / f"{i}.tiff")
        np.savetxt(tmp_path / "p" / f"{i}.txt", pose)
    (tmp_path / "geopurify.yaml").write_text("color: c/*.png\ndepth: d/*.tiff\npose: p/*.txt\n"
                                             "intrinsics: [60, 60, 40, 30]\n")
    with pytest.raises(InputError, match=r"no valid depth .*outside 0\.1-6 m \(median 0\.00\d+ m\): is the depth "
                                         r"scale right\?"):
        read_scene(tmp_path, ReadOptions(fuse_voxel_size=0.05))
    scene = read_scene(tmp_path, ReadOptions(fuse_voxel_size=0.05, depth_scale=1.0))  # metres: as told
    assert wall_distance(scene.points).max() < 0.05
