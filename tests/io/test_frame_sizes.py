"""The image sizes of a scene are those of most of its frames: one odd frame is skipped, not every other."""

from __future__ import annotations

import numpy as np
from PIL import Image

from _fixtures import write_tiny_scannet
from geopurify.io import read_scene


def test_an_odd_first_frame_is_skipped_and_the_others_kept(tmp_path):
    d = write_tiny_scannet(tmp_path, frames=3)
    # frame 0's depth saved at the colour resolution (and 8-bit): the sizes used to be taken from it
    Image.fromarray(np.full((120, 160), 20, np.uint8)).save(d / "depth" / "0.png")
    Image.fromarray(np.full((30, 40, 3), 9, np.uint8)).save(d / "color" / "2.jpg")  # a thumbnail
    scene = read_scene(d)
    assert [f.frame_id for f in scene.frames] == ["1"]
    assert scene.skipped_frames == {"bad_depth": 1, "bad_color": 1}
    f = scene.frames[0]
    assert f.depth_size == (60, 80) and f.color_size == (120, 160)
    assert f.depth().shape == (60, 80)  # it loads: checked against the common size, not frame 0's
