import numpy as np
import pytest

from _fixtures import write_tiny_scannet
from geopurify.errors import FrameError, InputError
from geopurify.io import ReadOptions, read_scene


def test_reads_export_layout(tmp_path):
    d = write_tiny_scannet(tmp_path, color_hw=(120, 160), depth_hw=(60, 80))
    s = read_scene(d)
    assert s.name == "scene0000_00" and s.num_points == 1600
    assert s.points.dtype == np.float32 and s.colors.max() <= 1.0
    assert s.faces.shape[1] == 3
    # plane at constant z: mesh normals are +-z
    assert np.abs(np.abs(s.normals[:, 2]) - 1).max() < 1e-5
    assert s.label_set == "nyu40" and set(np.unique(s.labels)) == {1, 2}
    assert len(s.frames) == 2
    f = s.frames[1]
    assert f.color_size == (120, 160) and f.depth_size == (60, 80)
    assert f.K_color.shape == (3, 3) and f.K_depth[0, 0] == pytest.approx(80.0)
    np.testing.assert_allclose(f.camera_to_world[0, 3], 0.02)
    assert f.color().shape == (120, 160, 3)
    assert f.depth().dtype == np.float32 and f.depth()[0, 0] == pytest.approx(2.0)


def test_frame_skip_and_max_frames(tmp_path):
    d = write_tiny_scannet(tmp_path, frames=6)
    assert [f.frame_id for f in read_scene(d, ReadOptions(frame_skip=2)).frames] == ["0", "2", "4"]
    assert len(read_scene(d, ReadOptions(max_frames=2)).frames) == 2


def test_bad_poses_and_missing_images_are_skipped_and_counted(tmp_path):
    d = write_tiny_scannet(tmp_path, frames=5)
    np.savetxt(d / "pose" / "0.txt", np.full((4, 4), -np.inf))  # ScanNet's lost tracking
    bad = np.eye(4)
    bad[:3, :3] *= 2.0  # scaled, not rigid
    np.savetxt(d / "pose" / "1.txt", bad)
    (d / "depth" / "2.png").unlink()
    s = read_scene(d)
    assert [f.frame_id for f in s.frames] == ["3", "4"]
    assert s.skipped_frames == {"bad_pose": 2, "missing_depth": 1}


def test_truncated_jpeg_and_wrong_depth_size_raise_frame_error(tmp_path):
    from PIL import Image

    from geopurify.io.images import load_color, load_depth

    d = write_tiny_scannet(tmp_path, frames=3)
    data = (d / "color" / "1.jpg").read_bytes()
    (d / "color" / "1.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(np.zeros((10, 10), np.uint16)).save(d / "depth" / "2.png")
    s = read_scene(d)
    s.frames[0].color()
    # an unreadable header and a depth image of another size than most frames' are skipped at reading
    assert [f.frame_id for f in s.frames] == ["0"] and s.skipped_frames == {"bad_color": 1, "bad_depth": 1}
    with pytest.raises(FrameError) as e1:  # and refused on loading too, had they slipped past the headers
        load_color(d / "color" / "1.jpg")
    assert e1.value.reason == "bad_color" and "1.jpg" in str(e1.value)
    with pytest.raises(FrameError) as e2:
        load_depth(d / "depth" / "2.png", 1000.0, s.frames[0].depth_size)
    assert e2.value.reason == "bad_depth" and "10x10" in str(e2.value)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n"),
         "cannot parse PLY"),
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "cannot parse PLY"),
        (lambda p: p.write_bytes(b"\x00garbage" * 10), "cannot parse PLY"),
    ],
)
def test_broken_mesh_is_one_line_input_error(tmp_path, damage, message):
    d = write_tiny_scannet(tmp_path)
    mesh = d / "scene0000_00_vh_clean_2.ply"
    damage(mesh)
    with pytest.raises(InputError) as e:
        read_scene(d)
    assert message in str(e.value) and str(mesh) in str(e.value) and "\n" not in str(e.value)


def test_nan_coordinates_and_empty_and_colourless(tmp_path):
    from plyfile import PlyData, PlyElement

    d = write_tiny_scannet(tmp_path)
    mesh = d / "scene0000_00_vh_clean_2.ply"
    ply = PlyData.read(str(mesh))
    v = ply["vertex"].data.copy()
    v["x"][5] = np.nan
    PlyData([PlyElement.describe(v, "vertex")]).write(str(mesh))
    with pytest.raises(InputError, match="NaN or infinite"):
        read_scene(d)
    PlyData([PlyElement.describe(v[:0], "vertex")]).write(str(mesh))
    with pytest.raises(InputError, match="empty"):
        read_scene(d)
    nocol = np.zeros(4, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(nocol, "vertex")]).write(str(mesh))
    with pytest.raises(InputError, match="no colour"):
        read_scene(d)


def test_missing_path_and_unknown_layout(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_scene(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no reader recognises"):
        read_scene(tmp_path / "empty")


def test_export_layout_without_mesh_fuses_a_cloud(tmp_path):
    """color/, depth/, pose/, intrinsic/ and no mesh: recognised, the cloud fused from depth."""
    d = write_tiny_scannet(tmp_path, frames=3, labels=False)
    (d / f"{d.name}_vh_clean_2.ply").unlink()
    scene = read_scene(d, ReadOptions(fuse_voxel_size=0.02))
    assert scene.meta["layout"] == "scannet" and scene.meta["fused_from_depth"]["frames"] == 3
    assert scene.num_points > 500 and scene.labels is None
    np.testing.assert_allclose(scene.points[:, 2], 2.0, atol=0.011)  # the plane the depth (2 m) sees
    assert [f.frame_id for f in scene.frames] == ["0", "1", "2"]
