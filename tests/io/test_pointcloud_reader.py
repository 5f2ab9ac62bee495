"""Point-cloud files (PCD ascii/binary, LAS/LAZ, NPY, NPZ, PLY) and Pointcept folders."""

from __future__ import annotations

import numpy as np
import pytest

from geopurify.errors import ConfigError, InputError
from geopurify.io import ReadOptions, read_scene
from geopurify.io.pointcloud import read_pcd

RNG = np.random.default_rng(0)
PTS = RNG.uniform(-1, 1, (50, 3)).astype(np.float32)
PTS[:, 2] *= 0.01  # a near-flat patch: estimated normals are +-z
RGB = RNG.integers(0, 256, (50, 3)).astype(np.uint8)


def packed_rgb(rgb):
    return (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]


def pcd_header(n, data):
    return (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
            f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n")


def test_pcd_ascii_and_binary(tmp_path):
    rgbf = packed_rgb(RGB).view(np.float32)
    rows = "\n".join(f"{x!r} {y!r} {z!r} {c!r}" for (x, y, z), c in zip(PTS.tolist(), rgbf.tolist()))
    (tmp_path / "a.pcd").write_text(pcd_header(50, "ascii") + rows + "\n")
    rec = np.zeros(50, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
    rec["x"], rec["y"], rec["z"], rec["rgb"] = PTS[:, 0], PTS[:, 1], PTS[:, 2], rgbf
    (tmp_path / "b.pcd").write_bytes(pcd_header(50, "binary").encode() + rec.tobytes())
    for name in ("a.pcd", "b.pcd"):
        scene = read_scene(tmp_path / name)
        np.testing.assert_array_equal(scene.points, PTS)
        np.testing.assert_allclose(scene.colors, RGB / 255.0, atol=1e-6)
        assert scene.normals is None  # none in the file: estimated only when needed
        assert np.abs(scene.ensure_normals().normals[:, 2]).min() > 0.9
        assert scene.meta["format"] == "pcd"
    (tmp_path / "c.pcd").write_bytes(pcd_header(50, "binary").encode() + rec.tobytes()[:-8])
    with pytest.raises(InputError, match=r"c\.pcd: binary PCD is truncated"):
        read_scene(tmp_path / "c.pcd")
    (tmp_path / "d.pcd").write_bytes(pcd_header(50, "binary_compressed").encode() + b"\0" * 16)
    with pytest.raises(InputError, match="binary_compressed"):
        read_pcd(tmp_path / "d.pcd")


def test_pcd_without_colour_is_rejected(tmp_path):
    text = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA ascii\n"
    (tmp_path / "nocol.pcd").write_text(text + "0 0 0\n1 1 1\n")
    with pytest.raises(InputError, match=r"nocol\.pcd: point cloud has no colour"):
        read_scene(tmp_path / "nocol.pcd")


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_laz(tmp_path, suffix):
    laspy = pytest.importorskip("laspy")
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([500000.0, 4000000.0, 0.0])  # UTM-like: the reader recentres
    las = laspy.LasData(header)
    xyz = PTS.astype(np.float64) + [500100.0, 4000200.0, 10.0]
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.red, las.green, las.blue = (RGB.astype(np.uint16) * 257).T  # 16-bit colour
    try:
        las.write(str(tmp_path / f"c{suffix}"))
    except Exception as exc:  # no LAZ backend installed
        pytest.skip(f"cannot write {suffix}: {exc}")
    scene = read_scene(tmp_path / f"c{suffix}")
    offset = np.array(scene.meta["coordinate_offset"])
    np.testing.assert_allclose(scene.points + offset, xyz, atol=2e-3)
    np.testing.assert_allclose(scene.colors, RGB / 255.0, atol=1e-6)


def test_npy_and_npz_with_features(tmp_path):
    np.save(tmp_path / "six.npy", np.concatenate([PTS, RGB.astype(np.float32)], axis=1))
    scene = read_scene(tmp_path / "six.npy")
    np.testing.assert_allclose(scene.colors, RGB / 255.0, atol=1e-6)
    np.save(tmp_path / "three.npy", PTS)
    with pytest.raises(InputError, match=r"three\.npy: point cloud has no colour"):
        read_scene(tmp_path / "three.npy")
    feats = RNG.normal(size=(50, 8)).astype(np.float32)
    teacher = RNG.normal(size=(50, 4)).astype(np.float32)
    normals = np.tile([0, 0, 1.0], (50, 1))
    np.savez(tmp_path / "s.npz", coord=PTS, color=RGB / 255.0, normal=normals, features_2d=feats, teacher=teacher)
    scene = read_scene(tmp_path / "s.npz")
    np.testing.assert_array_equal(scene.point_features, feats)
    np.testing.assert_array_equal(scene.teacher_features, teacher)
    np.testing.assert_allclose(scene.normals, normals)
    assert scene.frames == []
    # sibling arrays for a cloud given without them
    np.savez(tmp_path / "t.npz", points=PTS, colors=RGB)
    np.save(tmp_path / "t.teacher.npy", teacher)
    np.save(tmp_path / "features_2d.npy", feats)
    scene = read_scene(tmp_path / "t.npz")
    np.testing.assert_array_equal(scene.teacher_features, teacher)
    np.testing.assert_array_equal(scene.point_features, feats)
    np.save(tmp_path / "t.teacher.npy", teacher[:10])
    with pytest.raises(InputError, match=r"t\.npz: teacher has shape \(10, 4\), expected \(50, D\)"):
        read_scene(tmp_path / "t.npz")


@pytest.mark.parametrize(
    "coord, match",
    [(np.zeros((0, 3), np.float32), "is empty"), (np.array([[0, 0, np.nan], [1, 1, 1]], np.float32), "NaN")],
)
def test_bad_coordinates(tmp_path, coord, match):
    np.savez(tmp_path / "bad.npz", coord=coord, color=np.zeros((len(coord), 3)))
    with pytest.raises(InputError, match=match) as info:
        read_scene(tmp_path / "bad.npz")
    assert "bad.npz" in str(info.value)


def test_ply_cloud(tmp_path):
    lines = ["ply", "format ascii 1.0", "element vertex 50", "property float x", "property float y",
             "property float z", "property uchar red", "property uchar green", "property uchar blue", "end_header"]
    lines += [f"{x} {y} {z} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(PTS.tolist(), RGB.tolist())]
    # a file name the scannet reader would not take (it wants a folder)
    (tmp_path / "cloud.ply").write_text("\n".join(lines) + "\n")
    scene = read_scene(tmp_path / "cloud.ply")
    assert scene.meta["layout"] == "pointcloud"
    np.testing.assert_allclose(scene.points, PTS, atol=1e-6)


def write_pointcept(folder, with200=True):
    folder.mkdir(parents=True)
    np.save(folder / "coord.npy", PTS)
    np.save(folder / "color.npy", RGB.astype(np.float32))
    np.save(folder / "normal.npy", np.tile([0, 0, 1.0], (50, 1)).astype(np.float32))
    seg20 = np.arange(50) % 20 - 1  # -1 ignore included
    np.save(folder / "segment20.npy", seg20)
    if with200:
        np.save(folder / "segment200.npy", (np.arange(50) * 3) % 200)
    return seg20


def test_pointcept_folder(tmp_path):
    seg20 = write_pointcept(tmp_path / "scene0000_00")
    scene = read_scene(tmp_path / "scene0000_00")
    assert scene.meta["layout"] == "pointcept" and scene.label_set == "scannet20"
    np.testing.assert_array_equal(scene.labels, seg20)
    np.testing.assert_array_equal(scene.meta["labels_scannet200"], (np.arange(50) * 3) % 200)
    np.testing.assert_allclose(scene.colors, RGB / 255.0, atol=1e-6)
    from geopurify.io.pointcept import PointceptReader

    s200 = PointceptReader(label_set="scannet200").read(tmp_path / "scene0000_00", ReadOptions())
    assert s200.label_set == "scannet200" and s200.labels[5] == 15
    with pytest.raises(ConfigError):
        PointceptReader(label_set="nyu40")
    np.save(tmp_path / "scene0000_00" / "color.npy", RGB[:10])
    with pytest.raises(InputError, match=r"color\.npy: 10 rows of colours, expected 50"):
        read_scene(tmp_path / "scene0000_00")


def test_pcl_ascii_pcd_rgb_written_as_integers(tmp_path):
    """PCL's ASCII writer stores a TYPE F ``rgb`` field as the packed uint32 (opaque colours are NaN as
    floats); Open3D prints the float whose bits are the colour. Both read as the same colours."""
    packed = packed_rgb(RGB) | np.uint32(255 << 24)  # PCL's default alpha
    rows = "\n".join(f"{x!r} {y!r} {z!r} {c}" for (x, y, z), c in zip(PTS.tolist(), packed.tolist()))
    (tmp_path / "pcl.pcd").write_text(pcd_header(50, "ascii") + rows + "\n")
    np.testing.assert_allclose(read_scene(tmp_path / "pcl.pcd").colors, RGB / 255.0, atol=1e-6)
    bits = packed_rgb(RGB).view(np.float32)  # alpha 0: tiny (denormal) floats, printed with 10 digits
    rows = "\n".join(f"{x!r} {y!r} {z!r} {c:.10g}" for (x, y, z), c in zip(PTS.tolist(), bits.tolist()))
    (tmp_path / "o3d.pcd").write_text(pcd_header(50, "ascii") + rows + "\n")
    np.testing.assert_allclose(read_scene(tmp_path / "o3d.pcd").colors, RGB / 255.0, atol=1e-6)


def test_pcd_of_double_utm_coordinates_is_recentred_before_float32(tmp_path):
    xyz = PTS.astype(np.float64) + [500100.0, 4000200.0, 10.0]
    rec = np.zeros(50, dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("rgb", "<f4")])
    rec["x"], rec["y"], rec["z"], rec["rgb"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], packed_rgb(RGB).view(np.float32)
    header = pcd_header(50, "binary").replace("SIZE 4 4 4 4", "SIZE 8 8 8 4")
    (tmp_path / "utm.pcd").write_bytes(header.encode() + rec.tobytes())
    scene = read_scene(tmp_path / "utm.pcd")
    offset = np.array(scene.meta["coordinate_offset"])
    np.testing.assert_allclose(scene.points + offset, xyz, rtol=0, atol=1e-4)


@pytest.mark.parametrize("data", ["ascii", "binary"])
def test_empty_pcd_refused_as_empty(tmp_path, data, recwarn):
    (tmp_path / "e.pcd").write_text(pcd_header(0, data))
    with pytest.raises(InputError, match=r"e\.pcd: point cloud is empty"):
        read_scene(tmp_path / "e.pcd")
    assert not [w for w in recwarn if "loadtxt" in str(w.message)]  # no numpy warning beside the one line


@pytest.mark.parametrize("name", ["cloud.xyz", "cloud.txt", "cloud.pts"])
def test_unclaimed_cloud_formats_refused_naming_the_formats_read(tmp_path, name, capsys):
    from geopurify.cli import main

    np.savetxt(tmp_path / name, np.concatenate([PTS, RGB], axis=1))
    with pytest.raises(InputError, match=rf"{name}: geopurify does not read \.{name[-3:]} files; files read: "
                                         r"\.sens, \.yaml, \.yml, \.ply, \.pcd, \.las, \.laz, \.npy, \.npz"):
        read_scene(tmp_path / name)
    assert main(["inspect", str(tmp_path / name)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
