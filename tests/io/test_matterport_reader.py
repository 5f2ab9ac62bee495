"""Matterport3D region reader: face-vote labels, category mapping, camera selection, OpenGL poses."""

from __future__ import annotations

import numpy as np
from io_synth import HW, K_SYN, look_at, render_box, write_png16, write_rgb

from geopurify.io import ReadOptions, read_scene
from geopurify.io.matterport import select_cameras, vote_vertex_labels
from geopurify.io.rgbd import OPENGL_TO_OPENCV


def test_vote_hand_case():
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [3, 4, 5]])
    labels = np.array([5, 7, 7, 0])  # the last face is unlabelled and must not vote
    # v0: 5,7,7 -> 7; v1: 5,7 tie -> smaller (5); v2: 5,7 -> 5; v3: 7,7 (+unlabelled) -> 7; v4, v5: none
    assert vote_vertex_labels(faces, labels, 7).tolist() == [7, 5, 5, 7, 0, 0, 0]


def test_select_cameras_inside_else_nearest():
    centres = np.array([[0.5, 0.5, 0.5], [5, 5, 5], [1.5, 0.5, 0.5], [-0.1, 0.5, 0.5]])
    assert select_cameras(centres, np.zeros(3), np.ones(3)).tolist() == [0]
    lo, hi = np.array([10.0, 0, 0]), np.array([11.0, 1, 1])
    assert select_cameras(centres, lo, hi, nearest=2).tolist() == [1, 2]  # distances 5.4 and 8.5


def write_house(root, poses_cv):
    house = root / "17DRP5sb8fy"
    for sub in ("region_segmentations", "undistorted_camera_parameters", "undistorted_color_images",
                "undistorted_depth_images"):
        (house / sub).mkdir(parents=True)
    # region mesh: a 2x2 m floor quad (4 faces around a centre vertex) at z = 0
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0], [0, 0, 0]], float)
    faces = [(0, 1, 4, 3), (1, 2, 4, 3), (2, 3, 4, 12), (3, 0, 4, -1)]  # (a, b, c, category_id)
    lines = ["ply", "format ascii 1.0", f"element vertex {len(v)}", "property float x", "property float y",
             "property float z", "property uchar red", "property uchar green", "property uchar blue",
             f"element face {len(faces)}", "property list uchar int vertex_indices", "property int category_id",
             "end_header"]
    lines += [f"{x} {y} {z} 100 110 120" for x, y, z in v]
    lines += [f"3 {a} {b} {c} {cat}" for a, b, c, cat in faces]
    (house / "region_segmentations" / "region3.ply").write_text("\n".join(lines) + "\n")
    (root / "category_mapping.tsv").write_text(
        "index\traw_category\tcategory\tcount\tnyuId\tnyu40id\teigen13id\tnyuClass\tnyu40class\tmpcat40index\n"
        "3\tfloor\tfloor\t9\t2\t2\t2\tfloor\tfloor\t2\n12\trug\trug\t1\t\t40\t\t\t\t40\n"
    )
    conf = ["dataset matterport", "n_images 3", "depth_directory undistorted_depth_images",
            "color_directory undistorted_color_images",
            "intrinsics_matrix " + " ".join(str(x) for x in K_SYN.ravel())]
    for i, pose in enumerate(poses_cv):
        d, c = render_box(pose)
        write_png16(house / "undistorted_depth_images" / f"abc_d0_{i}.png", d, 4000.0)
        write_rgb(house / "undistorted_color_images" / f"abc_i0_{i}.jpg", c)
        gl = pose @ OPENGL_TO_OPENCV  # Matterport stores OpenGL-axis camera-to-world
        conf.append(f"scan abc_d0_{i}.png abc_i0_{i}.jpg " + " ".join(f"{x:.9f}" for x in gl.ravel()))
    (house / "undistorted_camera_parameters" / "17DRP5sb8fy.conf").write_text("\n".join(conf) + "\n")
    return house


def test_matterport_region(tmp_path):
    inside = look_at([0.2, 0.1, 0.0], [1.5, 0.3, 0.5])  # centre inside the region's (flat) bbox
    outside = [look_at([0.2, 0.1, 1.5], [1.5, 0.3, 1.0]), look_at([-0.5, 0.2, 2.0], [1.0, 0.0, 1.0])]
    house = write_house(tmp_path, [outside[0], inside, outside[1]])
    ply = house / "region_segmentations" / "region3.ply"
    scene = read_scene(ply)
    assert scene.meta["layout"] == "matterport" and scene.name == "17DRP5sb8fy_region3"
    # vertex votes (unlabelled -1 does not vote): v2 (3, 12) tie -> 3, v3 (12, -1) -> 12 (rug),
    # v4 (3, 3, 12, -1) -> 3; mapped to NYU40 (floor 2, rug 40); mpcat40 kept in meta
    assert scene.labels.tolist() == [2, 2, 2, 40, 2] and scene.label_set == "nyu40"
    assert scene.meta["mpcat40"].tolist() == [2, 2, 2, 40, 2]
    # only the camera inside the bounding box is kept
    assert [f.frame_id for f in scene.frames] == ["abc_i0_1"]
    f = scene.frames[0]
    np.testing.assert_allclose(f.camera_to_world, inside, atol=1e-6)
    assert f.depth_size == HW
    np.testing.assert_allclose(f.depth(), render_box(inside)[0], atol=1.3e-4)  # 0.25 mm units
    # the folder form reads the same region
    assert read_scene(house / "region_segmentations").num_points == 5


def test_matterport_without_inside_cameras_takes_nearest(tmp_path):
    far = [look_at([0.2 + 0.1 * i, 0.1, 1.5 + i], [1.5, 0.3, 1.0]) for i in range(3)]
    house = write_house(tmp_path, far)
    (tmp_path / "category_mapping.tsv").unlink()
    from geopurify.io.matterport import MatterportReader

    scene = MatterportReader(nearest_cameras=2).read(house / "region_segmentations" / "region3.ply", ReadOptions())
    # box is the floor square at z = 0: cameras are 1.5, 2.5 and 3.5 m above it
    assert [f.frame_id for f in scene.frames] == ["abc_i0_0", "abc_i0_1"]
    assert scene.meta["cameras_in_house"] == 3 and scene.meta["cameras_selected"] == 2
    # no table: raw Matterport category ids (3 = floor)
    assert scene.label_set == "matterport_category" and scene.labels.tolist() == [3, 3, 3, 12, 3]


def test_category_mapping_in_a_metadata_folder(tmp_path):
    """Matterport's repository keeps category_mapping.tsv in metadata/; beside the download's scans/ folder
    (v1/metadata/ next to v1/scans/<house>/<house>/) it is found, so labels are NYU40, not raw ids."""
    scans = tmp_path / "v1" / "scans" / "17DRP5sb8fy"
    scans.mkdir(parents=True)
    house = write_house(scans, [look_at([0.2, 0.1, 0.0], [1.5, 0.3, 0.5])])  # <house>/<house>/ as unzipped
    (tmp_path / "v1" / "metadata").mkdir()
    (scans / "category_mapping.tsv").rename(tmp_path / "v1" / "metadata" / "category_mapping.tsv")
    scene = read_scene(house / "region_segmentations" / "region3.ply")
    assert scene.label_set == "nyu40" and scene.labels.tolist() == [2, 2, 2, 40, 2]
    assert scene.meta["category_mapping"] == str(tmp_path / "v1" / "metadata" / "category_mapping.tsv")
    assert len(scene.frames) == 1


def test_region_of_a_house_without_cameras_never_takes_another_houses(tmp_path, caplog):
    """scans/AAAA/region_segmentations/ beside scans/17DRP5sb8fy/ (with cameras): AAAA's region has no
    frames (warned) and keeps its own name, instead of being read with the other house's cameras."""
    write_house(tmp_path, [look_at([0.2, 0.1, 0.0], [1.5, 0.3, 0.5])])
    other = tmp_path / "AAAA" / "region_segmentations"
    other.mkdir(parents=True)
    (tmp_path / "17DRP5sb8fy" / "region_segmentations" / "region3.ply").rename(other / "region0.ply")
    with caplog.at_level("WARNING"):
        scene = read_scene(other / "region0.ply")
    assert scene.name == "AAAA_region0" and scene.frames == []
    assert "camera file(s) of other houses" in caplog.text
    # the nested <house>/<house>/ of the official zips, unpacked in two places, is still one house
    nested = tmp_path / "BBBB" / "BBBB"
    (nested / "region_segmentations").mkdir(parents=True)
    (other / "region0.ply").rename(nested / "region_segmentations" / "region0.ply")
    for sub in ("undistorted_camera_parameters", "undistorted_color_images", "undistorted_depth_images"):
        (tmp_path / "17DRP5sb8fy" / sub).rename(tmp_path / "BBBB" / sub)  # cameras in BBBB/, region in BBBB/BBBB/
    scene = read_scene(nested / "region_segmentations" / "region0.ply")
    assert scene.name == "BBBB_region0" and len(scene.frames) == 1
