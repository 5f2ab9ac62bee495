from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from geopurify.encoders import (
    ENCODERS,
    CachedEncoder,
    Encoder,
    FeatureMap,
    build_encoder,
    default_cache_dir,
    load_text_embeddings,
)
from geopurify.errors import ConfigError, FrameError, InputError


def frame(fid):
    return SimpleNamespace(frame_id=str(fid), color=lambda: np.zeros((8, 8, 3), np.uint8))


def scene(root: Path, name="s0"):
    return SimpleNamespace(root=root, name=name)


def test_dense_and_segment_files(tmp_path):
    d = tmp_path / "features_2d"
    d.mkdir()
    feat = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float16)
    np.savez(d / "0.npz", feat=feat)
    seg = np.array([[0, 1, -1], [2, 2, 0]])
    emb = np.eye(3, dtype=np.float32)
    np.savez(d / "1.npz", segments=seg, embeddings=emb)
    enc = build_encoder("precomputed", scene=scene(tmp_path), cache_dir=tmp_path / "cache")
    assert not isinstance(enc, CachedEncoder)  # already on disk: never cached
    m0 = enc.encode(frame(0))
    np.testing.assert_array_equal(m0.dense, feat)
    m1 = enc.encode(frame(1))
    assert m1.segments.dtype == np.int32 and m1.dim == 3
    f, valid = m1.sample(np.array([0.5, 2.5, 1.5]), np.array([0.5, 0.5, 1.5]), (2, 3))
    assert valid.tolist() == [True, False, True]
    np.testing.assert_array_equal(f[[0, 2]], emb[[0, 2]])
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "arrays,match",
    [
        ({"segments": np.array([[0, 3]]), "embeddings": np.ones((3, 2))}, "segment ids range over"),
        ({"segments": np.array([[0, -2]]), "embeddings": np.ones((3, 2))}, "segment ids range over"),
        ({"feat": np.array([[[np.nan, 1.0]]])}, "NaN or infinite"),
        ({"segments": np.array([[0]]), "embeddings": np.array([[np.inf, 1.0]])}, "NaN or infinite"),
        ({"feat": np.ones((2, 2))}, "'feat' must be"),
        ({"other": np.ones(2)}, "expected 'feat'"),
    ],
)
def test_bad_files_raise_frame_error_naming_file(tmp_path, arrays, match):
    (tmp_path / "features_2d").mkdir()
    np.savez(tmp_path / "features_2d" / "7.npz", **arrays)
    enc = build_encoder("precomputed", scene=scene(tmp_path))
    with pytest.raises(FrameError, match=match) as e:
        enc.encode(frame(7))
    assert "7.npz" in str(e.value) and e.value.reason == "bad_features"


def test_truncated_and_missing_files(tmp_path):
    (tmp_path / "features_2d").mkdir()
    (tmp_path / "features_2d" / "3.npz").write_bytes(b"PK\x03\x04 truncated")
    enc = build_encoder("precomputed", scene=scene(tmp_path))
    with pytest.raises(FrameError, match="3.npz: unreadable"):
        enc.encode(frame(3))
    with pytest.raises(FrameError, match="4.npz") as e:
        enc.encode(frame(4))
    assert e.value.reason == "missing_features"


def test_dimension_change_between_frames_is_input_error(tmp_path):
    d = tmp_path / "features_2d"
    d.mkdir()
    np.savez(d / "0.npz", feat=np.ones((2, 2, 4), np.float32))
    np.savez(d / "1.npz", feat=np.ones((2, 2, 5), np.float32))
    enc = build_encoder("precomputed", scene=scene(tmp_path))
    enc.encode(frame(0))
    with pytest.raises(InputError, match=r"1.npz: feature dimension 5 differs from 4 in 0.npz") as e:
        enc.encode(frame(1))
    assert not isinstance(e.value, FrameError)


def test_precomputed_needs_a_root():
    with pytest.raises(ConfigError, match="root=PATH"):
        build_encoder("precomputed")


def test_unknown_encoder_lists_names():
    with pytest.raises(ConfigError, match="clip, lseg, precomputed, xdecoder"):
        build_encoder("nope")


def test_load_text_embeddings(tmp_path):
    p = tmp_path / "text_embeddings.npz"
    np.savez(p, names=np.array(["wall", "chair"]), embeddings=np.array([[3.0, 4.0], [0.0, 2.0]]))
    t = load_text_embeddings(p)
    assert t.names == ["wall", "chair"] and t.embeddings.dtype == np.float32
    np.testing.assert_allclose(t.embeddings, [[0.6, 0.8], [0.0, 1.0]])
    cases = [
        ({"names": np.array(["a"]), "embeddings": np.ones((2, 3))}, r"'embeddings' must be float \(1, D\)"),
        ({"names": np.array(["a"]), "embeddings": np.array([[np.nan]])}, "NaN"),
        ({"names": np.array(["a", "b"]), "embeddings": np.array([[1.0], [0.0]])}, "b has an all-zero"),
        ({"embeddings": np.ones((1, 2))}, "needs arrays 'names' and 'embeddings'"),
        ({"names": np.array(["a", "a"]), "embeddings": np.ones((2, 2))}, "duplicate"),
        ({"names": np.array([], "U1"), "embeddings": np.zeros((0, 4))}, "no class embeddings"),
        ({"names": np.array(["a"]), "embeddings": np.zeros((1, 0))}, "no class embeddings"),
    ]
    for arrays, match in cases:
        np.savez(p, **arrays)
        with pytest.raises(InputError, match=match) as e:
            load_text_embeddings(p)
        assert str(p) in str(e.value)
    with pytest.raises(InputError, match="not found"):
        load_text_embeddings(tmp_path / "nope.npz")


class CountingEncoder(Encoder):
    name = "counting"

    def __init__(self, segments=False):
        self.calls = 0
        self.segments = segments

    def encode(self, frame):
        self.calls += 1
        rng = np.random.default_rng(int(frame.frame_id))
        if self.segments:
            return FeatureMap(segments=np.array([[0, -1]]), embeddings=rng.normal(size=(1, 3)))
        return FeatureMap(dense=rng.normal(size=(3, 4, 5)).astype(np.float32))

    def cache_key(self):
        return "counting-v1"


@pytest.mark.parametrize("segments", [False, True])
def test_cache_is_hit_on_second_run(tmp_path, monkeypatch, segments):
    monkeypatch.setitem(ENCODERS._items, "counting", lambda scene=None, **kw: CountingEncoder(**kw))
    monkeypatch.setenv("GEOPURIFY_CACHE", str(tmp_path / "gp-cache"))
    assert default_cache_dir() == tmp_path / "gp-cache"
    frames = [frame(i) for i in range(3)]
    a = build_encoder("counting", scene=scene(tmp_path), segments=segments)
    first = a.encode_batch(frames)
    assert isinstance(a, CachedEncoder) and a.inner.calls == 3 and a.misses == 3
    files = sorted((tmp_path / "gp-cache").rglob("*.npz"))
    assert len(files) == 3 and not list((tmp_path / "gp-cache").rglob("*.tmp"))
    b = build_encoder("counting", scene=scene(tmp_path), segments=segments)
    second = b.encode_batch(frames)
    assert b.inner.calls == 0 and b.hits == 3
    for x, y in zip(first, second):
        arr_x = x.dense if x.dense is not None else x.embeddings
        arr_y = y.dense if y.dense is not None else y.embeddings
        assert arr_y.dtype == np.float16
        np.testing.assert_array_equal(arr_x, arr_y)  # first run returns the stored float16 values
    # another scene (same name, other folder) has its own cache
    other = tmp_path / "other"
    other.mkdir()
    c = build_encoder("counting", scene=scene(other), segments=segments)
    c.encode_batch(frames[:1])
    assert c.inner.calls == 1
    # cache=False bypasses it; a corrupt cache file is recomputed
    assert not isinstance(build_encoder("counting", scene=scene(tmp_path), cache=False), CachedEncoder)
    files[0].write_bytes(b"garbage")
    d = build_encoder("counting", scene=scene(tmp_path), segments=segments)
    d.encode_batch(frames)
    assert d.inner.calls == 1
