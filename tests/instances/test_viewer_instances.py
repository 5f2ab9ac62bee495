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


def test_viewer_instances_legend_has_each_instance_colour(tmp_path):
    """`geopurify view` of an output with instances.json, colour mode 'instances': the legend listed
    '#0 desk (0.85)' ... as plain text, with no colour, so no line could be matched to an object on
    screen (ScanNet scene0011: 130 instances, shown 40 of them with no word of the rest)."""
    import dataclasses

    from geopurify.instances import InstanceSet, instance_colors, instances_from_output
    from geopurify.viz.viewer import MODE_INSTANCES, serve

    out, _ = segment_output(tmp_path)
    found = instances_from_output(out)
    many = InstanceSet(found.names, [dataclasses.replace(found.instances[0], id=k) for k in range(45)],
                       found.num_points, found.stats)
    for insts in (found, many):
        v = serve(out, port=0, block=False, instances=insts)
        try:
            html = v.legend_html(MODE_INSTANCES)
            cols = instance_colors(np.array([i.id for i in insts.instances]))
            shown = insts.instances[:40]
            for inst, (r, g, b) in zip(shown, cols):
                row = html.split(f"#{inst.id} ")[0].rsplit("<div", 1)[1]  # this instance's line, before its name
                assert f"rgb({r},{g},{b})" in row, (inst.id, row)
            if len(insts) > 40:
                assert f"and {len(insts) - 40} more" in html
        finally:
            v.stop()
