"""The weight-free and oracle affinities of pooling/baselines.py against hand-computed answers."""

import numpy as np
import pytest
import torch

from geopurify.errors import ConfigError, InputError
from geopurify.pooling import PoolConfig, neighbors, propagate
from geopurify.pooling.baselines import (
    BilateralConfig,
    bilateral_affinity,
    embedding_affinity,
    oracle_affinity,
    uniform_affinity,
    untrained_student,
)


def _scene(v=200, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.random((v, 3))
    nbr = neighbors(centers, PoolConfig(k=12))
    return rng, centers, nbr


def test_uniform_is_the_neighbour_mean():
    rng, _, nbr = _scene()
    X = rng.standard_normal((len(nbr), 4)).astype(np.float32)
    got = propagate(uniform_affinity(nbr), X, 1).numpy()
    np.testing.assert_allclose(got, X[nbr].mean(axis=1), rtol=1e-5, atol=1e-6)


def test_bilateral_weights_hand_computed_and_sharpness_zero_is_uniform():
    nbr = np.array([[1, 2], [0, 2], [0, 1]])
    normals = np.array([[0, 0, 1], [0, 0, 1], [1, 0, 0]], np.float32)
    colors = np.zeros((3, 3), np.float32)
    cfg = BilateralConfig(sharpness=1.0, sigma_normal=1.0, sigma_colour=1.0)
    A = bilateral_affinity(nbr, normals, colors, cfg).to_dense().numpy()
    # row 0: neighbour 1 has the same normal (d = 0), neighbour 2 differs by |(1,0,-1)|^2 = 2
    w = np.array([1.0, np.exp(-2.0)])
    np.testing.assert_allclose(A[0, [1, 2]], w / w.sum(), rtol=1e-5)
    flat = bilateral_affinity(nbr, normals, colors, BilateralConfig(sharpness=0.0)).to_dense()
    torch.testing.assert_close(flat, uniform_affinity(nbr).to_dense())


def test_oracle_never_mixes_classes_where_a_class_neighbour_exists():
    rng, _, nbr = _scene()
    gt = rng.integers(-1, 3, len(nbr))
    A = oracle_affinity(nbr, gt).to_dense().numpy()
    X = np.eye(5, dtype=np.float32)[np.where(gt >= 0, gt, 4)]
    out = propagate(oracle_affinity(nbr, gt), X, 1).numpy()
    has_same = (gt[nbr] == gt[:, None]).any(axis=1)
    assert (out.argmax(1)[has_same] == X.argmax(1)[has_same]).all()
    assert np.allclose(A.sum(1), 1, atol=1e-5)


def test_embedding_affinity_is_the_pooling_rule_and_checks_shapes():
    rng, centers, nbr = _scene()
    emb = rng.standard_normal((len(nbr), 8)).astype(np.float32)
    from geopurify.pooling import build_affinity

    torch.testing.assert_close(embedding_affinity(nbr, emb, 20.0).to_dense(),
                               build_affinity(centers, emb, PoolConfig(k=12)).to_dense(), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError):
        bilateral_affinity(nbr, np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ConfigError):
        BilateralConfig(sharpness=-1)


def test_untrained_student_is_seeded_and_the_training_init():
    import dataclasses

    from geopurify.distill import TrainConfig

    a, b = untrained_student(14, seed=3), untrained_student(14, seed=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)
    d = TrainConfig()
    assert dataclasses.astuple(a.config)[1:4] == (d.width, d.out_dim, d.blocks)  # same architecture as trained


def test_the_ablation_benchmark_scores_these_baselines(monkeypatch):
    """benchmarks/ablation.py's uniform, bilateral and oracle rows use these builders (the same weights to
    the bit), not copies of them that can drift (its own copy normalised rows in float32)."""
    import importlib.util
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ablation.py"
    spec = importlib.util.spec_from_file_location("_ablation_under_test", path)
    ab = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, ab)  # its dataclasses look their module up there
    spec.loader.exec_module(ab)
    rng, _, nbr = _scene(300)
    n = rng.standard_normal((len(nbr), 3)).astype(np.float32)
    room = SimpleNamespace(normals=n / np.linalg.norm(n, axis=1, keepdims=True),
                           colors=rng.random((len(nbr), 3)).astype(np.float32), gt_voxel=rng.integers(0, 5, len(nbr)))
    pairs = [(ab._uniform(room, nbr), uniform_affinity(nbr)),
             (ab._oracle(room, nbr), oracle_affinity(nbr, room.gt_voxel))]
    pairs += [(ab._bilateral(s)(room, nbr), bilateral_affinity(nbr, room.normals, room.colors, BilateralConfig(s)))
              for s in (0.25, 1.0, 8.0)]
    for theirs, ours in pairs:
        assert torch.equal(theirs.col_indices(), ours.col_indices()) and torch.equal(theirs.values(), ours.values())
