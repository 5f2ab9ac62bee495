"""PLY writer round trip (through plyfile), palette and heat-map colours."""

from __future__ import annotations

import numpy as np
import pytest
from plyfile import PlyData

from geopurify.errors import InputError
from geopurify.viz.ply import heatmap_colors, label_colors, luminance, palette, write_ply


def test_round_trip_points_colors_extra_and_faces(tmp_path):
    rng = np.random.default_rng(1)
    n = 500
    pts = rng.normal(size=(n, 3)).astype(np.float32)
    cols = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    lab = rng.integers(-1, 20, n)  # int64 in, stored as int32
    score = rng.random(n).astype(np.float16)
    seen = rng.random(n) > 0.5
    faces = rng.integers(0, n, (40, 3))
    path = tmp_path / "cloud.ply"
    write_ply(path, pts, cols, {"label": lab, "score": score, "seen": seen}, faces=faces)

    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    ply = PlyData.read(str(path))
    v = ply["vertex"]
    np.testing.assert_array_equal(np.c_[v["x"], v["y"], v["z"]], pts)
    np.testing.assert_array_equal(np.c_[v["red"], v["green"], v["blue"]], cols)
    np.testing.assert_array_equal(v["label"], lab)
    assert v["label"].dtype == np.int32 and v["red"].dtype == np.uint8
    np.testing.assert_array_equal(v["score"], score.astype(np.float32))
    np.testing.assert_array_equal(v["seen"].astype(bool), seen)
    np.testing.assert_array_equal(np.stack(ply["face"]["vertex_indices"]), faces)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic temp file is gone


def test_points_only(tmp_path):
    pts = np.array([[0, 0, 0], [1, 2, 3]], dtype=np.float64)
    write_ply(tmp_path / "a.ply", pts, np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8))
    ply = PlyData.read(str(tmp_path / "a.ply"))
    assert [e.name for e in ply.elements] == ["vertex"]
    np.testing.assert_array_equal(ply["vertex"]["z"], [0, 3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(colors=np.zeros((3, 3), np.float32)), "uint8"),
        (dict(colors=np.zeros((2, 3), np.uint8)), r"\(3, 3\)"),
        (dict(extra={"red": np.zeros(3)}), "reserved"),
        (dict(extra={"label": np.zeros(4)}), "label"),
        (dict(extra={"big": np.array([0, 0, 2**40])}), "32 bits"),
        (dict(faces=np.array([[0, 1, 3]])), "out of range"),
    ],
)
def test_bad_input_names_the_file(tmp_path, kwargs, match):
    args = dict(points=np.zeros((3, 3)), colors=np.zeros((3, 3), np.uint8)) | kwargs
    with pytest.raises(InputError, match=match) as info:
        write_ply(tmp_path / "bad.ply", **args)
    assert "bad.ply" in str(info.value)
    assert not (tmp_path / "bad.ply").exists()


def test_palette_distinct_and_prefix_stable():
    big = palette(60)
    assert big.shape == (60, 3) and big.dtype == np.uint8
    assert len({tuple(c) for c in big}) == 60
    np.testing.assert_array_equal(palette(7), big[:7])
    # the first 20 are far apart: minimum pairwise RGB distance
    d = np.linalg.norm(big[:20, None].astype(float) - big[None, :20].astype(float), axis=-1)
    assert d[~np.eye(20, dtype=bool)].min() > 30


def test_heatmap_monotonic_in_score():
    scores = np.random.default_rng(0).normal(size=1000)
    cols = heatmap_colors(scores)
    order = np.argsort(scores)
    lum = luminance(cols[order])
    # higher score never darker (0.05 L* slack: viridis rounded to 8 bits has two 0.03 L* dips)
    assert np.all(np.diff(lum) >= -0.05)
    assert lum[-1] - lum[0] > 70  # and the lightness range is used (L* 15 -> 91)
    # ends are viridis: dark purple and yellow
    np.testing.assert_allclose(cols[order[0]], [68, 1, 84], atol=2)
    np.testing.assert_allclose(cols[order[-1]], [253, 231, 37], atol=2)


def test_heatmap_explicit_range_and_nonfinite():
    cols = heatmap_colors(np.array([-5.0, 0.0, 0.5, 1.0, 9.0, np.nan]), vmin=0.0, vmax=1.0)
    np.testing.assert_array_equal(cols[0], cols[1])  # clipped below
    np.testing.assert_array_equal(cols[3], cols[4])  # clipped above
    np.testing.assert_array_equal(cols[5], cols[1])  # nan -> lowest colour
    assert luminance(cols[1:2]) < luminance(cols[2:3]) < luminance(cols[3:4])


def test_label_colors_maps_ids_and_unlabelled():
    table = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    out = label_colors(np.array([1, 0, -1, 7]), table, unlabelled=(1, 2, 3))
    np.testing.assert_array_equal(out, [[40, 50, 60], [10, 20, 30], [1, 2, 3], [1, 2, 3]])
