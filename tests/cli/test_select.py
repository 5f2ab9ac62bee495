"""`geopurify select` over a dataset root: reads GT histograms and picks one scene per cluster."""

import json

import numpy as np
from plyfile import PlyData, PlyElement

from _fixtures import write_tiny_scannet
from geopurify.cli import main


def _relabel(scene, ids):
    """Give the tiny scene's vertices the NYU40 ids in ``ids`` (cycled over vertices)."""
    p = scene / f"{scene.name}_vh_clean_2.labels.ply"
    v = PlyData.read(str(p))["vertex"].data.copy()
    v["label"] = np.resize(np.array(ids, np.uint16), len(v))
    PlyData([PlyElement.describe(v, "vertex")]).write(str(p))


def test_select_cli_picks_rich_scenes_one_per_cluster(tmp_path):
    root = tmp_path / "dataset"
    # two clusters of class-rich scenes, plus poor scenes that the median filters drop
    kinds = {"a": [1, 2, 3, 4, 5, 6], "b": [1, 2, 7, 8, 9, 10, 11], "poor": [1]}
    plan = ["a", "a", "b", "b", "poor", "poor", "poor"]
    for i, k in enumerate(plan):
        d = write_tiny_scannet(root, name=f"scene{i:04d}_00", frames=1, n_side=12)
        _relabel(d, kinds[k] if i not in (1, 3) else kinds[k][:-1])  # 1 and 3: one class fewer
    assert main(["-q", "select", str(root), "--n", "2", "--out", str(tmp_path / "sel")]) == 0
    chosen = (tmp_path / "sel" / "selection.txt").read_text().split()
    assert sorted(chosen) == ["scene0000_00", "scene0002_00"]  # the richer scene of each cluster
    scores = json.loads((tmp_path / "sel" / "scores.json").read_text())
    assert scores["n"] == 2 and len(scores["table"]) == len(plan)
