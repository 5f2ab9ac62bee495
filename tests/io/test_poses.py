"""Pose files in every form capture tools write, paired to frames by order, index or timestamp."""

from __future__ import annotations

import numpy as np
import pytest
from io_synth import K_SYN, poses_circle, render_box, rot_to_quat, wall_distance, write_png16, write_rgb

from geopurify.errors import ConfigError, InputError
from geopurify.io import ReadOptions, read_scene
from geopurify.io.poses import PosePairing, pair_poses, read_pose_files, read_trajectory

OPTS = ReadOptions(fuse_voxel_size=0.05)




def tum_lines(poses, t0=100.0, dt=0.1):
    return [f"{t0 + dt * i:.4f} " + " ".join(f"{v:.9f}" for v in [*p[:3, 3], *rot_to_quat(p[:3, :3])])
            for i, p in enumerate(poses)]


@pytest.mark.parametrize("form", ["tum", "tum_header", "tum_plain_header", "16", "12", "stacked"])
def test_trajectory_forms_give_the_same_poses(tmp_path, form):
    poses = poses_circle(5)
    f = tmp_path / "traj.txt"
    if form.startswith("tum"):
        head = {"tum": [], "tum_header": ["# timestamp tx ty tz qx qy qz qw"],
                "tum_plain_header": ["timestamp tx ty tz qx qy qz qw"]}[form]
        f.write_text("\n".join(head + tum_lines(poses)) + "\n")
    elif form == "16":
        np.savetxt(f, np.stack([p.ravel() for p in poses]))
    elif form == "12":
        np.savetxt(f, np.stack([p[:3].ravel() for p in poses]))
    else:
        np.savetxt(f, np.concatenate(poses))
    track = read_trajectory(f)
    assert len(track) == 5
    np.testing.assert_allclose(track.poses, np.stack(poses), atol=1e-6)
    assert (track.stamps is not None) == form.startswith("tum")


def test_trajectory_errors_name_file_and_line(tmp_path):
    f = tmp_path / "traj.txt"
    f.write_text("1 2 3 4 5 6 7\n")
    with pytest.raises(InputError, match="7 numbers per line; expected a 4x4 matrix, 16 or 12"):
        read_trajectory(f)
    f.write_text("# c\n" + " ".join(["0"] * 16) + "\n1 2 3\n")
    with pytest.raises(InputError, match=r"traj.txt:3: 3 numbers"):
        read_trajectory(f)


def test_pairing_rules():
    eye = np.tile(np.eye(4), (10, 1, 1))
    from geopurify.io.poses import PoseTrack

    track = PoseTrack(eye, [f"l{i}" for i in range(10)], np.arange(10) * 0.1 + 5.0, "tum")
    names = ["frame_00000", "frame_00004", "frame_00008"]
    # auto: more poses than frames, numbered names -> by index
    p = pair_poses(names, track, PosePairing(), "cfg")
    assert p.mode == "index" and p.pose.tolist() == [0, 4, 8]
    # auto: as many poses as frames -> by order, even when the names carry other numbers
    p = pair_poses(names, PoseTrack(eye[:3], ["a", "b", "c"], None, "16 per line"), PosePairing(), "cfg")
    assert p.mode == "order" and p.pose.tolist() == [0, 1, 2]
    # timestamps in names
    p = pair_poses(["5.101", "5.55", "5.899"], track, PosePairing(), "cfg")
    assert p.mode == "timestamp" and p.pose.tolist() == [1, -1, 9]
    # index past the trajectory -> no pose for that frame
    assert pair_poses(["f3", "f12"], track, PosePairing("index"), "cfg").pose.tolist() == [3, -1]
    with pytest.raises(InputError, match="pose_pairing order, but 10 poses for 3 frames"):
        pair_poses(names, track, PosePairing("order"), "cfg")
    with pytest.raises(InputError, match="give no way to pair them; set pose_pairing"):
        pair_poses(["a", "b"], track, PosePairing(), "cfg")
    with pytest.raises(ConfigError, match="pose_pairing must be one of"):
        PosePairing("nearest")


def test_per_file_poses_pair_by_number(tmp_path):
    for i in (0, 5, 10):
        np.savetxt(tmp_path / f"{i:06d}.txt", np.eye(4) * (1 + i))
    files = sorted(tmp_path.glob("*.txt"))
    track = read_pose_files(files)
    p = pair_poses(["frame-000010", "frame-000000"], track, PosePairing(), "cfg")
    assert p.mode == "index" and track.poses[p.pose[0]][0, 0] == 11


def write_capture(root, poses, scale=1000.0, rgb_hw=None):
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i, pose in enumerate(poses):
        d, c = render_box(pose)
        write_rgb(root / "rgb" / f"frame_{3 * i:05d}.png", c)
        write_png16(root / "depth" / f"frame_{3 * i:05d}.png", d, scale)
    K4 = np.eye(4)
    K4[:3, :3] = K_SYN
    np.savetxt(root / "intrinsic.txt", K4)


def test_yaml_reads_a_tum_trajectory_paired_by_order(tmp_path):
    """The shared scene0378 layout: names frame_00000, frame_00003, ...; line k = k-th frame."""
    poses = poses_circle(4)
    root = tmp_path / "cap"
    write_capture(root, poses)
    (root / "gt_pose.txt").write_text("\n".join(["# timestamp tx ty tz qx qy qz qw", *tum_lines(poses)]) + "\n")
    (root / "geopurify.yaml").write_text(
        "color: rgb/*.png\ndepth: depth/*.png\npose: gt_pose.txt\nintrinsics: intrinsic.txt\ndepth_scale: 1000\n"
    )
    scene = read_scene(root, OPTS)
    assert scene.meta["pose_pairing"] == "order" and scene.meta["pose_form"] == "tum"
    assert scene.name == "cap"  # geopurify.yaml: named after its folder
    (root / "office.yaml").write_text((root / "geopurify.yaml").read_text())
    assert read_scene(root / "office.yaml", OPTS).name == "office"  # any other YAML: after itself
    assert [f.frame_id for f in scene.frames] == ["frame_00000", "frame_00003", "frame_00006", "frame_00009"]
    for f, pose in zip(scene.frames, poses):
        np.testing.assert_allclose(f.camera_to_world, pose, atol=1e-6)
    assert np.median(wall_distance(scene.points)) < 1e-3


def test_yaml_longer_trajectory_pairs_by_index(tmp_path):
    """Every 3rd frame of a 12-line trajectory: frame_0000k takes line k."""
    poses = poses_circle(12)
    root = tmp_path / "cap"
    write_capture(root, poses[::3])
    np.savetxt(root / "traj.txt", np.stack([p.ravel() for p in poses]))  # Replica form, 16 per line
    (root / "geopurify.yaml").write_text(
        "color: rgb/*.png\ndepth: depth/*.png\npose: traj.txt\nintrinsics: intrinsic.txt\n"
    )
    scene = read_scene(root, OPTS)
    assert scene.meta["pose_pairing"] == "index"
    for f, pose in zip(scene.frames, poses[::3]):
        np.testing.assert_allclose(f.camera_to_world, pose, atol=1e-9)
    # ... and by order it is refused with the way out in the message
    (root / "geopurify.yaml").write_text(
        "color: rgb/*.png\ndepth: depth/*.png\npose: traj.txt\nintrinsics: intrinsic.txt\npose_pairing: order\n"
    )
    with pytest.raises(InputError, match="12 poses for 4 frames; use pose_pairing: index or timestamp"):
        read_scene(root, OPTS)
