"""A synth scene folder is complete or absent: an interrupt leaves nothing, a rerun replaces the folder
(no frames of the earlier run left beside the new ones), a folder holding other files is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from geopurify.cli import main
from geopurify.synthetic import ScanRenderConfig, SyntheticConfig, make_scene, render_scan
from geopurify.synthetic import scan as scan_mod
from geopurify.synthetic import scene as scene_mod

SMALL = dataclasses.replace(SyntheticConfig(), target_points=3000, n_frames=3, room_size=(3.0, 3.5),
                            color_hw=(48, 64), depth_hw=(36, 48), feature_hw=(24, 32))  # fmt: skip
FAST = dict(color_hw=(48, 64), depth_hw=(36, 48), feature_hw=(24, 32))


@pytest.fixture(scope="module")
def room(tmp_path_factory) -> Path:
    return make_scene(tmp_path_factory.mktemp("src"), "synth0000_00", SMALL)


def _interrupt_after(monkeypatch, module, calls: int) -> None:
    """Ctrl-C during the ``calls``-th feature file of ``module``'s frame loop."""
    real, n = module._write_npz, [0]

    def write(path, **arrays):
        if path.parent.name == "features_2d":
            n[0] += 1
            if n[0] == calls:
                raise KeyboardInterrupt
        real(path, **arrays)

    monkeypatch.setattr(module, "_write_npz", write)


def test_interrupted_render_leaves_no_scene_folder(room, tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, scan_mod, 2)
    with pytest.raises(KeyboardInterrupt):
        render_scan(room, tmp_path / "views", ScanRenderConfig(n_frames=4, **FAST))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the folder nor a hidden one


def test_interrupted_room_leaves_no_room_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    first = make_scene(tmp_path, "synth0000_00", SMALL)
    before = sorted(p.relative_to(first) for p in first.rglob("*"))
    _interrupt_after(monkeypatch, scene_mod, 2)
    with pytest.raises(KeyboardInterrupt):
        make_scene(tmp_path, "synth0000_00", dataclasses.replace(SMALL, seed=5))
    _interrupt_after(monkeypatch, scene_mod, 1)
    with pytest.raises(KeyboardInterrupt):
        make_scene(tmp_path, "synth0001_00", SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth0000_00"]
    assert sorted(p.relative_to(first) for p in first.rglob("*")) == before


def test_rerun_with_fewer_frames_leaves_only_the_new_frames(room, tmp_path):
    out = tmp_path / "views"
    render_scan(room, out, ScanRenderConfig(n_frames=4, **FAST))
    render_scan(room, out, ScanRenderConfig(n_frames=2, **FAST))
    for sub in ("color", "depth", "pose", "features_2d"):
        assert len(list((out / sub).iterdir())) == 2, sub
    assert sorted(p.name for p in tmp_path.iterdir()) == ["views"]


def test_folder_with_other_files_is_refused_before_any_work(room, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main(["synth", "--from-scan", str(room), str(out), "--frames", "2"]) == 3
    assert "holds what synth does not write (notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    rooms = tmp_path / "rooms"
    (rooms / "synth0001_00").mkdir(parents=True)
    (rooms / "synth0001_00" / "x.ply").write_text("mine")
    assert main(["synth", str(rooms), "--n", "2", "--points", "3000", "--frames", "1"]) == 3
    assert "synth0001_00: exists and holds what synth does not write (x.ply)" in capsys.readouterr().err
    assert sorted(p.name for p in rooms.iterdir()) == ["synth0001_00"]  # room 0 not written either


def test_from_scan_of_a_labelled_ply_names_the_unknown_label_set(room, tmp_path, capsys):
    ply = room / f"{room.name}_vh_clean_2.labels.ply"
    assert main(["synth", "--from-scan", str(ply), str(tmp_path / "v"), "--frames", "1"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "label set of the ground truth is unknown" in line and "None" not in line
    assert not (tmp_path / "v").exists()
