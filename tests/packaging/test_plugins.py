"""README, "Bring your own models": an installed package that registers an `Encoder` subclass under the
entry-point group `geopurify.encoders` (a teacher under `geopurify.teachers`, a reader under
`geopurify.readers`) is found by name, and a broken plugin leaves the built-ins working. The plugin is a
real dist-info on sys.path, read by importlib.metadata in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PLUGIN = '''
import numpy as np
from geopurify.encoders.base import Encoder, FeatureMap
from geopurify.io.registry import Reader
from geopurify.io.scene import Scene
from geopurify.teachers.base import Teacher


class ToyEncoder(Encoder):
    name = "toy"

    def __init__(self, dim=4, **kw):
        self.dim = dim

    def encode(self, frame):
        return FeatureMap(dense=np.zeros((2, 2, self.dim), np.float32))


class ToyReader(Reader):
    name = "toy-layout"

    def detect(self, path):
        return (path / "toy.scene").is_file()

    def read(self, path, options):
        return Scene(name="toy", points=np.zeros((3, 3), np.float32), colors=np.zeros((3, 3), np.float32))


class ToyTeacher(Teacher):
    def features(self, scene, grid, lifted=None):
        return np.zeros((grid.num_voxels, 3), np.float32)
'''

CHECK = """
import json, sys
from geopurify.cli import build_parser
from geopurify.encoders.base import ENCODERS
from geopurify.io import read_scene
from geopurify.teachers.base import TEACHERS
enc = ENCODERS.build("toy-enc", dim=3)
layout = build_parser().parse_args(["inspect", sys.argv[1], "--layout", "toy-layout"]).cfg__read__layout
print(json.dumps({"encoders": ENCODERS.names(), "teachers": TEACHERS.names(), "dim": enc.dim,
                  "teacher": type(TEACHERS.get("toy-teacher")()).__name__,
                  "scene": read_scene(sys.argv[1]).name, "layout": layout}))
"""


def test_entry_point_plugins_are_found_and_a_broken_one_is_skipped(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "toyplug.py").write_text(PLUGIN)
    info = site / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[geopurify.encoders]\ntoy-enc = toyplug:ToyEncoder\nbroken = toyplug:NoSuchThing\n\n"
        "[geopurify.teachers]\ntoy-teacher = toyplug:ToyTeacher\n\n"
        "[geopurify.readers]\ntoy-layout = toyplug:ToyReader\n")
    scan = tmp_path / "scan"
    scan.mkdir()
    (scan / "toy.scene").write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)])}
    proc = subprocess.run([sys.executable, "-c", CHECK, str(scan)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "toy-enc" in got["encoders"] and "precomputed" in got["encoders"] and "broken" not in got["encoders"]
    assert got["dim"] == 3
    assert "toy-teacher" in got["teachers"] and "geometric" in got["teachers"] and got["teacher"] == "ToyTeacher"
    assert got["scene"] == "toy" and got["layout"] == "toy-layout"  # detected, and a --layout choice
    assert "could not load encoder plugin 'broken'" in proc.stderr
