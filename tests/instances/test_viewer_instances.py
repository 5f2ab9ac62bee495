"""The viewer shows instances (a colour mode) and their oriented boxes."""

from __future__ import annotations

import numpy as np
import pytest
from instances_fixtures import segment_output

pytest.importorskip("viser")


def test_viewer_instances_mode_and_boxes(tmp_path):
    from geopurify.instances import instance_colors, instances_from_output
    from geopurify.viz.viewer import MODE_INSTANCES, box_segments, serve

    out, _ = segment_output(tmp_path)
    found = instances_from_output(out)
    segs, cols = box_segments(found)
    assert segs.shape == (12 * len(found), 2, 3) and cols.shape == segs.shape
    # every box corner is a corner of its instance's oriented box
    np.testing.assert_allclose(segs[0, 0], found.instances[0].obb.corners()[0], atol=1e-5)
    v = serve(out, port=0, block=False, instances=found)
    try:
        assert MODE_INSTANCES in v.modes()
        v.set_mode(MODE_INSTANCES)
        np.testing.assert_array_equal(v.cloud.colors, instance_colors(found.point_instance()))
        assert "#0" in v.legend.content
        assert v.boxes is not None and v.boxes.visible
        v.show_boxes.value = False
        v.boxes.visible = bool(v.show_boxes.value)  # the GUI callback's effect (no browser here)
        assert not v.boxes.visible
    finally:
        v.stop()
