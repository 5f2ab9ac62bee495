"""Segment inputs other than a ScanNet export: a bare point cloud with per-point features, and real
RGB-D frames without a mesh (7-Scenes, cloud fused from depth) through the CLIP encoder."""

import json

import numpy as np
import pytest

from geopurify.cli import main


def test_point_cloud_with_per_point_features(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    pts = rng.uniform(0, 2, (n, 3)).astype(np.float32)
    cls = (pts[:, 0] > 1).astype(int)  # two halves, two classes
    text = np.eye(8, dtype=np.float32)[:2]
    feats = text[cls] + 0.3 * rng.normal(size=(n, 8)).astype(np.float32)
    np.savez(tmp_path / "cloud.npz", coord=pts, color=rng.uniform(0, 1, (n, 3)).astype(np.float32),
             features_2d=feats)
    np.savez(tmp_path / "text.npz", names=np.array(["chair", "table"]), embeddings=text)
    out = tmp_path / "out"
    assert main(["-q", "segment", str(tmp_path / "cloud.npz"), "--no-purify", "--text", str(tmp_path / "text.npz"),
                 "--out", str(out)]) == 0
    labels = np.loadtxt(out / "labels.txt", dtype=int)
    expect = ((feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ text.T).argmax(1)
    assert (labels == expect).all()
    assert json.loads((out / "run.json").read_text())["counts"]["source"] == "point_features"


def test_real_7scenes_frames_without_mesh_through_clip(tmp_path, seven_scenes, clip_dir, monkeypatch):
    monkeypatch.setenv("GEOPURIFY_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["-q", "segment", str(seven_scenes), "--no-purify", "--max-frames", "4", "--voxel-fuse", "0.05",
                 "--encoder", "clip", "--weights", str(clip_dir), "--classes", "wall", "floor", "cabinet",
                 "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["frames_used"] == 4
    pts = np.load(out / "points.npy")
    assert len(pts) == run["counts"]["points"] > 1000
    # the fused cloud is seen by the frames it came from: almost every point gets lifted features
    assert run["counts"]["points_seen"] > 0.9 * len(pts)
    assert np.load(out / "features.npy").shape == (len(pts), 24)


def test_render_gt_of_a_capture_segmented_with_fewer_frames(tmp_path, seven_scenes, clip_dir, monkeypatch):
    """render --gt SCENE of an output made with --max-frames of a capture without a mesh read the scene
    with the default options, so a cloud fused from all its frames: '4000 labels but the scene has 9000
    points'. The scene is now read as run.json says the output read it: the same cloud, and the one
    remaining problem is said (7-Scenes has no ground-truth labels)."""
    from geopurify.errors import InputError

    monkeypatch.setenv("GEOPURIFY_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["-q", "segment", str(seven_scenes), "--no-purify", "--max-frames", "2", "--voxel-fuse", "0.08",
                 "--encoder", "clip", "--weights", str(clip_dir), "--classes", "wall", "floor",
                 "--out", str(out)]) == 0
    from geopurify import api

    with pytest.raises(InputError, match="scene has no ground-truth labels"):
        api.render(out, gt=seven_scenes, view="top")
