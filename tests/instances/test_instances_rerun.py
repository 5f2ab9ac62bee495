"""A rerun of `instances` into a folder that holds an earlier run's objects: nothing of the earlier run
(its object rankings, its scores, its instances.json) is left beside the new objects."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from geopurify.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from viz_fixtures import make_output  # noqa: E402


@pytest.fixture
def out_with_objects(tmp_path, capsys):
    out = make_output(tmp_path / "out")  # a floor and one chair
    assert main(["-q", "instances", str(out)]) == 0
    assert main(["-q", "query", str(out), "chair", "--objects"]) == 0
    assert (out / "query" / "chair_objects.json").is_file()
    (out / "eval_instances.json").write_text(json.dumps({"ap": 1.0}))  # as `eval --instances` leaves it
    capsys.readouterr()
    return out


def test_a_rerun_removes_what_the_earlier_objects_made(out_with_objects):
    out = out_with_objects
    assert main(["-q", "instances", str(out), "--min-points", "100000"]) == 0  # now no object at all
    assert json.loads((out / "instances.json").read_text())["instances"] == []
    assert not (out / "query" / "chair_objects.json").exists(), "a ranking of objects that are gone"
    assert not (out / "eval_instances.json").exists(), "scores of objects that are gone"


def test_an_interrupted_rerun_leaves_no_old_objects_beside_its_new_ply(out_with_objects, monkeypatch, capsys):
    from geopurify import outputs

    out = out_with_objects
    real = outputs.OutputWriter.json

    def killed(self, name, obj):
        if name == "instances.json":
            raise KeyboardInterrupt  # Ctrl-C after instances.ply was written
        real(self, name, obj)

    monkeypatch.setattr(outputs.OutputWriter, "json", killed)
    assert main(["-q", "instances", str(out), "--min-points", "100000"]) == 130
    assert not (out / "instances.json").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["-q", "query", str(out), "chair", "--objects"]) == 2
    assert "no instances.json; run `geopurify instances" in capsys.readouterr().err
