"""What a Python caller (a notebook, not the CLI) passes: values of the wrong type, a string where a list
is documented, repeated calls in one process. Each mistake is one of geopurify's own errors."""

from __future__ import annotations

import numpy as np
import pytest

from geopurify.errors import ConfigError


@pytest.mark.parametrize("make", [
    lambda: __import__("geopurify.config", fromlist=["x"]).SegmentConfig(purify=False, voxel_size="0.02"),
    lambda: __import__("geopurify.config", fromlist=["x"]).SegmentConfig(student=3),
    lambda: __import__("geopurify.distill.config", fromlist=["x"]).TrainConfig(steps=None),
    lambda: __import__("geopurify.distill.config", fromlist=["x"]).TrainConfig(lr="1e-3"),
    lambda: __import__("geopurify.segment.config", fromlist=["x"]).QueryConfig(threshold="0.3"),
    lambda: __import__("geopurify.segment.config", fromlist=["x"]).QueryConfig(top="500"),
    lambda: __import__("geopurify.viz.config", fromlist=["x"]).ViewConfig(port="80a"),
    lambda: __import__("geopurify.viz.config", fromlist=["x"]).RenderConfig(label_set=None),
    lambda: __import__("geopurify.eval.config", fromlist=["x"]).SelectConfig(gamma="2"),
    lambda: __import__("geopurify.synthetic.config", fromlist=["x"]).SynthConfig(n="2"),
    lambda: __import__("geopurify.io", fromlist=["x"]).ReadOptions(frame_skip=[1]),
    lambda: __import__("geopurify.instances.config", fromlist=["x"]).InstanceConfig(stuff=None),
    lambda: __import__("geopurify.config", fromlist=["x"]).LiftOptions(classes=[1]),
])
def test_a_value_of_the_wrong_type_is_a_config_error(make):
    with pytest.raises(ConfigError, match="expected|must be"):
        make()


def test_numpy_scalars_and_paths_are_accepted():
    from pathlib import Path

    from geopurify.config import SegmentConfig
    from geopurify.instances.config import InstanceConfig

    cfg = SegmentConfig(student=Path("student"), voxel_size=np.float32(0.05), pool={"k": np.int64(8)})
    assert cfg.pool.k == 8
    assert InstanceConfig(min_points=np.int64(50), stuff=("wall",)).min_points == 50


def test_a_config_of_the_wrong_kind_is_a_config_error(tmp_path):
    from geopurify import api

    with pytest.raises(ConfigError, match="expected EvalConfig .*got dict"):
        api.evaluate(tmp_path / "out", tmp_path / "gt", {"protocol": "paper"})
    with pytest.raises(ConfigError, match="expected QueryConfig .*got RenderConfig"):
        api.query(tmp_path, ["sofa"], __import__("geopurify.viz.config", fromlist=["x"]).RenderConfig())
    with pytest.raises(ConfigError, match="expected a SegmentConfig .*got NoneType"):
        api.segment(tmp_path / "scene", tmp_path / "out", None)
    with pytest.raises(ConfigError, match="expected a SegmentConfig .*got dict"):
        api.segment_many([str(tmp_path / "scene")], tmp_path / "out", {"purify": False})
    with pytest.raises(ConfigError, match="expected TrainRunConfig .*got dict"):
        api.train([str(tmp_path / "scene")], tmp_path / "student", {"teacher": "geometric"})


def test_a_string_where_a_list_is_documented_is_refused(tmp_path):
    from geopurify import api

    with pytest.raises(ConfigError, match=r"phrases must be a list of strings, got the string 'sofa'; pass \['sofa'\]"):
        api.query(tmp_path, "sofa")
    with pytest.raises(ConfigError, match="no phrases"):
        api.query(tmp_path, [])
    with pytest.raises(ConfigError, match=r"phrases must be strings, got 3 \(int\)"):
        api.query(tmp_path, [3])
    scene = tmp_path / "scene0000_00"
    with pytest.raises(ConfigError, match="got the single path .*scene0000_00'; pass"):
        api.train(str(scene), tmp_path / "student")
    with pytest.raises(ConfigError, match="got the single path .*scene0000_00'; pass"):
        api.segment_many(scene, tmp_path / "out", __import__("geopurify.config", fromlist=["x"]).SegmentConfig(
            purify=False))


def test_segment_leaves_the_callers_torch_threads_as_they_were(tmp_path, monkeypatch):
    import os

    torch = pytest.importorskip("torch")
    from _fixtures import write_tiny_scannet
    from geopurify import api
    from geopurify.config import SegmentConfig

    monkeypatch.delenv("GEOPURIFY_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))  # the policy would pick 1 thread
    seen = []
    import geopurify.lifting as lifting

    real_lift = lifting.lift_scene
    monkeypatch.setattr(lifting, "lift_scene", lambda *a, **k: (seen.append(torch.get_num_threads()),
                                                                 real_lift(*a, **k))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        scene = write_tiny_scannet(tmp_path, n_side=10)
        for i in range(2):  # twice in one process
            api.segment(scene, tmp_path / f"out{i}", SegmentConfig(purify=False))
            assert torch.get_num_threads() == 3
        assert seen == [1, 1]  # the command itself ran under the policy
    finally:
        torch.set_num_threads(before)
