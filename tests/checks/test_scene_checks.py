"""`geopurify inspect` and the cheap checks `segment` and `train` run before lifting."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from _fixtures import write_tiny_scannet
from geopurify.cli import main
from geopurify.errors import ConfigError


def _no_lift(monkeypatch):
    """Make any lifting fail loudly: the checks under test must refuse before it."""
    import geopurify.lifting as lifting

    def boom(*a, **k):
        raise AssertionError("lifting started")

    monkeypatch.setattr(lifting, "lift_scene", boom)


def test_inspect_prints_what_a_user_needs(tmp_path, capsys):
    d = write_tiny_scannet(tmp_path, frames=3)
    np.savetxt(d / "pose" / "2.txt", np.full((4, 4), -np.inf))
    (d / "features_2d" / "1.npz").unlink()
    assert main(["inspect", str(d), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "layout scannet" in out
    assert "3 found, 2 usable; skipped: bad_pose 1" in out
    assert "colour 160x120: fx 160.00, fy 160.00, cx 80.00, cy 60.00" in out
    assert "depth      1000 units per metre" in out
    assert "2 frames checked by reprojection: depth agrees with the cloud for 100%" in out
    assert "features_2d/<id>.npz, <id> = the pose file's stem" in out
    assert "expected e.g. 0.npz, 1.npz; present 1 of 2 (4-d)" in out and "missing e.g. 1.npz" in out
    assert "1600 points" in out and "memory     segment needs about" in out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["frames_usable"] == 2 and rep["features"]["present"] == 1


def shift_poses(d, frames, dz=1.0):
    """Move the cameras of ``frames`` 1 m closer to the plane: their depth (2 m) disagrees with the mesh."""
    for k in frames:
        pose = np.loadtxt(d / "pose" / f"{k}.txt")
        pose[2, 3] += dz
        np.savetxt(d / "pose" / f"{k}.txt", pose)


def test_frames_whose_depth_disagrees_are_warned_and_counted(tmp_path, caplog):
    d = write_tiny_scannet(tmp_path, frames=4)
    shift_poses(d, [1, 2, 3])
    with caplog.at_level(logging.WARNING):
        assert main(["segment", str(d), "--no-purify", "--out", str(tmp_path / "o")]) == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["counts"]["low_agreement_frames"] == 3 and run["counts"]["frames_checked"] == 4
    assert "3 of 4 checked frames have depth that agrees with under 5% of the points projected into them" in caplog.text
    assert "check the pose convention" in caplog.text and "depth scale" in caplog.text


def test_few_points_seen_is_warned_and_counted(tmp_path, caplog):
    d = write_tiny_scannet(tmp_path, frames=2)
    for k in range(2):  # depth only in a narrow band: about 10% of the plane can be seen
        dep = np.zeros((60, 80), np.uint16)
        dep[:, 38:42] = 2000
        Image.fromarray(dep).save(d / "depth" / f"{k}.png")
    with caplog.at_level(logging.WARNING):
        assert main(["segment", str(d), "--no-purify", "--out", str(tmp_path / "o")]) == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["counts"]["seen_fraction"] < 0.2
    assert any("lifting saw only" in w for w in run["counts"]["check_warnings"])
    assert "lifting saw only" in caplog.text and "check the pose convention" in caplog.text


def test_wrongly_named_features_refused_before_lifting(tmp_path, monkeypatch, capsys):
    d = write_tiny_scannet(tmp_path, frames=2)
    for k in range(2):  # e.g. written with another layout's ids
        (d / "features_2d" / f"{k}.npz").rename(d / "features_2d" / f"frame_{k:05d}.npz")
    _no_lift(monkeypatch)
    assert main(["segment", str(d), "--no-purify", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "none of the 2 frames has a feature file: expected 0.npz, 1.npz" in err[0]
    assert "pose file's stem" in err[0] and "frame_00000.npz" in err[0]
    assert not (tmp_path / "o").exists()


def test_student_of_another_feature_size_refused_before_lifting(tmp_path, monkeypatch, capsys):
    from geopurify.student import AffinityNet, StudentConfig, save

    d = write_tiny_scannet(tmp_path, frames=2)
    save(AffinityNet(StudentConfig(in_dim=8 + 6, width=8, out_dim=8)), tmp_path / "student.safetensors")
    _no_lift(monkeypatch)
    code = main(["segment", str(d), "--student", str(tmp_path / "student.safetensors"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    st = tmp_path / "student.safetensors"
    assert code == 3 and f"student {st} expects 8-d features but this scene's are 4-d" in err


def test_student_size_refusal_names_the_student_file(tmp_path):
    """'the student expects N-d features' did not say which student; both checks (before fusion, and
    before lifting) name the file it was loaded from."""
    from geopurify.checks import early_check, preflight
    from geopurify.io import ReadOptions, read_scene
    from geopurify.student import AffinityNet, StudentConfig, load, save

    d = write_tiny_scannet(tmp_path, frames=2)
    f = save(AffinityNet(StudentConfig(in_dim=8 + 6, width=8, out_dim=8)), tmp_path / "st")
    student = load(tmp_path / "st")
    assert student.source == f
    scene = read_scene(d, ReadOptions())
    with pytest.raises(ConfigError, match=f"the student {f} expects 8-d features but this scene's are 4-d"):
        early_check(scene, "precomputed", student_dim=8, student_file=student.source)
    with pytest.raises(ConfigError, match=f"the student {f} expects 8-d features but this scene's are 4-d"):
        preflight(scene, "precomputed", 4, 8, student_file=student.source)


def test_train_checks_features_before_lifting(tmp_path, monkeypatch, capsys):
    d = write_tiny_scannet(tmp_path, frames=2)
    for k in range(2):
        (d / "features_2d" / f"{k}.npz").unlink()
    _no_lift(monkeypatch)
    assert main(["train", str(d), "--out", str(tmp_path / "s"), "--steps", "1"]) == 2
    assert "none of the 2 frames has a feature file" in capsys.readouterr().err


def test_neighbour_depth_flags_a_wrong_pose_convention(tmp_path):
    """A fused cloud agrees with its own frames whatever the poses; consecutive frames' depth does not."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
    from io_synth import poses_circle
    from test_input_validation import write_yaml_capture

    from geopurify.checks import check_scene
    from geopurify.io import ReadOptions, read_scene

    poses = poses_circle(12)
    write_yaml_capture(tmp_path / "ok", poses)
    ok = check_scene(read_scene(tmp_path / "ok", ReadOptions(fuse_voxel_size=0.05)))
    assert not ok.warnings
    assert np.median([c.neighbour_agreement for c in ok.frame_checks if c.neighbour_agreement is not None]) > 0.8
    write_yaml_capture(tmp_path / "bad", poses, extra="pose_convention: world_to_camera\n")
    bad = check_scene(read_scene(tmp_path / "bad", ReadOptions(fuse_voxel_size=0.05)))
    assert any("consecutive frames' depth agrees for only" in w for w in bad.warnings)


def test_inspect_bad_intrinsics_is_one_line_exit_2(tmp_path, capsys):
    d = write_tiny_scannet(tmp_path, frames=2)
    np.savetxt(d / "intrinsic" / "intrinsic_depth.txt", np.diag([-1.0, 1, 1, 1]))
    assert main(["inspect", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "focal lengths must be positive" in err[0]


def test_mis_named_features_refused_before_fusing_a_cloud(tmp_path, monkeypatch, capsys):
    """A capture without a mesh: the feature names are checked before the (slow) fusion from depth."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
    from io_synth import poses_circle
    from test_input_validation import write_yaml_capture

    import geopurify.io.rgbd as rgbd

    cap = tmp_path / "cap"
    write_yaml_capture(cap, poses_circle(3))
    (cap / "features_2d").mkdir()
    for i in range(3):  # named as TUM would name them, not by the colour stems 000, 001, 002
        np.savez(cap / "features_2d" / f"{100 + i / 10:.6f}.npz", feat=np.zeros((4, 4, 2), np.float32))

    def boom(*a, **k):
        raise AssertionError("fusion started")

    monkeypatch.setattr(rgbd, "fuse_depth", boom)
    assert main(["segment", str(cap), "--no-purify", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "none of the 3 frames has a feature file: expected 000.npz, 001.npz, 002.npz" in err
    assert "colour file's stem" in err and "100.000000.npz" in err


def test_text_embeddings_that_encode_wrote_are_checked_before_fusing_a_cloud(tmp_path, monkeypatch, capsys):
    """`geopurify encode` writes features_2d/text_embeddings.npz: the early check reads it there too."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
    from io_synth import poses_circle
    from test_input_validation import write_yaml_capture

    import geopurify.io.rgbd as rgbd

    cap = tmp_path / "cap"
    write_yaml_capture(cap, poses_circle(3))
    (cap / "features_2d").mkdir()
    for i in range(3):
        np.savez(cap / "features_2d" / f"{i:03d}.npz", feat=np.zeros((4, 4, 2), np.float32))
    np.savez(cap / "features_2d" / "text_embeddings.npz", names=np.array(["a", "b"]),
             embeddings=np.eye(2, 8, dtype=np.float32))  # fmt: skip

    def boom(*a, **k):
        raise AssertionError("fusion started")

    monkeypatch.setattr(rgbd, "fuse_depth", boom)
    assert main(["segment", str(cap), "--no-purify", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "dimension" in err and "8" in err, err


def test_scene_no_frame_sees_is_refused_before_lifting(tmp_path, monkeypatch, capsys):
    """Cameras 3 m behind the plane's far side: the cheap checks find 0% and every frame confirms it."""
    d = write_tiny_scannet(tmp_path, frames=3)
    shift_poses(d, range(3), dz=5.0)
    _no_lift(monkeypatch)
    for cmd in (["segment", str(d), "--no-purify", "--out", str(tmp_path / "o")],
                ["train", str(d), "--out", str(tmp_path / "s"), "--steps", "1"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no point of the cloud is in view of any of the 3 frames" in err[0], err
    assert not (tmp_path / "o").exists()


def test_sparse_coverage_is_not_refused(tmp_path):
    """The sampled frame sees nothing and the point subsample misses the corner the other frame sees:
    all points are projected before refusing."""
    from geopurify.checks import CheckConfig, any_point_in_view, preflight
    from geopurify.io import ReadOptions, read_scene

    d = write_tiny_scannet(tmp_path, frames=2)
    shift_poses(d, [0], dz=5.0)  # frame 0 (the only one sampled) looks away from the plane
    pose = np.loadtxt(d / "pose" / "1.txt")
    pose[0, 3] = 1.47  # frame 1 (half-width 1 m at 2 m) sees only the plane's last column (x = 0.5, from x = 0.45 on)
    np.savetxt(d / "pose" / "1.txt", pose)
    scene = read_scene(d, ReadOptions())
    cfg = CheckConfig(max_frames=1, sample_points=5)
    from geopurify.checks import _in_view

    pts = np.asarray(scene.points, np.float64)
    assert not _in_view(pts[pts[:, 0] < 0.4], scene.frames[1]) and _in_view(pts, scene.frames[1])
    assert any_point_in_view(scene, cfg)
    rep = preflight(scene, "precomputed", 4, cfg=cfg)
    assert rep.seen_fraction == 0


def test_inspect_exits_2_when_no_frame_is_usable(tmp_path, capsys):
    d = write_tiny_scannet(tmp_path, frames=2)
    for k in range(2):
        np.savetxt(d / "pose" / f"{k}.txt", np.full((4, 4), -np.inf))
    assert main(["inspect", str(d), "--json", str(tmp_path / "r.json")]) == 2
    cap = capsys.readouterr()
    assert "2 found, 0 usable; skipped: bad_pose 2" in cap.out  # the report as usual
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and "none of the 2 frames found is usable (skipped: bad_pose 2)" in err[0], err
    assert "usable" in json.loads((tmp_path / "r.json").read_text())["refused"]


def test_inspect_exits_2_when_no_frame_sees_the_cloud(tmp_path, capsys):
    d = write_tiny_scannet(tmp_path, frames=2)
    shift_poses(d, range(2), dz=5.0)
    assert main(["inspect", str(d)]) == 2
    assert "no point of the cloud is in view of any of the 2 frames" in capsys.readouterr().err


def test_train_rerun_with_other_settings_is_refused_before_preparing_scenes(tmp_path, monkeypatch, capsys):
    import geopurify.api as api

    d = write_tiny_scannet(tmp_path, frames=2)
    out = tmp_path / "s"
    assert main(["train", str(d), "--out", str(out), "--steps", "1"]) == 0
    capsys.readouterr()

    def boom(*a, **k):
        raise AssertionError("scenes prepared")

    monkeypatch.setattr(api, "prepare_training_scene", boom)
    assert main(["train", str(d), "--out", str(out), "--steps", "1", "--lr", "0.0123"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint was trained with different settings (lr: " in err[0], err
    assert main(["train", str(d), "--out", str(out), "--steps", "1", "--voxel-fuse", "0.05"]) == 3
    assert "different settings (read: " in capsys.readouterr().err


def test_no_frame_in_view_is_no_refusal_for_a_scene_of_per_point_features(tmp_path):
    from geopurify.checks import check_scene
    from geopurify.io import ReadOptions, read_scene

    d = write_tiny_scannet(tmp_path, frames=2)
    shift_poses(d, range(2), dz=5.0)
    scene = read_scene(d, ReadOptions())
    assert "in view" in check_scene(scene, encoder="precomputed").refused
    scene.point_features = np.zeros((scene.num_points, 4), np.float32)  # segment lifts no frame then
    assert check_scene(scene, encoder="none").refused is None
    # auto with features_2d/ beside the per-point features lifts the frames (encoder_for_scene): refused
    assert "in view" in check_scene(scene, encoder="auto").refused
    import shutil

    shutil.rmtree(d / "features_2d")
    assert check_scene(scene, encoder="auto").refused is None  # auto takes the per-point features then


def test_repeated_frames_are_counted_in_inspect_and_run_json(tmp_path, capsys):
    """The read-time warning scrolls away; the report and run.json keep the count."""
    import shutil

    d = write_tiny_scannet(tmp_path, frames=2)
    for sub, ext in (("pose", "txt"), ("color", "jpg"), ("depth", "png"), ("features_2d", "npz")):
        shutil.copy(d / sub / f"0.{ext}", d / sub / f"2.{ext}")  # frame 2 repeats frame 0
    assert main(["inspect", str(d), "--json", str(tmp_path / "r.json")]) == 0
    assert "1 repeat an earlier frame (kept, so counted twice); 0 share another image's id" in capsys.readouterr().out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["frames_repeated"] == 1 and rep["frame_id_clashes"] == 0
    assert main(["segment", str(d), "--no-purify", "--out", str(tmp_path / "o")]) == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["counts"]["frames_repeated"] == 1 and "frame_id_clashes" not in run["counts"]


def test_inspect_exits_2_when_segment_finds_no_feature_file(tmp_path, capsys):
    """features_2d/ whose files match no frame: segment refuses before lifting, so inspect exits 2 too
    (it exited 0 with a warning), with segment's own line."""
    d = write_tiny_scannet(tmp_path, frames=2)
    for k in range(2):  # e.g. written with another layout's ids
        (d / "features_2d" / f"{k}.npz").rename(d / "features_2d" / f"frame_{k:05d}.npz")
    assert main(["segment", str(d), "--no-purify", "--out", str(tmp_path / "o")]) == 2
    want = capsys.readouterr().err.strip()
    assert main(["inspect", str(d), "--json", str(tmp_path / "r.json")]) == 2
    cap = capsys.readouterr()
    assert "present 0 of 2" in cap.out  # the report as usual
    assert cap.err.strip().splitlines()[-1] == want  # then segment's own line
    assert "none of the 2 frames has a feature file" in json.loads((tmp_path / "r.json").read_text())["refused"]
    assert main(["-q", "inspect", str(d), "--encoder", "clip"]) == 0  # clip reads no feature file


def test_inspect_exits_2_for_a_cloud_with_nothing_to_lift(tmp_path, capsys):
    """A point cloud with no camera frame and no per-point features: segment refuses it (no 2D encoder can
    label it), so inspect exits 2 too (it exited 0 without a word), with segment's own line."""
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, np.random.default_rng(0).random((500, 6)).astype(np.float32))  # xyz + rgb only
    assert main(["segment", str(cloud), "--no-purify", "--out", str(tmp_path / "o")]) == 2
    want = capsys.readouterr().err.strip()
    assert "no camera frames and no per-point 2D features" in want
    assert main(["inspect", str(cloud), "--json", str(tmp_path / "r.json")]) == 2
    cap = capsys.readouterr()
    assert "0 found, 0 usable" in cap.out and cap.err.strip().splitlines() == [want]
    assert json.loads((tmp_path / "r.json").read_text())["refused"] == want.removeprefix("geopurify: error: ")
    np.save(tmp_path / "cloud.features_2d.npy", np.zeros((500, 4), np.float32))  # per-point features: fine
    assert main(["-q", "inspect", str(cloud)]) == 0
