"""classify / similarity / queries against naive numpy references and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geopurify.errors import ConfigError, InputError
from geopurify.segment import classify, mask_from_scores, query_scores, rank_phrases, similarity


def naive_cosine(f: np.ndarray, t: np.ndarray) -> np.ndarray:
    f = f.astype(np.float64)
    t = t.astype(np.float64)
    return (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T


def test_hand_computed_case():
    f = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, -0.1]], np.float32)
    t = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    s = similarity(f, t)
    r = np.sqrt(0.5)
    expected = np.array([[1, 0, r], [0, 1, r], [r, r, 1], [-0.99503719, -0.09950372, -0.77395730]])
    np.testing.assert_allclose(s, expected, atol=1e-6)
    assert classify(f, t).tolist() == [0, 1, 2, 1]


@pytest.mark.parametrize("chunk", [1, 13, 1000, 65536])
def test_classify_and_similarity_match_naive_for_any_chunk(chunk):
    rng = np.random.default_rng(0)
    f = (rng.standard_normal((1000, 48)) * rng.uniform(0.01, 10, (1000, 1))).astype(np.float32)
    t = rng.standard_normal((20, 48)).astype(np.float32)
    ref = naive_cosine(f, t)
    sim = similarity(f, t, chunk=chunk)
    assert sim.dtype == np.float32 and sim.shape == (1000, 20)
    np.testing.assert_allclose(sim, ref, atol=1e-5)
    labels = classify(f, t, chunk=chunk)
    assert labels.dtype == np.int64
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5
    assert np.array_equal(labels[clear], ref.argmax(1)[clear])


def test_torch_input_gives_torch_output_and_same_labels():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((50, 8)).astype(np.float32)
    t = rng.standard_normal((4, 8)).astype(np.float32)
    out = classify(torch.from_numpy(f), t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    assert out.numpy().tolist() == classify(f, t).tolist()


def test_classify_of_logits_with_identity_text_is_argmax():
    logits = np.random.default_rng(2).standard_normal((200, 20)).astype(np.float32)
    assert np.array_equal(classify(logits, np.eye(20, dtype=np.float32)), logits.argmax(1))


def test_bad_inputs():
    f = np.zeros((3, 4), np.float32)
    with pytest.raises(InputError, match="D=4 but text embeddings have D=5"):
        classify(f, np.ones((2, 5), np.float32))
    with pytest.raises(InputError, match="C = 0"):
        classify(f, np.ones((0, 4), np.float32))
    with pytest.raises(InputError, match="NaN"):
        classify(np.array([[np.nan, 1, 0, 0]], np.float32), np.ones((2, 4), np.float32))
    with pytest.raises(InputError, match="2-D"):
        similarity(np.zeros(4), np.ones((2, 4)))
    with pytest.raises(ConfigError):
        classify(f, np.ones((2, 4)), chunk=0)


def test_query_scores_accepts_a_single_phrase():
    rng = np.random.default_rng(3)
    f, q = rng.standard_normal((30, 6)), rng.standard_normal(6)
    s = query_scores(f, q)
    assert s.shape == (30, 1)
    np.testing.assert_allclose(s[:, 0], naive_cosine(f, q[None])[:, 0], atol=1e-6)


def test_mask_from_scores_threshold_and_top():
    s = np.array([0.1, 0.9, 0.5, 0.9, -0.2, 0.7], np.float32)
    assert mask_from_scores(s, threshold=0.5).tolist() == [1, 2, 3, 5]
    assert mask_from_scores(s, threshold=0.95).tolist() == []
    assert mask_from_scores(s, top=3).tolist() == [1, 3, 5]
    assert mask_from_scores(s, top=1).tolist() == [1]  # tie 0.9/0.9: lower index wins
    assert mask_from_scores(s, top=100).tolist() == [0, 1, 2, 3, 4, 5]
    assert mask_from_scores(torch.tensor([np.nan, 0.0, 1.0]), top=2).tolist() == [1, 2]
    assert mask_from_scores(s, top=2).dtype == np.int64
    with pytest.raises(ConfigError, match="exactly one"):
        mask_from_scores(s)
    with pytest.raises(ConfigError, match="exactly one"):
        mask_from_scores(s, threshold=0.1, top=2)
    with pytest.raises(ConfigError):
        mask_from_scores(s, top=0)
    with pytest.raises(InputError, match="1-D"):
        mask_from_scores(s[None], top=1)


def test_rank_phrases_finds_the_matching_phrase():
    rng = np.random.default_rng(4)
    text = rng.standard_normal((5, 32)).astype(np.float32)
    # Points 0..99 are noisy copies of phrase 3, points 100..199 of phrase 1.
    f = np.concatenate([text[3] + 0.8 * rng.standard_normal((100, 32)), text[1] + 0.8 * rng.standard_normal((100, 32))])
    names = ["chair", "table", "wall", "lamp", "door"]
    r = rank_phrases(f, text, names, points=np.arange(100))
    assert r.best == "lamp" and r.order[0] == 3
    assert np.all(np.diff(r.mean_score) <= 0)
    assert r.votes[0] > 0.9 and abs(r.votes.sum() - 1) < 1e-6
    mask = np.zeros(200, bool)
    mask[100:] = True
    assert rank_phrases(f, text, names, points=mask).best == "table"
    np.testing.assert_allclose(rank_phrases(f, text).mean_score[0], naive_cosine(f, text).mean(0).max(), atol=1e-6)
    with pytest.raises(InputError, match="empty"):
        rank_phrases(f, text, names, points=np.array([], np.int64))
    with pytest.raises(InputError, match="names"):
        rank_phrases(f, text, names[:2])


def test_query_phrases_of_one_file_name_keep_their_own_files(tmp_path):
    """`query OUT 'tv/stand' 'tv stand'` (two phrases, two heat maps): both slugged to tv_stand, so the second
    phrase's PLY, scores and picture overwrote the first's and both results pointed at the same files."""
    import json

    from geopurify import api

    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 2, (400, 3)).astype(np.float32)
    feats = np.zeros((400, 2), np.float16)
    feats[:200, 0], feats[200:, 1] = 1, 1
    np.save(out / "points.npy", pts)
    np.save(out / "colors.npy", np.full((400, 3), 128, np.uint8))
    np.save(out / "features.npy", feats)
    np.savetxt(out / "labels.txt", np.repeat([0, 1], 200), fmt="%d")
    (out / "names.json").write_text(json.dumps(["tv/stand", "tv stand"]))
    names = np.array(["tv/stand", "tv stand"])
    np.savez(out / "text_embeddings.npz", names=names, embeddings=np.eye(2, dtype=np.float32))
    (out / "run.json").write_text(json.dumps({"scene": "toy", "status": "complete"}))

    res = api.query(out, ["tv/stand", "tv stand"])
    a, b = res.files["tv/stand"], res.files["tv stand"]
    assert not set(a) & set(b)
    for ph, files in res.files.items():
        j = res.phrases.index(ph)
        np.testing.assert_allclose(np.load(files[1]).astype(np.float32), res.scores[:, j], atol=1e-3)
        assert files[2].is_file()
    from geopurify.segment.query import phrase_slugs

    assert phrase_slugs(["tv/stand", "tv stand", "tv/stand", "x" * 70, "x" * 61]) == [
        "tv_stand", "tv_stand_2", "tv_stand", "x" * 60, "x" * 60 + "_2"]
    assert phrase_slugs(["a", "a_2", "A"]) == ["a", "a_2", "a_3"]


def test_a_query_without_a_mask_removes_an_earlier_runs_mask_of_the_phrase(tmp_path):
    """`query OUT chair --top 10`, then `query OUT chair`: the old mask stayed beside the new scores."""
    import json

    from geopurify import api

    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    np.save(out / "points.npy", rng.uniform(0, 2, (50, 3)).astype(np.float32))
    np.save(out / "colors.npy", np.full((50, 3), 128, np.uint8))
    np.save(out / "features.npy", rng.normal(size=(50, 2)).astype(np.float16))
    np.savetxt(out / "labels.txt", np.zeros(50, int), fmt="%d")
    (out / "names.json").write_text(json.dumps(["chair", "wall"]))
    np.savez(out / "text_embeddings.npz", names=np.array(["chair", "wall"]), embeddings=np.eye(2, dtype=np.float32))
    (out / "run.json").write_text(json.dumps({"scene": "toy", "status": "complete"}))
    api.query(out, ["chair"], top=10)
    assert (out / "query" / "chair_mask.txt").is_file()
    api.query(out, ["chair"])
    assert not (out / "query" / "chair_mask.txt").exists() and (out / "query" / "chair.npy").is_file()
