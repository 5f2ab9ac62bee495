"""ScanNet .sens reader on a tiny file written with the published SensorData layout."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from io_synth import HW, K_SYN, poses_circle, render_box, wall_distance

from geopurify.errors import FrameError, InputError
from geopurify.io import ReadOptions, read_scene
from geopurify.io.sens import index_sens


def k4(K):
    m = np.eye(4, dtype=np.float32)
    m[:3, :3] = K
    return m


def write_sens(path, poses, depths_mm, colors, shift=1000.0):
    from PIL import Image

    h, w = HW
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 4))
        name = b"StructureSensor"
        f.write(struct.pack("<Q", len(name)) + name)
        for m in (k4(K_SYN), np.eye(4), k4(K_SYN), np.eye(4)):
            f.write(np.asarray(m, "<f4").tobytes())
        f.write(struct.pack("<ii", 2, 1))
        f.write(struct.pack("<IIII", w, h, w, h))
        f.write(struct.pack("<f", shift))
        f.write(struct.pack("<Q", len(poses)))
        for i, (pose, d, c) in enumerate(zip(poses, depths_mm, colors)):
            buf = io.BytesIO()
            Image.fromarray(c).save(buf, format="JPEG", quality=95)
            cbytes = buf.getvalue()
            dbytes = zlib.compress(d.astype("<u2").tobytes())
            f.write(np.asarray(pose, "<f4").tobytes())
            f.write(struct.pack("<QQQQ", 1000 * i, 1000 * i + 1, len(cbytes), len(dbytes)))
            f.write(cbytes + dbytes)


@pytest.fixture
def sens_scene(tmp_path):
    poses = poses_circle(4)
    bad = poses[2].copy()
    bad[:] = -np.inf  # ScanNet's lost-tracking pose
    poses[2] = bad
    renders = [render_box(p) if np.isfinite(p).all() else render_box(poses_circle(4)[2]) for p in poses]
    depths = [np.round(d * 1000).astype(np.uint16) for d, _ in renders]
    colors = [c for _, c in renders]
    folder = tmp_path / "scene0007_00"
    folder.mkdir()
    write_sens(folder / "scene0007_00.sens", poses, depths, colors)
    return folder, poses, depths, colors


def test_index_and_lazy_decode(sens_scene):
    folder, poses, depths, colors = sens_scene
    idx = index_sens(folder / "scene0007_00.sens")
    assert idx.header.sensor_name == "StructureSensor" and idx.header.num_frames == 4
    assert idx.header.color_compression == "jpeg" and idx.header.depth_compression == "zlib_ushort"
    assert idx.header.depth_size == HW and idx.header.depth_shift == 1000.0
    np.testing.assert_allclose(idx.poses[1], poses[1], atol=1e-6)
    scene = read_scene(folder, ReadOptions(fuse_voxel_size=0.05))
    assert scene.meta["layout"] == "sens"
    assert [f.frame_id for f in scene.frames] == ["0", "1", "3"]
    assert scene.skipped_frames == {"bad_pose": 1}
    f3 = scene.frames[2]
    np.testing.assert_array_equal(f3.depth(), depths[3].astype(np.float32) / 1000)  # exact: zlib is lossless
    assert np.abs(f3.color().astype(int) - colors[3]).mean() < 4  # JPEG q95
    np.testing.assert_allclose(f3.K_depth, K_SYN)
    # no mesh next to it: the cloud is fused from depth
    assert scene.meta["fused_from_depth"]["frames"] == 3
    assert np.median(wall_distance(scene.points)) < 1e-3
    # frame_skip applies before pose filtering
    sub = read_scene(folder / "scene0007_00.sens", ReadOptions(frame_skip=2, fuse_voxel_size=0.05))
    assert [f.frame_id for f in sub.frames] == ["0"] and sub.skipped_frames == {"bad_pose": 1}


def test_truncated_file_and_corrupt_frame(sens_scene, tmp_path):
    folder, *_ = sens_scene
    data = (folder / "scene0007_00.sens").read_bytes()
    cut = tmp_path / "cut" / "cut.sens"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) - 50])
    with pytest.raises(InputError, match=r"cut\.sens: truncated at frame 3"):
        read_scene(cut)
    # flip bytes inside frame 1's zlib depth stream: only that frame fails, with FrameError
    idx = index_sens(folder / "scene0007_00.sens")
    bad = bytearray(data)
    o = int(idx.depth_offset[1])
    bad[o + 2 : o + 40] = b"\x00" * 38
    (folder / "scene0007_00.sens").write_bytes(bytes(bad))
    scene = read_scene(folder, ReadOptions(fuse_voxel_size=0.05))
    with pytest.raises(FrameError) as info:
        scene.frames[1].depth()
    assert info.value.reason == "bad_depth" and "frame 1" in str(info.value)
    assert scene.frames[0].depth().max() > 0


def test_mesh_nyu40_and_scannet200_labels(sens_scene):
    folder, *_ = sens_scene
    name = folder.name
    verts = "".join(f"{x} 0 0 {10 * x} 20 30\n" for x in range(4))
    header = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n")
    (folder / f"{name}_vh_clean_2.ply").write_text(header + "end_header\n" + verts)
    lab = "".join(f"{x} 0 0 0 0 0 {lbl}\n" for x, lbl in zip(range(4), [1, 5, 5, 0]))
    (folder / f"{name}_vh_clean_2.labels.ply").write_text(header + "property ushort label\nend_header\n" + lab)
    (folder / f"{name}_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": [7, 7, 9, 11]}))
    (folder / f"{name}.aggregation.json").write_text(json.dumps({"segGroups": [
        {"id": 0, "objectId": 0, "segments": [7], "label": "office chair"},
        {"id": 1, "objectId": 1, "segments": [9], "label": "blobfish"},
    ]}))
    (folder.parent / "scannetv2-labels.combined.tsv").write_text(
        "id\traw_category\tcategory\tcount\tnyu40id\n2\tchair\tchair\t10\t5\n40\toffice chair\tchair\t3\t5\n"
    )
    scene = read_scene(folder)
    assert scene.num_points == 4 and scene.meta.get("mesh", "").endswith("_vh_clean_2.ply")
    assert scene.labels.tolist() == [1, 5, 5, 0] and scene.label_set == "nyu40"
    # office chair -> id 40 on segment 7's vertices; unknown category and unannotated segment -> 0
    assert scene.meta["scannet200_raw"].tolist() == [40, 40, 0, 0]
    np.testing.assert_allclose(scene.colors[1], [10 / 255, 20 / 255, 30 / 255], atol=1e-6)
