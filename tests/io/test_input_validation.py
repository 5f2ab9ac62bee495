"""Inputs that used to give silent wrong answers: bad intrinsics, depth at another resolution, an
explicit --depth-scale equal to a layout default, a truncated image's warning without its file."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from io_synth import K_SYN, poses_circle, render_box, wall_distance, write_png16, write_rgb

from geopurify.errors import InputError
from geopurify.io import ReadOptions, read_scene

OPTS = ReadOptions(fuse_voxel_size=0.05)


def write_yaml_capture(root, poses, K=K_SYN, depth_every=1, extra=""):
    """A generic-YAML capture; ``depth_every=2`` writes depth at half the colour resolution."""
    for sub in ("c", "d", "p"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, pose in enumerate(poses):
        d, c = render_box(pose)
        write_rgb(root / "c" / f"{i:03d}.png", c)
        if depth_every > 1:  # what a sensor at half resolution sees: the same rays, every 2nd pixel centre
            Kd = K_SYN.copy()
            Kd[:2] /= depth_every
            Kd[0, 2] = (K_SYN[0, 2] + 0.5) / depth_every - 0.5
            Kd[1, 2] = (K_SYN[1, 2] + 0.5) / depth_every - 0.5
            d, _ = render_box(pose, Kd, (60 // depth_every, 80 // depth_every))
        write_png16(root / "d" / f"{i:03d}.png", d, 1000.0)
        np.savetxt(root / "p" / f"{i:03d}.txt", pose)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    (root / "geopurify.yaml").write_text(
        f"color: c/*.png\ndepth: d/*.png\npose: p/*.txt\nintrinsics: [{fx}, {fy}, {cx}, {cy}]\n{extra}"
    )


@pytest.mark.parametrize(
    "K, match",
    [
        ([[-60.0, 0, 40], [0, 60, 30], [0, 0, 1]], r"fx=-60, fy=60; focal lengths must be positive"),
        ([[60.0, 0, 40], [0, 0, 30], [0, 0, 1]], r"fy=0; focal lengths must be positive"),
        ([[60.0, 0, 320], [0, 60, 240], [0, 0, 1]], r"principal point \(cx=320, cy=240\) is outside the 80x60"),
    ],
)
def test_bad_intrinsics_refused(tmp_path, K, match):
    write_yaml_capture(tmp_path / "cap", poses_circle(2), K=np.array(K))
    with pytest.raises(InputError, match=match):
        read_scene(tmp_path / "cap", OPTS)


def test_bad_intrinsics_cli_exit_2(tmp_path, capsys):
    from geopurify.cli import main

    write_yaml_capture(tmp_path / "cap", poses_circle(2), K=np.array([[-60.0, 0, 40], [0, 60, 30], [0, 0, 1]]))
    code = main(["segment", str(tmp_path / "cap"), "--no-purify", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "focal lengths must be positive" in err[0]
    assert not (tmp_path / "out").exists()


def test_half_resolution_depth_scales_shared_intrinsics(tmp_path):
    poses = poses_circle(3)
    write_yaml_capture(tmp_path / "cap", poses, depth_every=2)
    scene = read_scene(tmp_path / "cap", OPTS)
    f = scene.frames[0]
    assert f.depth_size == (30, 40) and f.color_size == (60, 80)
    np.testing.assert_allclose(f.K_depth[[0, 1], [0, 1]], [30, 30])
    np.testing.assert_allclose(f.K_depth[[0, 1], [2, 2]], [19.75, 14.75])
    # with K scaled, the cloud fused from half-resolution depth lies on the walls
    assert np.median(wall_distance(scene.points)) < 2e-3


def test_depth_of_another_aspect_ratio_refused(tmp_path):
    from PIL import Image

    write_yaml_capture(tmp_path / "cap", poses_circle(2))
    for p in (tmp_path / "cap" / "d").glob("*.png"):
        Image.fromarray(np.full((60, 60), 1000, np.uint16)).save(p)
    with pytest.raises(InputError, match="depth images are 60x60 but colour images and their shared intrinsics "
                                         "are 80x60, another aspect ratio"):
        read_scene(tmp_path / "cap", OPTS)


def test_explicit_depth_scale_wins_even_when_equal_to_the_default(tmp_path):
    """TUM's own scale is 5000; ``--depth-scale 1000`` must be used, not taken for 'unset'."""
    from test_rgbd_readers import write_tum

    seq = tmp_path / "rgbd_dataset_freiburg1_room"
    poses = poses_circle(3)
    write_tum(seq, poses)  # depth written at 5000 units per metre
    native = read_scene(seq, OPTS)
    assert native.meta["depth_scale"] == 5000.0
    mm = read_scene(seq, ReadOptions(depth_scale=1000.0, fuse_voxel_size=0.05))
    assert mm.meta["depth_scale"] == 1000.0
    np.testing.assert_allclose(mm.frames[0].depth(), 5 * native.frames[0].depth(), rtol=1e-6)


def test_cli_depth_scale_reaches_the_reader(tmp_path):
    from geopurify.cli import build_config, build_parser
    from geopurify.config import SegmentConfig

    a = build_parser().parse_args(["segment", "x", "--no-purify", "--out", "o", "--depth-scale", "1000"])
    assert build_config(SegmentConfig, a).read.depth_scale == 1000.0
    a = build_parser().parse_args(["segment", "x", "--no-purify", "--out", "o"])
    assert build_config(SegmentConfig, a).read.depth_scale is None


def test_yaml_depth_scale_and_explicit_override(tmp_path, caplog):
    write_yaml_capture(tmp_path / "cap", poses_circle(2), extra="depth_scale: 2000\n")
    assert read_scene(tmp_path / "cap", OPTS).meta["depth_scale"] == 2000.0
    with caplog.at_level(logging.WARNING):
        s = read_scene(tmp_path / "cap", ReadOptions(depth_scale=1000.0, fuse_voxel_size=0.05))
    assert s.meta["depth_scale"] == 1000.0 and "--depth-scale 1000 overrides the YAML's depth_scale 2000" in caplog.text


def test_unreadable_first_image_warning_names_the_file(tmp_path, caplog):
    write_yaml_capture(tmp_path / "cap", poses_circle(3))
    bad = tmp_path / "cap" / "c" / "000.png"
    bad.write_bytes(bad.read_bytes()[:20])  # truncated inside the header
    with caplog.at_level(logging.WARNING):
        scene = read_scene(tmp_path / "cap", OPTS)
    assert scene.skipped_frames == {"bad_color": 1}
    assert str(bad) in caplog.text


def test_truncated_jpeg_warning_names_the_file(tmp_path, caplog):
    """A JPEG cut mid-scan: the header reads, the decode fails later; the warning names the file."""
    from PIL import Image

    write_yaml_capture(tmp_path / "cap", poses_circle(3))
    for p in sorted((tmp_path / "cap" / "c").glob("*.png")):
        Image.open(p).convert("RGB").save(p.with_suffix(".jpg"), quality=95)
        p.unlink()
    y = tmp_path / "cap" / "geopurify.yaml"
    y.write_text(y.read_text().replace("c/*.png", "c/*.jpg"))
    bad = tmp_path / "cap" / "c" / "001.jpg"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with caplog.at_level(logging.WARNING):
        scene = read_scene(tmp_path / "cap", OPTS)
    assert len(scene.frames) == 3  # the header is fine: the frame fails when decoded
    line = next(r.getMessage() for r in caplog.records if "001" in r.getMessage())
    assert str(bad) in line


def test_transposed_intrinsics_file_refused(tmp_path, capsys):
    """A K file written column-major (cx, cy in the last row) read as a principal point at (0, 0): the
    cloud fused from depth was sheared and inspect's reprojection check, fed the same K, still agreed."""
    from geopurify.cli import main

    write_yaml_capture(tmp_path / "cap", poses_circle(2))
    np.savetxt(tmp_path / "cap" / "K.txt", K_SYN.T)
    text = (tmp_path / "cap" / "geopurify.yaml").read_text().splitlines()
    (tmp_path / "cap" / "geopurify.yaml").write_text(
        "\n".join("intrinsics: K.txt" if t.startswith("intrinsics:") else t for t in text) + "\n")
    with pytest.raises(InputError, match=r"K\.txt: cannot read intrinsics .*third row is '40 30 1'.*transposed"):
        read_scene(tmp_path / "cap", OPTS)
    assert main(["inspect", str(tmp_path / "cap")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "looks transposed" in err[0]
    np.savetxt(tmp_path / "cap" / "K.txt", K_SYN)  # row-major: read as before
    assert read_scene(tmp_path / "cap", OPTS).frames[0].K_color[0, 2] == 40
