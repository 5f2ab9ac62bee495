"""Bad values and files found by a bug hunt over every command: one line, the right exit code, no work."""

from __future__ import annotations

import json

import pytest

from geopurify.cli import main


def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.startswith("geopurify:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv, message", [
    (["segment", "{scene}", "--no-purify", "--voxel-size", "inf"], "voxel_size must be a finite number"),
    (["inspect", "{scene}", "--voxel-size", "inf"], "voxel_size must be a finite number"),
    (["segment", "{scene}", "--no-purify", "--memory-mb", "inf"], "memory_mb must be a finite number"),
    (["segment", "{scene}", "--no-purify", "--depth-tolerance", "inf"], "depth_tolerance must be a finite number"),
    (["train", "{scene}", "--lr", "inf"], "lr must be a finite number"),
    (["train", "{scene}", "--voxel-size", "-1"], "voxel_size must be a finite number"),
    (["train", "{scene}", "--weight-decay", "nan"], "weight_decay must be a finite number"),
])
def test_infinite_or_negative_values_are_config_errors_before_reading(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    argv = [a.replace("{scene}", str(tmp_path / "missing")) for a in argv] + (
        [] if argv[0] == "inspect" else ["--out", str(out)])
    assert main(argv) == 3
    assert message in err_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("command, files", [
    ("segment", {"run.json": '{"status": "complete", "command": "train"}', "student.safetensors": "x"}),
    ("segment", {"checkpoint.pt": "x"}),  # a killed train: no run.json yet
    ("train", {"run.json": '{"status": "complete", "command": "segment"}', "labels.txt": "0\n"}),
    ("train", {"labels.txt": "0\n"}),  # a killed segment
])
def test_out_holding_another_commands_output_is_refused_untouched(tmp_path, capsys, monkeypatch, command, files):
    import geopurify.lifting as lifting
    from _fixtures import write_tiny_scannet

    monkeypatch.setattr(lifting, "lift_scene", lambda *a, **k: pytest.fail("lifting started"))
    scene = write_tiny_scannet(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    argv = [command, str(scene), "--out", str(out)] + (["--no-purify"] if command == "segment" else ["--steps", "1"])
    assert main(argv) == 3
    assert "holds the output of `geopurify" in err_line(capsys)
    assert {p.name: p.read_text() for p in out.iterdir()} == files


def test_eval_against_another_scene_of_the_same_point_count_is_refused(tmp_path, capsys):
    import shutil

    from plyfile import PlyData

    from _fixtures import write_tiny_scannet

    scene = write_tiny_scannet(tmp_path)
    out = tmp_path / "o"
    assert main(["segment", str(scene), "--no-purify", "--out", str(out)]) == 0
    other = tmp_path / "other" / scene.name
    shutil.copytree(scene, other)
    for ply in other.glob("*.ply"):  # the same vertex count, elsewhere: another room
        data = PlyData.read(str(ply), mmap=False)
        data["vertex"].data["x"] += 3.0
        data.write(str(ply))
    capsys.readouterr()
    assert main(["eval", str(out), "--gt", str(other)]) == 2
    assert "made from another scene" in err_line(capsys)
    assert not (out / "eval.json").exists()
    assert main(["eval", str(out), "--gt", str(scene)]) == 0
    assert main(["instances", str(out), "--stuff", "ceiling"]) == 0  # the tiny room has only wall and floor
    capsys.readouterr()
    assert main(["eval", str(out), "--gt", str(other), "--instances"]) == 2  # instance AP as well
    assert "made from another scene" in err_line(capsys)
    assert main(["render", str(out), "--gt", str(other)]) == 2  # and the GT panel of render
    assert "made from another scene" in err_line(capsys)
    assert not list(out.glob("render_*.png"))


@pytest.mark.parametrize("argv, code, message", [
    (["--out", "{file}"], 3, "exists and is not a folder"),  # was an internal error after a room was made
    (["--steps", "0", "--out", "{dir}"], 3, "TrainConfig.steps must be >= 1"),  # 0 silently meant the default
])
def test_demo_refuses_bad_options_before_any_work(tmp_path, capsys, argv, code, message):
    (tmp_path / "f").write_text("x")
    argv = [a.replace("{file}", str(tmp_path / "f")).replace("{dir}", str(tmp_path / "d")) for a in argv]
    assert main(["demo", *argv]) == code
    assert message in err_line(capsys)
    assert not (tmp_path / "d").exists()


def test_query_refuses_an_empty_phrase(tmp_path, capsys):
    from _fixtures import write_tiny_scannet

    scene = write_tiny_scannet(tmp_path)
    out = tmp_path / "o"
    assert main(["segment", str(scene), "--no-purify", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["query", str(out), "wall", "  "]) == 3
    assert "an empty phrase" in err_line(capsys)
    assert not (out / "query").exists()


@pytest.mark.parametrize("command, theirs", [("segment", "train"), ("train", "segment")])
def test_config_of_another_commands_run_is_refused_by_name(tmp_path, capsys, command, theirs):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"status": "complete", "command": theirs, "config": {}}))
    assert main([command, "--config", str(run), "--out", str(tmp_path / "o")]) == 3
    assert f"the run.json of `geopurify {theirs}`, not of {command}" in err_line(capsys)


def test_an_output_with_nan_points_is_refused_by_its_readers(tmp_path, capsys):
    import numpy as np

    from _fixtures import write_tiny_scannet

    scene = write_tiny_scannet(tmp_path)
    out = tmp_path / "o"
    assert main(["segment", str(scene), "--no-purify", "--out", str(out)]) == 0
    pts = np.load(out / "points.npy")
    pts[5] = np.nan
    np.save(out / "points.npy", pts)
    capsys.readouterr()
    for argv in (["render", str(out)], ["query", str(out), "wall"], ["instances", str(out)]):  # internal errors
        assert main(argv) == 2
        assert "points.npy: holds NaN" in err_line(capsys)


@pytest.mark.parametrize("lines, scene, code, message", [
    ("# nothing\n\n", False, 2, "names no scene"),  # was "0 done" and exit 0
    ("{scene}\n", True, 3, "not both"),  # SCENE beside --scenes was silently ignored
])
def test_scene_list_mistakes(tmp_path, capsys, monkeypatch, lines, scene, code, message):
    import geopurify.lifting as lifting
    from _fixtures import write_tiny_scannet

    monkeypatch.setattr(lifting, "lift_scene", lambda *a, **k: pytest.fail("lifting started"))
    d = write_tiny_scannet(tmp_path)
    lst = tmp_path / "list.txt"
    lst.write_text(lines.replace("{scene}", str(d)))
    argv = ["segment", *([str(d)] if scene else []), "--scenes", str(lst), "--no-purify", "--out", str(tmp_path / "o")]
    assert main(argv) == code
    assert message in err_line(capsys)
