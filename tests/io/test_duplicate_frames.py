"""Frames listed twice, frames of one id, and two YAML captures in one folder: warned about once, kept."""

from __future__ import annotations

import logging
import shutil

import numpy as np
from io_synth import poses_circle
from test_input_validation import write_yaml_capture
from test_rgbd_readers import write_tum

from _fixtures import write_tiny_scannet
from geopurify.io import ReadOptions, read_scene

OPTS = ReadOptions(fuse_voxel_size=0.05)


def _repeats(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "repeat an earlier frame" in r.getMessage()]


def test_same_pose_and_image_is_warned_once_and_kept(tmp_path, caplog):
    d = write_tiny_scannet(tmp_path, frames=2)
    with caplog.at_level(logging.WARNING):
        read_scene(d, ReadOptions())
    assert not _repeats(caplog)  # distinct frames: no warning
    for sub, ext in (("pose", "txt"), ("color", "jpg"), ("depth", "png"), ("features_2d", "npz")):
        for k in (2, 3):  # copies of frame 0 under other names
            shutil.copy(d / sub / f"0.{ext}", d / sub / f"{k}.{ext}")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        scene = read_scene(d, ReadOptions())
    assert [f.frame_id for f in scene.frames] == ["0", "1", "2", "3"]  # kept: results do not change
    msgs = _repeats(caplog)
    assert len(msgs) == 1 and "2 frame(s) repeat an earlier frame" in msgs[0] and "2 repeats 0" in msgs[0], msgs


def test_same_pose_other_image_is_not_a_repeat(tmp_path, caplog):
    d = write_tiny_scannet(tmp_path, frames=2)
    shutil.copy(d / "pose" / "0.txt", d / "pose" / "1.txt")
    from PIL import Image

    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(d / "color" / "1.jpg")
    with caplog.at_level(logging.WARNING):
        read_scene(d, ReadOptions())
    assert not _repeats(caplog)


def test_tum_image_listed_twice_is_warned(tmp_path, caplog):
    seq = tmp_path / "rgbd_dataset_freiburg1_room"
    write_tum(seq, poses_circle(3))
    lines = (seq / "rgb.txt").read_text().splitlines()
    (seq / "rgb.txt").write_text("\n".join([*lines, lines[2]]) + "\n")
    with caplog.at_level(logging.WARNING):
        scene = read_scene(seq, OPTS)
    assert len(scene.frames) == 4
    msgs = _repeats(caplog)
    assert len(msgs) == 1 and "1 frame(s) repeat an earlier frame" in msgs[0], msgs


def test_two_yamls_in_one_folder_with_clashing_ids_are_warned(tmp_path, caplog):
    """a.yaml and b.yaml list different images with the same stems: both read one features_2d/."""
    for sub in ("a", "b"):
        write_yaml_capture(tmp_path / sub, poses_circle(2, radius=0.6 if sub == "a" else 0.5))
        spec = (tmp_path / sub / "geopurify.yaml").read_text()
        (tmp_path / sub / "geopurify.yaml").unlink()
        for key in ("c", "d", "p"):
            spec = spec.replace(f"{key}/*", f"{sub}/{key}/*")
        (tmp_path / f"{sub}.yaml").write_text(spec)
    with caplog.at_level(logging.WARNING):
        read_scene(tmp_path / "a.yaml", OPTS)
    msg = [r.getMessage() for r in caplog.records if "share" in r.getMessage()]
    assert len(msg) == 1 and "a.yaml and b.yaml share" in msg[0] and "2 of their frames have the same id" in msg[0]
    # one YAML over both folders: its frames of one id share a feature file
    (tmp_path / "b.yaml").unlink()
    spec = (tmp_path / "a.yaml").read_text()
    for key in ("c", "d", "p"):
        spec = spec.replace(f"a/{key}/*.png", f"'*/{key}/*.png'").replace(f"a/{key}/*.txt", f"'*/{key}/*.txt'")
    (tmp_path / "a.yaml").write_text(spec)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_scene(tmp_path / "a.yaml", OPTS)
    msg = [r.getMessage() for r in caplog.records if "features_2d/" in r.getMessage()]
    assert len(msg) == 1 and "2 frame(s) have the id of an earlier frame with another image" in msg[0], msg
