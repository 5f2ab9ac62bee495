"""7-Scenes, TUM and generic-YAML readers on small captures written in their real formats."""

from __future__ import annotations

import numpy as np
import pytest
from io_synth import HW, K_SYN, poses_circle, render_box, rot_to_quat, wall_distance, write_png16, write_rgb

from geopurify.errors import ConfigError, InputError
from geopurify.io import ReadOptions, read_scene
from geopurify.io.rgbd import OPENGL_TO_OPENCV, associate, quat_to_pose

OPTS = ReadOptions(fuse_voxel_size=0.05)




def test_quaternion_hand_cases():
    # 90 deg about z: x -> y
    q = [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]
    T = quat_to_pose(np.array([1.0, 2, 3]), np.array(q))
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
    # a non-unit quaternion is normalised; a zero one is rejected (NaN pose)
    np.testing.assert_allclose(quat_to_pose(np.zeros(3), np.array([0, 0, 0, 2.0]))[:3, :3], np.eye(3))
    assert np.isnan(quat_to_pose(np.zeros(3), np.zeros(4))).all()


def test_associate_nearest_within_window():
    a = np.array([10.00, 10.05, 10.10, 11.0])
    b = np.array([10.11, 9.99, 10.061, 10.5])
    assert associate(a, b, 0.02).tolist() == [1, 2, 0, -1]


def write_7scenes(folder, poses, with_intrinsics=False):
    folder.mkdir(parents=True, exist_ok=True)
    for i, pose in enumerate(poses):
        stem = folder / f"frame-{i:06d}"
        d, c = render_box(pose)
        invalid = np.zeros(HW, bool)
        invalid[:3, :] = True  # Kinect "no return" rows
        write_png16(f"{stem}.depth.png", d, 1000.0, invalid, 65535)
        write_rgb(f"{stem}.color.png", c)
        np.savetxt(f"{stem}.pose.txt", pose)
    if with_intrinsics:
        np.savetxt(folder / "camera-intrinsics.txt", K_SYN)


def test_7scenes_reader_fuses_cloud_and_drops_bad_pose(tmp_path):
    poses = poses_circle(5)
    write_7scenes(tmp_path / "kitchen", poses, with_intrinsics=True)
    np.savetxt(tmp_path / "kitchen" / "frame-000003.pose.txt", np.full((4, 4), -np.inf))
    scene = read_scene(tmp_path / "kitchen", OPTS)
    assert scene.meta["layout"] == "7scenes"
    assert [f.frame_id for f in scene.frames] == ["000000", "000001", "000002", "000004"]
    assert scene.skipped_frames == {"bad_pose": 1}
    f = scene.frames[0]
    np.testing.assert_allclose(f.camera_to_world, poses[0], atol=1e-9)
    np.testing.assert_allclose(f.K_depth, K_SYN)
    d = f.depth()
    assert (d[:3] == 0).all()  # 65535 -> invalid
    np.testing.assert_allclose(d[3:], render_box(poses[0])[0][3:], atol=6e-4)  # mm rounding
    assert scene.points.shape[0] > 500 and np.median(wall_distance(scene.points)) < 1e-3
    # frame_skip / max_frames
    sub = read_scene(tmp_path / "kitchen", ReadOptions(frame_skip=2, fuse_voxel_size=0.05))
    assert [f.frame_id for f in sub.frames] == ["000000", "000002", "000004"]


def test_7scenes_default_intrinsics_and_sequences(tmp_path):
    write_7scenes(tmp_path / "scene" / "seq-01", poses_circle(2))
    write_7scenes(tmp_path / "scene" / "seq-02", poses_circle(2))
    from geopurify.io.rgbd import SevenScenesReader

    reader = SevenScenesReader()
    assert reader.detect(tmp_path / "scene")
    # default Kinect intrinsics (585, 320, 240) do not fit our 80x60 renders: refused, not mislifted
    scene_ply = tmp_path / "scene" / "scene.ply"
    scene_ply.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
        "0 0 0 255 0 0\n1 0 0 0 255 0\n0 1 0 0 0 255\n"
    )
    with pytest.raises(InputError, match=r"principal point \(cx=320, cy=240\) is outside the 80x60 image"):
        reader.read(tmp_path / "scene", ReadOptions())
    np.savetxt(tmp_path / "scene" / "camera-intrinsics.txt", K_SYN)
    scene = reader.read(tmp_path / "scene", ReadOptions())
    assert [f.frame_id for f in scene.frames] == ["seq-01_000000", "seq-01_000001", "seq-02_000000", "seq-02_000001"]
    np.testing.assert_allclose(scene.frames[0].K_color, K_SYN)
    assert scene.num_points == 3 and scene.meta["mesh"].endswith("scene.ply")


def write_tum(folder, poses, depth_offset=0.005, pose_offset=-0.004):
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    rgb, dep, gt = ["# color images"], ["# depth maps"], ["# timestamp tx ty tz qx qy qz qw"]
    for i, pose in enumerate(poses):
        t = 100.0 + 0.1 * i
        d, c = render_box(pose)
        write_rgb(folder / "rgb" / f"{t:.6f}.png", c)
        write_png16(folder / "depth" / f"{t + depth_offset:.6f}.png", d, 5000.0)
        rgb.append(f"{t:.6f} rgb/{t:.6f}.png")
        dep.append(f"{t + depth_offset:.6f} depth/{t + depth_offset:.6f}.png")
        q = rot_to_quat(pose[:3, :3])
        gt.append(f"{t + pose_offset:.4f} " + " ".join(f"{v:.9f}" for v in [*pose[:3, 3], *q]))
    (folder / "rgb.txt").write_text("\n".join(rgb) + "\n")
    (folder / "depth.txt").write_text("\n".join(dep) + "\n")
    (folder / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    fx, fy, cx, cy = K_SYN[0, 0], K_SYN[1, 1], K_SYN[0, 2], K_SYN[1, 2]
    (folder / "intrinsics.txt").write_text(f"{fx} {fy} {cx} {cy}\n")


def test_tum_reader_association_quaternions_and_scale(tmp_path):
    poses = poses_circle(4)
    seq = tmp_path / "rgbd_dataset_freiburg1_room"
    write_tum(seq, poses)
    # drop the depth of frame 2 from the list: its colour then has no depth within 0.02 s
    lines = (seq / "depth.txt").read_text().splitlines()
    (seq / "depth.txt").write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    scene = read_scene(seq, OPTS)
    assert scene.meta["layout"] == "tum"
    assert len(scene.frames) == 3 and scene.skipped_frames == {"no_match": 1}
    for f, pose in zip(scene.frames, [poses[0], poses[1], poses[3]]):
        np.testing.assert_allclose(f.camera_to_world, pose, atol=1e-6)
    np.testing.assert_allclose(scene.frames[0].depth(), render_box(poses[0])[0], atol=1.1e-4)  # 1/5000 m
    assert np.median(wall_distance(scene.points)) < 1e-3


def test_tum_freiburg_default_intrinsics(tmp_path):
    seq = tmp_path / "rgbd_dataset_freiburg3_office"
    write_tum(seq, poses_circle(2))
    (seq / "intrinsics.txt").unlink()
    from geopurify.io.rgbd import TumReader

    reader = TumReader()
    np.testing.assert_allclose(reader._intrinsics(seq), [[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])
    with pytest.raises(ConfigError):
        TumReader(camera="freiburg9")


def test_generic_yaml_world_to_camera_opengl(tmp_path):
    poses = poses_circle(3)
    root = tmp_path / "cap"
    for sub in ("c", "d", "p"):
        (root / sub).mkdir(parents=True)
    for i, pose in enumerate(poses):
        d, c = render_box(pose)
        write_rgb(root / "c" / f"img{i}.png", c)
        write_png16(root / "d" / f"img{i}.png", d, 2000.0)
        gl_c2w = pose @ OPENGL_TO_OPENCV  # same camera, OpenGL axes
        np.savetxt(root / "p" / f"img{i}.txt", np.linalg.inv(gl_c2w))
    (root / "geopurify.yaml").write_text(
        "color: c/*.png\ndepth: d/*.png\npose: p/*.txt\ndepth_scale: 2000\n"
        f"intrinsics: {{fx: {K_SYN[0, 0]}, fy: {K_SYN[1, 1]}, cx: {K_SYN[0, 2]}, cy: {K_SYN[1, 2]}}}\n"
        "pose_convention: world_to_camera\ncamera: opengl\nname: mine\n"
    )
    scene = read_scene(root, OPTS)
    assert scene.name == "mine" and scene.meta["layout"] == "generic"
    for f, pose in zip(scene.frames, poses):
        np.testing.assert_allclose(f.camera_to_world, pose, atol=1e-6)
    assert np.median(wall_distance(scene.points)) < 1e-3
    # reading the YAML path itself works too
    assert len(read_scene(root / "geopurify.yaml", OPTS).frames) == 3


@pytest.mark.parametrize(
    "text, err, match",
    [
        ("color: c/*.png\ndepth: d/*.png\npose: p/*.txt\n", ConfigError, "missing required key 'intrinsics'"),
        ("color: c/*.png\ndepth: d/*.png\npose: p/*.txt\nintrinsics: [1, 1, 0, 0]\ncolour: x\n", ConfigError,
         "unknown keys"),
        ("color: c/*.png\ndepth: d/*.png\npose: p/*.txt\nintrinsics: [1, 1, 0, 0]\ncamera: unity\n", ConfigError,
         "opencv or opengl"),
        ("color: [unclosed\n", ConfigError, "cannot parse YAML"),
        ("color: none/*.png\ndepth: d/*.png\npose: p/*.txt\nintrinsics: [1, 1, 0, 0]\n", InputError, "matches no file"),
    ],
)
def test_generic_yaml_errors_name_the_file(tmp_path, text, err, match):
    cfg = tmp_path / "geopurify.yaml"
    cfg.write_text(text)
    with pytest.raises(err, match=match) as info:
        read_scene(tmp_path, ReadOptions())
    assert str(cfg) in str(info.value)
