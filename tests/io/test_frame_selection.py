"""One frame-selection rule for every reader: the same frames are picked from equivalent captures.

Each capture holds 7 frames in the reader's own format; frame 3's pose is unusable (as that format can
make it: a scaled rotation, or a zero quaternion for TUM). ``frame_skip`` and ``max_frames`` pick by
position first (:func:`geopurify.io.frames.select_frames`); the bad pose is dropped after, so it never
shifts the pick.
"""

from __future__ import annotations

import numpy as np
import pytest
from io_synth import HW, K_SYN, look_at, poses_circle, render_box, write_png16, write_rgb
from test_matterport_reader import write_house
from test_rgbd_readers import write_7scenes, write_tum
from test_sens_reader import write_sens

from _fixtures import write_tiny_scannet
from geopurify.io import ReadOptions, read_scene
from geopurify.io.frames import select_frames

N, BAD = 7, 3
# (frame_skip, max_frames) -> positions of the frames read (pinned by hand, BAD left out)
CASES = {
    (1, None): [0, 1, 2, 4, 5, 6],
    (2, None): [0, 2, 4, 6],
    (3, None): [0, 6],
    (1, 3): [0, 6],  # 0, 3, 6 evenly spaced; 3 is bad
    (2, 3): [0, 4, 6],  # of 0, 2, 4, 6: positions 0, 2 (1.5 rounds to even), 3
    (1, 10): [0, 1, 2, 4, 5, 6],
}


def _scaled(pose):
    bad = np.array(pose, dtype=np.float64)
    bad[:3, :3] *= 2.0  # not a rotation
    return bad


def scannet(tmp):
    d = write_tiny_scannet(tmp, frames=N)
    np.savetxt(d / "pose" / f"{BAD}.txt", _scaled(np.loadtxt(d / "pose" / f"{BAD}.txt")))
    return d, [str(i) for i in range(N)]


def seven_scenes(tmp):
    d = tmp / "kitchen"
    write_7scenes(d, poses_circle(N), with_intrinsics=True)
    np.savetxt(d / f"frame-{BAD:06d}.pose.txt", _scaled(poses_circle(N)[BAD]))
    return d, [f"{i:06d}" for i in range(N)]


def tum(tmp):
    d = tmp / "rgbd_dataset_freiburg1_room"
    write_tum(d, poses_circle(N))
    lines = (d / "groundtruth.txt").read_text().splitlines()
    parts = lines[1 + BAD].split()
    lines[1 + BAD] = " ".join(parts[:4] + ["0", "0", "0", "0"])  # zero quaternion: no rotation
    (d / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return d, [f"{100.0 + 0.1 * i:.6f}" for i in range(N)]


def generic(tmp):
    d = tmp / "cap"
    for sub in ("c", "d", "p"):
        (d / sub).mkdir(parents=True)
    for i, pose in enumerate(poses_circle(N)):
        depth, color = render_box(pose)
        write_rgb(d / "c" / f"img{i}.png", color)
        write_png16(d / "d" / f"img{i}.png", depth, 1000.0)
        np.savetxt(d / "p" / f"img{i}.txt", _scaled(pose) if i == BAD else pose)
    (d / "geopurify.yaml").write_text(
        "color: c/*.png\ndepth: d/*.png\npose: p/*.txt\n"
        f"intrinsics: {{fx: {K_SYN[0, 0]}, fy: {K_SYN[1, 1]}, cx: {K_SYN[0, 2]}, cy: {K_SYN[1, 2]}}}\n"
    )
    return d, [f"img{i}" for i in range(N)]


def sens(tmp):
    poses = poses_circle(N)
    renders = [render_box(p) for p in poses]
    poses[BAD] = _scaled(poses[BAD])
    d = tmp / "scene0007_00"
    d.mkdir()
    write_sens(d / "scene0007_00.sens", poses, [np.round(r[0] * 1000).astype(np.uint16) for r in renders],
               [r[1] for r in renders])
    return d, [str(i) for i in range(N)]


def matterport(tmp):
    # every camera centre inside the region's (flat) box, so the camera choice keeps all 7, in order
    poses = [look_at([-0.6 + 0.2 * i, 0.1, 0.0], [1.5, 0.3, 0.5]) for i in range(N)]
    house = write_house(tmp, poses)
    conf = house / "undistorted_camera_parameters" / "17DRP5sb8fy.conf"
    lines = conf.read_text().splitlines()
    scans = [j for j, ln in enumerate(lines) if ln.startswith("scan ")]
    head = lines[scans[BAD]].split()[:3]
    from geopurify.io.rgbd import OPENGL_TO_OPENCV

    lines[scans[BAD]] = " ".join(head + [f"{x:.9f}" for x in (_scaled(poses[BAD]) @ OPENGL_TO_OPENCV).ravel()])
    conf.write_text("\n".join(lines) + "\n")
    return house / "region_segmentations" / "region3.ply", [f"abc_i0_{i}" for i in range(N)]


READERS = {"scannet": scannet, "7scenes": seven_scenes, "tum": tum, "generic": generic, "sens": sens,
           "matterport": matterport}


def test_select_frames_rule():
    for (skip, most), want in CASES.items():
        picked = select_frames(N, ReadOptions(frame_skip=skip, max_frames=most))
        assert [i for i in picked if i != BAD] == want, (skip, most)


@pytest.mark.parametrize("layout", list(READERS))
def test_every_reader_picks_the_same_frames(tmp_path, layout):
    path, ids = READERS[layout](tmp_path)
    for (skip, most), want in CASES.items():
        scene = read_scene(path, ReadOptions(frame_skip=skip, max_frames=most, fuse_voxel_size=0.1, layout=layout))
        assert [f.frame_id for f in scene.frames] == [ids[i] for i in want], (layout, skip, most)
        assert scene.skipped_frames == ({"bad_pose": 1} if BAD in select_frames(N, ReadOptions(
            frame_skip=skip, max_frames=most)) else {}), (layout, skip, most)
        assert all(f.color_size == HW or layout == "scannet" for f in scene.frames)
