import logging
import math

import numpy as np
import pytest
from lifting_fixtures import FakeEncoder, make_frame, scene_setup  # noqa: F401

from geopurify.errors import ConfigError, InputError
from geopurify.lifting import LiftConfig, lift


def naive_views(points, frames, enc, border=10, tol=0.05):
    """Per point, per frame, with scalar python arithmetic: list of (frame index, feature (D,))."""
    maps = {}
    views = [[] for _ in range(len(points))]
    for fi, f in enumerate(frames):
        try:
            maps[fi] = enc.encode(f)
        except Exception:
            continue
        w2c = np.linalg.inv(f.camera_to_world)
        depth = f.load_depth()
        H, W = f.color_size
        for p in range(len(points)):
            x, y, z = w2c[:3, :3] @ points[p] + w2c[:3, 3]
            if z <= 0:
                continue
            u = f.K_color[0, 0] * x / z + f.K_color[0, 2]
            v = f.K_color[1, 1] * y / z + f.K_color[1, 2]
            if not (border <= round(u) < W - border and border <= round(v) < H - border):
                continue
            ud = round(f.K_depth[0, 0] * x / z + f.K_depth[0, 2])
            vd = round(f.K_depth[1, 1] * y / z + f.K_depth[1, 2])
            if not (0 <= ud < depth.shape[1] and 0 <= vd < depth.shape[0]):
                continue
            d = float(depth[vd, ud])
            if d <= 0 or abs(d - z) > tol * d:
                continue
            fm = maps[fi]
            h, w = fm.hw
            col = min(max(math.floor((u + 0.5) * w / W), 0), w - 1)
            row = min(max(math.floor((v + 0.5) * h / H), 0), h - 1)
            if fm.dense is not None:
                views[p].append((fi, fm.dense[row, col].astype(np.float64)))
            elif fm.segments[row, col] >= 0:
                views[p].append((fi, fm.embeddings[fm.segments[row, col]].astype(np.float64)))
    return views


def naive_mean(views, dim):
    return np.array([np.mean([f for _, f in vs], axis=0) if vs else np.zeros(dim) for vs in views])


def naive_consensus(views, text, k, temperature=1.0):
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    out = []
    for vs in views:
        if not vs:
            out.append(np.zeros(text.shape[1]))
            continue
        feats = np.array([f for _, f in vs])
        logits = feats @ text.T
        c = int(np.argmax(logits.mean(axis=0)))
        order = sorted(range(len(vs)), key=lambda i: -logits[i, c])[:k]
        s = logits[order, c] / temperature
        w = np.exp(s - s.max())
        w /= w.sum()
        out.append((w[:, None] * feats[order]).sum(axis=0))
    return np.array(out)


@pytest.mark.parametrize("segments", [False, True])
def test_mean_fusion_matches_naive_loop(scene_setup, segments):  # noqa: F811
    points, frames = scene_setup
    enc = FakeEncoder(segments=segments)
    res = lift(points, frames, enc, LiftConfig(fusion="mean", fill_unseen=False, batch_size=4))
    views = naive_views(points, frames, FakeEncoder(segments=segments))
    counts = np.array([len(v) for v in views])
    assert counts.sum() > 100 and (counts >= 2).sum() > 20  # the data exercises fusion and occlusion
    assert (counts < 6).sum() > 20
    np.testing.assert_array_equal(res.view_count, counts)
    np.testing.assert_array_equal(res.seen, counts > 0)
    assert res.point_views == counts.sum()
    assert res.features.dtype == np.float32 and res.features.shape == (len(points), 6)
    np.testing.assert_allclose(res.features, naive_mean(views, 6), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("segments,k,temperature", [(False, 3, 1.0), (True, 3, 0.1), (False, 1, 1.0), (False, 5, 0.3)])
def test_consensus_fusion_matches_naive_loop(scene_setup, segments, k, temperature):  # noqa: F811
    points, frames = scene_setup
    text = np.random.default_rng(5).normal(size=(4, 6))
    cfg = LiftConfig(fusion="consensus", top_views=k, temperature=temperature, fill_unseen=False, batch_size=2)
    res = lift(points, frames, FakeEncoder(segments=segments), cfg, text=text)
    views = naive_views(points, frames, FakeEncoder(segments=segments))
    expected = naive_consensus(views, text, k, temperature)
    assert sum(len(v) > k for v in views) > 10  # top-k selection actually drops views
    np.testing.assert_allclose(res.features, expected, rtol=1e-5, atol=1e-6)
    # consensus differs from the plain mean on this data
    assert not np.allclose(res.features, naive_mean(views, 6), atol=1e-3)


def test_consensus_without_text_falls_back_to_mean(scene_setup):  # noqa: F811
    points, frames = scene_setup
    a = lift(points, frames, FakeEncoder(), LiftConfig(fusion="consensus"))
    b = lift(points, frames, FakeEncoder(), LiftConfig(fusion="mean"))
    np.testing.assert_array_equal(a.features, b.features)


def test_unseen_points_copy_nearest_seen(scene_setup):  # noqa: F811
    points, frames = scene_setup
    far = np.array([[0.0, 0.0, 5.0], [0.3, -0.2, -4.0]])  # above/below every camera's view
    pts = np.concatenate([points, far])
    res = lift(pts, frames, FakeEncoder(), LiftConfig(fusion="mean"))
    assert not res.seen[-2:].any() and res.view_count[-2:].tolist() == [0, 0]
    seen_idx = np.flatnonzero(res.seen)
    for q in range(len(pts)):
        if res.seen[q]:
            continue
        nearest = seen_idx[np.argmin(np.linalg.norm(pts[seen_idx] - pts[q], axis=1))]
        np.testing.assert_array_equal(res.features[q], res.features[nearest])
    res2 = lift(pts, frames, FakeEncoder(), LiftConfig(fusion="mean", fill_unseen=False))
    assert np.all(res2.features[~res2.seen] == 0)


def test_bad_frames_are_counted_and_skipped(scene_setup):  # noqa: F811
    points, frames = scene_setup
    frames = list(frames)
    frames[1].camera_to_world = np.full((4, 4), np.nan)
    frames[2].load_depth = lambda: np.zeros((5, 5), np.float32)
    good = [f for i, f in enumerate(frames) if i not in (1, 2, 4)]
    text = np.random.default_rng(1).normal(size=(3, 6))
    for fusion in ("mean", "consensus"):
        res = lift(points, frames, FakeEncoder(fail={"4"}), LiftConfig(fusion=fusion), text=text)
        assert res.skipped_frames == {"bad_pose": 1, "bad_depth": 1, "missing_features": 1}
        assert res.frames_used == len(good) == 5
        ref = lift(points, good, FakeEncoder(), LiftConfig(fusion=fusion), text=text)
        np.testing.assert_allclose(res.features, ref.features, rtol=1e-5, atol=1e-6)


def test_all_frames_bad_or_nothing_seen_raises(scene_setup):  # noqa: F811
    points, frames = scene_setup
    with pytest.raises(InputError, match="kitchen: all 8 frames failed"):
        lift(points, frames, FakeEncoder(fail={str(i) for i in range(8)}), scene_name="kitchen")
    with pytest.raises(InputError, match="kitchen: no point is seen"):
        lift(points + 100.0, frames, FakeEncoder(), scene_name="kitchen")


def test_config_validation():
    with pytest.raises(ConfigError, match="fusion"):
        LiftConfig(fusion="max")
    with pytest.raises(ConfigError, match="top_views"):
        LiftConfig(top_views=0)


def test_text_dimension_mismatch_is_input_error(scene_setup):  # noqa: F811
    points, frames = scene_setup
    with pytest.raises(InputError, match="dimension 5"):
        lift(points, frames, FakeEncoder(), LiftConfig(), text=np.ones((3, 5)))


def test_single_frame_depth_from_other_resolution():
    """One frame: z-buffer depth with its own K; every front point of a plane is seen exactly once."""
    xs, ys = np.meshgrid(np.linspace(-0.4, 0.4, 9), np.linspace(-0.3, 0.3, 7))
    pts = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 2.0)], axis=1)
    K_c = np.array([[300.0, 0, 160.0], [0, 300.0, 120.0], [0, 0, 1]])
    K_d = np.array([[150.0, 0, 80.0], [0, 150.0, 60.0], [0, 0, 1]])
    depth = np.full((120, 160), 2.0, np.float32)
    frame = make_frame(0, K_c, K_d, np.eye(4), (240, 320), depth)
    res = lift(pts, [frame], FakeEncoder(hw=(240, 320)), LiftConfig(fusion="mean"))
    assert res.seen.all() and res.frames_used == 1 and res.point_views == len(pts)
    fm = FakeEncoder(hw=(240, 320)).encode(frame)
    u = np.rint(300 * pts[:, 0] / 2 + 160.0).astype(int)
    v = np.rint(300 * pts[:, 1] / 2 + 120.0).astype(int)
    np.testing.assert_array_equal(res.features, fm.dense[v, u])


def test_lift_scene_returns_unit_rows_parallel_to_the_features():
    """Per-point features given directly: each row is scaled to unit length (zero rows stay zero),
    and the scene's own array is left as it was."""
    from geopurify.encoders.base import TextEmbeddings
    from geopurify.io.scene import Scene
    from geopurify.lifting import lift_scene

    rng = np.random.default_rng(0)
    feats = (rng.standard_normal((50, 8)) * rng.uniform(0.1, 30.0, (50, 1))).astype(np.float32)
    feats[7] = 0.0
    before = feats.copy()
    scene = Scene("s", rng.standard_normal((50, 3)).astype(np.float32), np.zeros((50, 3), np.float32),
                  point_features=feats)
    text = TextEmbeddings(["a", "b"], np.eye(2, 8, dtype=np.float32))
    out = lift_scene(scene, None, text, LiftConfig()).features
    assert out.dtype == np.float32 and out.shape == feats.shape
    norms = np.linalg.norm(out.astype(np.float64), axis=1)
    np.testing.assert_allclose(np.delete(norms, 7), 1.0, rtol=1e-5)
    assert not out[7].any()
    cos = np.einsum("ij,ij->i", out.astype(np.float64), feats) / np.maximum(np.linalg.norm(feats, axis=1), 1e-30)
    np.testing.assert_allclose(np.delete(cos, 7), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(feats, before)


def test_skipped_frames_warn_a_few_lines_and_count_all(scene_setup, caplog):  # noqa: F811
    points, frames = scene_setup
    fail = {f.frame_id for f in frames[1:]}  # a half-encoded folder: most frames have no features
    with caplog.at_level(logging.INFO, logger="geopurify.lifting.lift"):
        res = lift(points, frames, FakeEncoder(fail=fail), LiftConfig(fusion="mean"))
    assert res.skipped_frames == {"missing_features": len(fail)} and len(fail) > 5
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(r.getMessage().startswith("skipping frame") for r in warned) == 5
    assert len(warned) == 6 and "with -v only" in warned[-1].getMessage()
