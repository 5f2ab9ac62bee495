"""The output folder as one type (issue 15/13): ownership, lock, validated read, batch names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geopurify.errors import ConfigError, InputError
from geopurify.outputs import (
    OutputBusyError,
    batch_names,
    check_out_path,
    clear_owned,
    is_complete,
    is_locked,
    locked,
    open_writer,
    read_output,
    same_run,
)


def write_output(out, n=5, run=True):
    with open_writer(out) as w:
        w.labels("labels.txt", np.arange(n) % 2)
        w.npy("points.npy", np.random.default_rng(0).random((n, 3)).astype(np.float32))
        w.npy("colors.npy", np.zeros((n, 3), np.uint8))
        w.json("names.json", ["a", "b"])
        if run:
            w.finish({"command": "segment", "scene": "s", "config": {"x": 1}, "counts": {"points": n}})


def test_write_then_read_and_ownership(tmp_path):
    out = tmp_path / "o"
    write_output(out)
    res = read_output(out)
    assert res.complete and res.names == ["a", "b"] and res.labels.tolist() == [0, 1, 0, 1, 0]
    (out / "eval.json").write_text("{}")
    (out / "render_top.png").write_bytes(b"x")
    (out / "mine.txt").write_text("keep")
    removed = clear_owned(out)
    assert removed[0] == "run.json" and {"eval.json", "render_top.png", "labels.txt"} <= set(removed)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["mine.txt"]


def test_incomplete_and_inconsistent_outputs_are_refused(tmp_path, caplog):
    out = tmp_path / "o"
    write_output(out, run=False)
    with pytest.raises(InputError, match="incomplete output"):
        read_output(out)
    assert read_output(out, allow_incomplete=True).complete is False
    assert "INCOMPLETE" in caplog.text
    assert "--allow-incomplete" not in caplog.text  # the viewer reads it so without that flag: name none
    write_output(out)
    (out / "labels.txt").write_text("0\n1\n")
    with pytest.raises(InputError, match="2 labels but points.npy has 5 points"):
        read_output(out)
    write_output(out)
    (out / "labels.txt").write_text("0\n1\n7\n0\n0\n")
    with pytest.raises(InputError, match="label 7 but only 2 class names"):
        read_output(out)


def test_lock_refuses_a_second_writer_and_marks_the_folder_busy(tmp_path):
    out = tmp_path / "o"
    write_output(out)
    with locked(out):
        assert is_locked(out) and not is_complete(out)
        with pytest.raises(OutputBusyError, match="another geopurify process"):
            write_output(out)
        with pytest.raises(InputError, match="a segment is writing it now"):
            read_output(out)
    assert not is_locked(out) and is_complete(out)


def test_out_path_checks(tmp_path):
    scene = tmp_path / "scene"
    scene.mkdir()
    with pytest.raises(ConfigError, match="is the input"):
        check_out_path(scene / "sub", [scene])
    cloud = tmp_path / "cloud.ply"
    cloud.write_text("x")
    check_out_path(tmp_path / "out", [cloud])  # beside a file input is fine
    with pytest.raises(ConfigError, match="is the input"):
        check_out_path(tmp_path, [cloud])


def test_batch_names_and_same_run(tmp_path):
    a, b, c = tmp_path / "x" / "room" / "seq-01", tmp_path / "y" / "room" / "seq-01", tmp_path / "z" / "seq-02"
    for p in (a, b, c):
        p.mkdir(parents=True)
    names = batch_names([str(a), str(b), str(c)])
    assert names == {str(a): "x_room_seq-01", str(b): "y_room_seq-01", str(c): "seq-02"}
    with pytest.raises(ConfigError, match="same scene"):
        batch_names([str(c), str(c) + "/"])
    out = tmp_path / "o"
    write_output(out)
    run = json.loads((out / "run.json").read_text())
    assert run["scene"] == "s"
    assert same_run(out, "s", {"x": 1}) and not same_run(out, "s", {"x": 2}) and not same_run(out, "t", {"x": 1})


def test_instances_read_and_write_the_folder_through_the_output_type(tmp_path):
    from geopurify.instances import instances_from_output
    from geopurify.outputs import INSTANCES_FILE, INSTANCES_PLY

    out = tmp_path / "o"
    write_output(out, n=200)
    found = instances_from_output(out)
    assert (out / INSTANCES_FILE).is_file() and (out / INSTANCES_PLY).is_file() and found.num_points == 200
    write_output(out, n=200, run=False)  # a rerun that died: instances' files went with the old run.json
    assert not (out / INSTANCES_FILE).exists()
    with pytest.raises(InputError, match="incomplete output"):
        instances_from_output(out)
    write_output(out, n=200)
    with locked(out), pytest.raises(InputError, match="a segment is writing it now"):
        instances_from_output(out)
    np.savez(out / "text_embeddings.npz", names=np.array(["a", "c"]), embeddings=np.eye(2, dtype=np.float32))
    with pytest.raises(InputError, match="list different classes"):
        read_output(out).text_embeddings()


def test_scene_read_options_follow_the_run(tmp_path):
    """render --gt reads the scene as the output recorded reading it (layout and reader options only for
    the very scene it was made from); the defaults without a run.json."""
    from geopurify.io import ReadOptions
    from geopurify.outputs import scene_read_options

    run = {"scene": str(tmp_path / "cap"), "config": {"read": {
        "frame_skip": 5, "max_frames": 3, "fuse_voxel_size": 0.05, "layout": "7scenes", "reader_options": {},
        "before_fusion": None, "level": False}}}
    same = scene_read_options(run, tmp_path / "cap")
    assert (same.frame_skip, same.max_frames, same.fuse_voxel_size, same.layout, same.level) == (5, 3, 0.05,
                                                                                                "7scenes", False)
    other = scene_read_options(run, tmp_path / "copy")
    assert (other.frame_skip, other.max_frames, other.layout) == (5, 3, "auto")
    assert scene_read_options({}, tmp_path / "cap") == ReadOptions()
