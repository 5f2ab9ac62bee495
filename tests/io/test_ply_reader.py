"""PLY files as users bring them: other colour types, normals, coordinates, through read_ply and read_scene."""

from __future__ import annotations

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from geopurify.errors import InputError
from geopurify.io import read_scene
from geopurify.io.ply import read_ply

RNG = np.random.default_rng(0)
N = 200
PTS = RNG.uniform(0, 2, (N, 3))
RGB = RNG.integers(0, 256, (N, 3))


def write_cloud(path, coord="f4", color="u1", colors=RGB, points=PTS, extra=None, text=False):
    """A PLY of the module's points with colour properties of type ``color``; extra: name -> (dtype, (N,))."""
    extra = extra or {}
    fields = [(c, coord) for c in "xyz"] + [(c, color) for c in ("red", "green", "blue")]
    fields += [(k, dt) for k, (dt, _) in extra.items()]
    v = np.empty(len(points), dtype=fields)
    for i, c in enumerate("xyz"):
        v[c] = points[:, i]
    for i, c in enumerate(("red", "green", "blue")):
        v[c] = colors[:, i]
    for k, (_, vals) in extra.items():
        v[k] = vals
    PlyData([PlyElement.describe(v, "vertex")], text=text).write(str(path))
    return path


def test_16bit_colours_are_scaled_not_saturated(tmp_path):
    ply = read_ply(write_cloud(tmp_path / "c16.ply", color="u2", colors=RGB * 257))
    np.testing.assert_allclose(ply.colors, RGB / 255.0, atol=1e-6)
    scene = read_scene(tmp_path / "c16.ply")
    np.testing.assert_allclose(scene.colors, RGB / 255.0, atol=1e-6)


@pytest.mark.parametrize("color", ["f4", "f8"])
def test_float_colours_in_0_1_and_0_255(tmp_path, color):
    np.testing.assert_allclose(read_ply(write_cloud(tmp_path / "a.ply", color=color, colors=RGB / 255.0)).colors,
                               RGB / 255.0, atol=1e-6)
    np.testing.assert_allclose(read_ply(write_cloud(tmp_path / "b.ply", color=color, colors=RGB * 1.0)).colors,
                               RGB / 255.0, atol=1e-6)


def test_nan_colours_refused(tmp_path):
    col = RGB / 255.0
    col[7, 1] = np.nan
    with pytest.raises(InputError, match=r"nan\.ply: 1 points have NaN or infinite colours"):
        read_ply(write_cloud(tmp_path / "nan.ply", color="f4", colors=col))


def test_unnormalised_file_normals_are_made_unit(tmp_path):
    """Some exporters write area-weighted (unnormalised) normals; Scene.normals are unit in every reader.
    Rows shorter than 0.5 (area-weighted normals of a room's cm-sized triangles, in m2) are scaled too: they
    were taken for zero rows ('N of N normals are zero or not finite') and every normal was recomputed."""
    nrm = RNG.normal(size=(N, 3))
    unit = nrm / np.linalg.norm(nrm, axis=1, keepdims=True)
    scaled = unit * RNG.choice([1e-4, 0.01, 0.3, 0.6, 1.5, 3.0], (N, 1))
    extra = {f"n{c}": ("f4", scaled[:, i]) for i, c in enumerate("xyz")}
    write_cloud(tmp_path / "cloud.ply", extra=extra)
    np.testing.assert_allclose(read_ply(tmp_path / "cloud.ply").vertex_normals(), unit, atol=1e-5)
    np.testing.assert_allclose(read_scene(tmp_path / "cloud.ply").normals, unit, atol=1e-5)
    np.savez(tmp_path / "cloud.npz", coord=PTS, color=RGB, normal=scaled)
    np.testing.assert_allclose(read_scene(tmp_path / "cloud.npz").normals, unit, atol=1e-5)
    (tmp_path / "pc").mkdir()
    np.save(tmp_path / "pc" / "coord.npy", PTS.astype(np.float32))
    np.save(tmp_path / "pc" / "color.npy", RGB.astype(np.uint8))
    np.save(tmp_path / "pc" / "normal.npy", scaled.astype(np.float32))
    np.testing.assert_allclose(read_scene(tmp_path / "pc").normals, unit, atol=1e-5)
    # unit normals (within float32 rounding) are passed through bit for bit
    exact = unit.astype(np.float32)
    extra = {f"n{c}": ("f4", exact[:, i]) for i, c in enumerate("xyz")}
    write_cloud(tmp_path / "unit.ply", extra=extra)
    np.testing.assert_array_equal(read_scene(tmp_path / "unit.ply").normals, exact)


def test_georeferenced_double_coordinates_keep_their_precision(tmp_path):
    """A PLY of float64 UTM coordinates is recentred before float32, as LAS/NPZ clouds are (float32 at
    4e6 m has a 0.25 m spacing: the cloud collapsed onto a coarse grid)."""
    utm = PTS + [500100.0, 4000200.0, 10.0]
    scene = read_scene(write_cloud(tmp_path / "utm.ply", coord="f8", points=utm))
    offset = np.array(scene.meta["coordinate_offset"])
    np.testing.assert_allclose(scene.points + offset, utm, rtol=0, atol=1e-4)
    assert scene.points.dtype == np.float32
    # float32 and small float64 coordinates read as before
    np.testing.assert_array_equal(read_scene(write_cloud(tmp_path / "f8.ply", coord="f8")).points,
                                  PTS.astype(np.float32))
    assert read_ply(tmp_path / "f8.ply").points.dtype == np.float32


@pytest.mark.parametrize("text", [True, False])
def test_quad_and_mixed_polygon_meshes_are_triangulated(tmp_path, text):
    """Blender/MeshLab meshes of quads (or mixed polygons) were refused ('faces are not triangles'); they are
    fanned into triangles, per-face properties following their triangles."""
    v = np.empty(5, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v["x"], v["y"], v["z"] = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], float).T
    v["red"] = v["green"] = v["blue"] = 100
    f = np.empty(2, dtype=[("vertex_indices", object), ("category_id", "i4")])
    f["vertex_indices"] = [np.array([0, 1, 2, 3], np.int32), np.array([1, 4, 2], np.int32)]
    f["category_id"] = [7, 9]
    PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")], text=text).write(
        str(tmp_path / "quad.ply"))
    ply = read_ply(tmp_path / "quad.ply")
    assert ply.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    assert ply.face_properties["category_id"].tolist() == [7, 7, 9]
    scene = read_scene(tmp_path / "quad.ply")
    np.testing.assert_allclose(np.abs(scene.normals[:, 2]), 1.0, atol=1e-6)  # from the faces: the z = 0 plane


def test_file_normals_with_a_zero_row_are_replaced_and_the_user_is_told(tmp_path, caplog):
    """One zero normal makes the reader compute every normal; that used to happen silently."""
    import logging

    nrm = RNG.normal(size=(N, 3))
    unit = (nrm / np.linalg.norm(nrm, axis=1, keepdims=True)).astype(np.float32)
    unit[5] = 0.0
    (tmp_path / "pc").mkdir()
    np.save(tmp_path / "pc" / "coord.npy", PTS.astype(np.float32))
    np.save(tmp_path / "pc" / "color.npy", RGB.astype(np.uint8))
    np.save(tmp_path / "pc" / "normal.npy", unit)
    extra = {f"n{c}": ("f4", unit[:, i]) for i, c in enumerate("xyz")}
    write_cloud(tmp_path / "cloud.ply", extra=extra)
    np.savez(tmp_path / "cloud.npz", coord=PTS, color=RGB, normal=unit)
    from geopurify.api import load_scene
    from geopurify.io import ReadOptions

    for src in (tmp_path / "pc", tmp_path / "cloud.ply", tmp_path / "cloud.npz"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            scene = read_scene(src)
        msgs = [r.getMessage() for r in caplog.records if "1 of 200 normals are zero or not finite" in r.getMessage()]
        assert len(msgs) == 1, (src, caplog.text)
        # a cloud's normals are left to whoever needs them (eval needs none); segment/train estimate them
        assert scene.normals is None
        normals = load_scene(src, ReadOptions()).normals
        assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-4)  # computed: no zero row left
