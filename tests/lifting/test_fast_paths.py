"""The fast lifting paths give exactly (bit for bit) what the straightforward float64 computation gives.

``PointProjector`` culls blocks and points in float32 before the exact float64 test, ``lift`` caches
visible sets between the consensus passes and gathers features as rows of the map; each is compared
here against the plain per-frame pipeline (``camera_points`` -> ``project_camera`` -> ``visible_mask``,
``FeatureMap.sample``, numpy fancy-index accumulation).
"""

import importlib

import numpy as np
import pytest
from lifting_fixtures import FakeEncoder, look_at, make_frame, zbuffer

from geopurify.encoders.base import FeatureMap
from geopurify.lifting import LiftConfig, camera_points, frame_view, lift, project_camera, visible_mask
from geopurify.lifting.lift import _as_text, _lookup, _openblas_thread_controls, _serial_blas
from geopurify.lifting.projection import PointProjector, _rint_within, spatial_order

lift_module = importlib.import_module("geopurify.lifting.lift")  # the package's ``lift`` is the function


def reference_view(points, frame, border=10, tol=0.05, depth=None):
    """The straightforward full-array float64 pipeline: (indices, u, v)."""
    depth = frame.load_depth() if depth is None else depth
    cam = camera_points(points, np.linalg.inv(frame.camera_to_world))
    proj = project_camera(cam, frame.K_color)
    ok = visible_mask(proj, tuple(frame.color_size), border, depth, project_camera(cam, frame.K_depth), tol)
    idx = np.flatnonzero(ok)
    return idx, proj.u[idx], proj.v[idx]


def assert_same_view(got, want):
    idx, u, v = got
    assert idx.dtype == np.int64 and u.dtype == np.float64 and v.dtype == np.float64
    np.testing.assert_array_equal(idx, want[0])
    np.testing.assert_array_equal(u, want[1])  # exact: same pixel coordinates, bit for bit
    np.testing.assert_array_equal(v, want[2])


def room(n=6000, seed=0):
    """Points on the walls, floor and a box of a 4 x 3 x 2.5 m room, plus some floating inside."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform([-2, -1.5, 0], [2, 1.5, 2.5], size=(n, 3))
    face = rng.integers(0, 6, n)
    for axis, (lo, hi) in enumerate([(-2, 2), (-1.5, 1.5), (0, 2.5)]):
        pts[face == 2 * axis, axis] = lo
        pts[face == 2 * axis + 1, axis] = hi
    box = rng.uniform([-0.4, -0.3, 0], [0.4, 0.3, 0.8], size=(n // 5, 3))
    box[: n // 10, 2] = 0.8
    return np.concatenate([pts, box, rng.uniform([-2, -1.5, 0], [2, 1.5, 2.5], size=(n // 20, 3))])


def room_frames(points, n=8, skew=0.0, cx=79.5, depth_hw=(60, 80)):
    """Cameras inside the room (so points lie behind and beside them), colour 120x160, own depth K."""
    K_c = np.array([[110.0, skew, cx], [0, 110.0, 59.5], [0, 0, 1]])
    s = depth_hw[1] / 160
    K_d = np.array([[110.0 * s, skew * s, (cx + 0.5) * s - 0.5], [0, 110.0 * s, 60 * s - 0.5], [0, 0, 1]])
    frames = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([1.2 * np.cos(a), 0.9 * np.sin(a), 1.2 + 0.3 * np.sin(3 * a)])
        c2w = look_at(eye, np.array([0.0, 0.0, 0.6]) + 0.5 * np.array([np.sin(a), 0, 0]))
        depth = zbuffer(points, K_d, c2w, depth_hw, splat=1)
        frames.append(make_frame(i, K_c, K_d, c2w, (120, 160), depth))
    return frames


def edge_points(frame, rng, depths):
    """World points whose colour pixel coordinates sit on (and a hair off) pixel edges and image borders."""
    u = np.concatenate([np.arange(-3, 165, 0.5) + e for e in (0.0, 1e-9, -1e-9, 1e-13, -1e-13)])
    v = rng.uniform(-3, 125, len(u))
    u, v = np.concatenate([u, v * 4 / 3]), np.concatenate([v, u * 3 / 4])
    K, T = frame.K_color, frame.camera_to_world
    out = []
    for z in depths:
        zz = np.full(len(u), z)
        y = (v - K[1, 2]) * zz / K[1, 1]
        x = ((u - K[0, 2]) * zz - K[0, 1] * y) / K[0, 0]
        out.append(np.stack([x, y, zz], 1) @ T[:3, :3].T + T[:3, 3])
    return np.concatenate(out)


@pytest.mark.parametrize("block", [16, 256])
@pytest.mark.parametrize("skew,cx", [(0.0, 79.5), (0.7, 79.5), (0.0, 0.0)])
def test_projector_matches_full_float64_pipeline(block, skew, cx):
    rng = np.random.default_rng(1)
    pts = room()
    frames = room_frames(pts, skew=skew, cx=cx)
    pts = np.concatenate([pts, edge_points(frames[0], rng, [2.0, 1e-3, 1e-9, 0.0, -1e-9])])
    proj = PointProjector(pts, block_size=block)
    for border in (0, 1, 10):
        for f in frames:
            want = reference_view(pts, f, border)
            got = proj.visible(
                np.linalg.inv(f.camera_to_world), f.K_color, f.color_size, border, f.load_depth(), f.K_depth, 0.05
            )
            assert_same_view(got, want)
    assert sum(len(reference_view(pts, f)[0]) for f in frames) > 3000  # the scene is actually seen


def test_projector_far_from_origin_and_on_depth_tolerance():
    """Coordinates around 1e6 (georeferenced scans), and depths exactly at the tolerance bounds."""
    pts = room(3000, seed=2)
    frames = room_frames(pts)
    rng = np.random.default_rng(3)
    f = frames[1]
    depth = f.load_depth()
    vq, uq = rng.integers(0, depth.shape[0], 4000), rng.integers(0, depth.shape[1], 4000)
    scale = rng.choice([0.95, 1.05, 1.0, 1.05 + 1e-12, 0.95 - 1e-12, 1.1], 4000)
    z = depth[vq, uq].astype(np.float64) * scale
    Kd = f.K_depth
    cam = np.stack([(uq - Kd[0, 2]) * z / Kd[0, 0], (vq - Kd[1, 2]) * z / Kd[1, 1], z], 1)
    pts = np.concatenate([pts, cam @ f.camera_to_world[:3, :3].T + f.camera_to_world[:3, 3]])
    for offset in (0.0, 1e6):
        moved = []
        for g in frames:
            T = g.camera_to_world.copy()
            T[:3, 3] += offset
            moved.append(make_frame(g.frame_id, g.K_color, g.K_depth, T, g.color_size, g.load_depth()))
        proj = PointProjector(pts + offset)
        for g in moved:
            assert_same_view(frame_view(pts + offset, g, LiftConfig(), proj), reference_view(pts + offset, g))


def test_projector_odd_depth_images():
    pts = room(2000, seed=4)
    f = room_frames(pts, n=2)[0]
    proj = PointProjector(pts)
    w2c = np.linalg.inv(f.camera_to_world)
    base = f.load_depth()
    nan = base.copy()
    nan[::3] = np.nan
    inf = base.copy()
    inf[5:9] = np.inf
    for depth in (base, np.zeros_like(base), np.full_like(base, np.nan), nan, inf, -base):
        got = proj.visible(w2c, f.K_color, f.color_size, 10, depth, f.K_depth, 0.05)
        assert_same_view(got, reference_view(pts, f, depth=depth))
    # no depth image: frustum and border only, as visible_mask without depth
    cam = camera_points(pts, w2c)
    p = project_camera(cam, f.K_color)
    want = np.flatnonzero(visible_mask(p, f.color_size, 10))
    assert_same_view(proj.visible(w2c, f.K_color, f.color_size, 10), (want, p.u[want], p.v[want]))
    empty = PointProjector(np.zeros((0, 3)))
    assert [len(a) for a in empty.visible(w2c, f.K_color, f.color_size, 10, base, f.K_depth)] == [0, 0, 0]


def test_projector_non_finite_points_are_never_visible():
    """frame_view needs no finite points (lift checks them); NaN / inf ones are invisible, the rest unaffected."""
    pts = room(3000, seed=6)
    f = room_frames(pts, n=2)[1]
    bad = pts.copy()
    bad[::7, 0] = np.nan
    bad[3::11, 2] = np.inf
    bad[5::13] = -np.inf
    for block in (16, 256):
        with np.errstate(invalid="ignore"):
            want = reference_view(bad, f)
        assert len(want[0]) > 100
        assert_same_view(frame_view(bad, f, LiftConfig(), PointProjector(bad, block_size=block)), want)
    assert len(frame_view(np.full((40, 3), np.nan), f, LiftConfig())[0]) == 0


def test_candidates_keep_every_point_of_the_frustum():
    rng = np.random.default_rng(5)
    pts = room(4000, seed=5)
    frames = room_frames(pts, n=4)
    pts = np.concatenate([pts, edge_points(frames[2], rng, [3.0, 1e-4, 1e-10, 0.0])])
    proj = PointProjector(pts, block_size=32)
    for f in frames:
        w2c = np.linalg.inv(f.camera_to_world)
        inside = np.flatnonzero(visible_mask(project_camera(camera_points(pts, w2c), f.K_color), f.color_size, 10))
        cand = proj.candidates(w2c, f.K_color, f.color_size, 10)
        assert np.all(np.diff(cand) > 0)
        assert np.isin(inside, cand).all()
        assert len(cand) < 0.8 * len(pts)  # and the cull does cull


@pytest.mark.parametrize("lo,hi", [(0, 9), (10, 149), (11, 148), (3, 2), (-1, -1)])
def test_rint_within_is_rint_then_compare(lo, hi):
    half = np.arange(-4, 160) + 0.5
    u = np.concatenate([half, np.nextafter(half, np.inf), np.nextafter(half, -np.inf), np.arange(-4.0, 160.0)])
    u = np.concatenate([u, [np.nan, np.inf, -np.inf, -0.0]])
    ok = np.ones(len(u), dtype=bool)
    _rint_within(ok, u, lo, hi)
    with np.errstate(invalid="ignore"):
        want = (np.rint(u) >= lo) & (np.rint(u) <= hi)
    np.testing.assert_array_equal(ok, want)


def test_spatial_order_is_a_permutation():
    pts = room(1000)
    order = spatial_order(pts)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(pts)))
    assert spatial_order(pts[:1]).tolist() == [0] and len(spatial_order(pts[:0])) == 0
    np.testing.assert_array_equal(spatial_order(np.ones((5, 3))), np.arange(5))


@pytest.mark.parametrize("kind", ["dense16", "dense32", "segments"])
def test_lookup_matches_feature_map_sample(kind):
    rng = np.random.default_rng(6)
    h, w, D = 13, 17, 5
    if kind == "segments":
        fmap = FeatureMap(segments=rng.integers(-1, 4, (h, w)).astype(np.int32), embeddings=rng.normal(size=(4, D)))
    else:
        dt = np.float16 if kind == "dense16" else np.float32
        fmap = FeatureMap(dense=rng.normal(size=(h, w, D)).astype(dt))
    H, W = 48, 64
    u = np.concatenate([rng.uniform(-1, W, 500), np.arange(-1, W + 1, 0.25) - 0.5])
    v = np.concatenate([rng.uniform(-1, H, 500), np.linspace(-1.5, H, len(u) - 500)])
    want, valid = fmap.sample(u + 0.5, v + 0.5, (H, W))
    sample, ok = _lookup(fmap, u, v, (H, W))
    if kind == "segments":
        assert not valid.all()
        np.testing.assert_array_equal(ok, valid)
        sample = sample.subset(ok)
        want = want[valid]
    else:
        assert ok is None
    got = sample.feats()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.concatenate([sample.feats(0, 7), sample.feats(7)]), want)


def reference_lift(points, frames, enc, cfg, text=None):
    """The straightforward algorithm (full-array projection per frame and pass, numpy accumulation)."""
    N = len(points)

    def views():
        for i, f in enumerate(frames):
            idx, u, v = reference_view(points, f, cfg.border, cfg.depth_tolerance)
            if not len(idx):
                continue
            feats, valid = enc.encode(f).sample(u + 0.5, v + 0.5, tuple(f.color_size))
            if len(idx[valid]):
                yield i, idx[valid], u[valid], v[valid], feats[valid]

    count = np.zeros(N, dtype=np.int32)
    if cfg.fusion == "mean":
        acc = None
        for _, idx, _, _, feats in views():
            acc = np.zeros((N, feats.shape[1]), np.float32) if acc is None else acc
            acc[idx] += feats
            count[idx] += 1
        seen = count > 0
        acc[seen] /= count[seen, None]
        return acc, count
    T = _as_text(text, None)
    logit_sum = np.zeros((N, len(T)))
    for _, idx, _, _, feats in views():
        logit_sum[idx] += feats @ T.T
        count[idx] += 1
    cls = np.argmax(logit_sum, axis=1)
    k = cfg.top_views
    best = np.full((N, k), -np.inf)
    best_frame = np.full((N, k), -1, np.int32)
    best_uv = np.zeros((N, k, 2), np.float32)
    for i, p, u, v, feats in views():
        score = np.einsum("md,md->m", feats, T[cls[p]]).astype(np.float64)
        slot = np.argmin(best[p], axis=1)
        better = score > best[p, slot]
        rows, s = p[better], slot[better]
        best[rows, s], best_frame[rows, s] = score[better], i
        best_uv[rows, s, 0], best_uv[rows, s, 1] = u[better], v[better]
    with np.errstate(invalid="ignore"):
        wgt = np.exp((best - best.max(axis=1, keepdims=True)) / cfg.temperature)
    wgt[~np.isfinite(wgt)] = 0.0
    wgt /= np.maximum(wgt.sum(axis=1, keepdims=True), 1e-300)
    out = None
    for i in np.unique(best_frame[best_frame >= 0]):
        rows, slots = np.nonzero(best_frame == i)
        uv = best_uv[rows, slots].astype(np.float64)
        feats, _ = enc.encode(frames[i]).sample(uv[:, 0] + 0.5, uv[:, 1] + 0.5, tuple(frames[i].color_size))
        out = np.zeros((N, feats.shape[1]), np.float32) if out is None else out
        out[rows] += wgt[rows, slots, None].astype(np.float32) * feats
    return out, count


@pytest.fixture(scope="module")
def room_scene():
    pts = room(5000, seed=7)
    return pts, room_frames(pts, n=10)


@pytest.mark.parametrize("segments", [False, True])
@pytest.mark.parametrize("fusion,k,temperature", [("mean", 3, 1.0), ("consensus", 3, 1.0), ("consensus", 1, 0.2)])
@pytest.mark.parametrize("table_logits", [True, False])
def test_lift_is_the_straightforward_algorithm(room_scene, monkeypatch, segments, fusion, k, temperature, table_logits):
    pts, frames = room_scene
    monkeypatch.setattr(lift_module, "CHUNK", 1000)  # several chunks per view
    if not table_logits:  # per-point rows only: bit for bit the straightforward computation
        monkeypatch.setattr(lift_module._FrameStream, "table_logits", lambda self, i, sample, T: None)
    text = np.random.default_rng(8).normal(size=(5, 6))
    cfg = LiftConfig(fusion=fusion, top_views=k, temperature=temperature, fill_unseen=False, batch_size=3)
    enc = FakeEncoder(hw=(30, 40), segments=segments)
    res = lift(pts, frames, enc, cfg, text=text)
    want, count = reference_lift(pts, frames, FakeEncoder(hw=(30, 40), segments=segments), cfg, text)
    assert count.sum() > 5000 and (count >= 3).sum() > 500
    np.testing.assert_array_equal(res.view_count, count)
    if table_logits and fusion == "consensus":
        # logits as rows of each frame's (masks, C) table: the same dot products summed in another
        # order, so the softmax weights move by float rounding; a different consensus class or top
        # view would move a feature by O(0.1)
        np.testing.assert_allclose(res.features, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(res.features, want)


@pytest.mark.parametrize("segments", [False, True])
def test_consensus_decodes_each_frame_once(room_scene, segments):
    pts, frames = room_scene
    text = np.random.default_rng(8).normal(size=(5, 6))
    enc = FakeEncoder(hw=(30, 40), segments=segments)
    lift(pts, frames, enc, LiftConfig(), text=text)
    assert sorted(enc.calls) == sorted(f.frame_id for f in frames)


def test_consensus_without_view_cache_is_identical(room_scene, monkeypatch):
    pts, frames = room_scene
    loads = []

    def counting(frame):
        depth = frame.load_depth()
        return lambda: loads.append(frame.frame_id) or depth

    counted = [
        make_frame(f.frame_id, f.K_color, f.K_depth, f.camera_to_world, f.color_size, f.load_depth()) for f in frames
    ]
    for g in counted:
        g.load_depth = counting(g)
    text = np.random.default_rng(9).normal(size=(5, 6))
    cached = lift(pts, counted, FakeEncoder(hw=(30, 40)), LiftConfig(), text=text)
    assert len(loads) == len(frames)  # pass 2 reused pass 1's visible sets: one depth load per frame
    loads.clear()
    monkeypatch.setattr(lift_module, "VIEW_CACHE_BYTES", 0)
    fresh = lift(pts, counted, FakeEncoder(hw=(30, 40)), LiftConfig(), text=text)
    assert len(loads) == 2 * len(frames)
    np.testing.assert_array_equal(cached.features, fresh.features)
    np.testing.assert_array_equal(cached.view_count, fresh.view_count)


def test_serial_blas_restores_thread_counts():
    before = [get() for get, _ in _openblas_thread_controls()]
    with _serial_blas():
        assert all(get() == 1 for get, _ in _openblas_thread_controls())
    assert [get() for get, _ in _openblas_thread_controls()] == before
