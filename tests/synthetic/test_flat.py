"""The multi-room flat (a scaling fixture): rooms side by side, frames moved with their room."""

from __future__ import annotations

import dataclasses

import numpy as np

from geopurify.io import read_scene
from geopurify.synthetic import SyntheticConfig
from geopurify.synthetic.flat import make_flat


def test_flat_rooms_do_not_overlap_and_frames_follow_them(tmp_path):
    cfg = dataclasses.replace(SyntheticConfig(), target_points=4000, n_frames=3)
    one = read_scene(make_flat(tmp_path, "one_00", rooms=1, config=cfg))
    flat = read_scene(make_flat(tmp_path, "flat_00", rooms=3, config=cfg))
    assert len(flat.frames) == 9
    assert flat.num_points > 2.5 * one.num_points
    # room 0 is the single room, unmoved; the other rooms lie beyond it along x
    np.testing.assert_allclose(flat.points[: one.num_points] - flat.points[0] + one.points[0], one.points, atol=1e-5)
    assert flat.points[one.num_points :, 0].min() > one.points[:, 0].max()
    # every camera sits inside the x-range of the points it belongs to
    xs = [f.camera_to_world[0, 3] for f in flat.frames]
    assert max(xs) > one.points[:, 0].max()
    assert flat.labels is not None and len(flat.labels) == flat.num_points
