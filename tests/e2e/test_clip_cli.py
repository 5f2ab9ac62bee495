"""Images in, labels out: the clip encoder through the CLI, with the per-scene feature cache."""

import json

import numpy as np

from _fixtures import write_tiny_scannet
from geopurify.cli import main


def test_segment_with_clip_encoder_and_classes(tmp_path, clip_dir, monkeypatch):
    monkeypatch.setenv("GEOPURIFY_CACHE", str(tmp_path / "cache"))
    d = write_tiny_scannet(tmp_path)
    import shutil

    shutil.rmtree(d / "features_2d")
    (d / "text_embeddings.npz").unlink()
    args = ["-q", "segment", str(d), "--no-purify", "--encoder", "clip", "--weights", str(clip_dir),
            "--classes", "wall", "floor", "chair"]
    assert main([*args, "--out", str(tmp_path / "o1")]) == 0
    feats = np.load(tmp_path / "o1" / "features.npy")
    assert feats.shape == (1600, 24)  # the tiny model's projection_dim
    assert json.loads((tmp_path / "o1" / "names.json").read_text()) == ["wall", "floor", "chair"]
    te = np.load(tmp_path / "o1" / "text_embeddings.npz")
    assert te["embeddings"].shape == (3, 24)
    cached = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(cached) == 2  # one float16 map per frame
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert main([*args, "--out", str(tmp_path / "o2")]) == 0  # second run: served from the cache
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "cache").rglob("*.npz"))] == stamps
    assert (np.loadtxt(tmp_path / "o1" / "labels.txt") == np.loadtxt(tmp_path / "o2" / "labels.txt")).all()


def test_clip_without_weights_says_what_to_pass(tmp_path, capsys):
    d = write_tiny_scannet(tmp_path)
    rc = main(["segment", str(d), "--no-purify", "--encoder", "clip", "--classes", "wall", "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 3 and "--weights" in err


def test_query_free_text_uses_the_scenes_text_encoder(tmp_path, clip_dir, monkeypatch):
    monkeypatch.setenv("GEOPURIFY_CACHE", str(tmp_path / "cache"))
    d = write_tiny_scannet(tmp_path)
    out = tmp_path / "o"
    assert main(["-q", "segment", str(d), "--no-purify", "--encoder", "clip", "--weights", str(clip_dir),
                 "--classes", "wall", "floor", "--out", str(out)]) == 0
    # a phrase that is no class name: encoded by the same CLIP text tower run.json names
    assert main(["-q", "query", str(out), "a red office chair", "--top", "10"]) == 0
    scores = np.load(out / "query" / "a_red_office_chair.npy").astype(np.float32)
    from geopurify.encoders import build_encoder

    t = build_encoder("clip", weights=str(clip_dir)).encode_text(["a red office chair"])[0]
    f = np.load(out / "features.npy").astype(np.float32)
    expect = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (t / np.linalg.norm(t))
    np.testing.assert_allclose(scores, expect, atol=2e-3)
    assert len(np.loadtxt(out / "query" / "a_red_office_chair_mask.txt")) == 10
