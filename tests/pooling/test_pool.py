"""Geometry-Guided Pooling against naive dense references and a toy scene with known labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geopurify.errors import ConfigError, InputError
from geopurify.pooling import (
    PoolConfig,
    build_affinity,
    class_logits,
    neighbors,
    pool_logits,
    propagate,
    purify,
)


def naive_affinity(centers: np.ndarray, emb: np.ndarray, k: int, sharpen: float, self_in: bool = True):
    """Dense (V, V) float64 reference: brute-force kNN, cosine, softmax, row by row."""
    v = len(centers)
    d2 = ((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    if not self_in:
        np.fill_diagonal(d2, np.inf)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    dense = np.zeros((v, v))
    for i in range(v):
        nb = np.argsort(d2[i], kind="stable")[:k]
        logits = sharpen * (unit[nb] @ unit[i])
        w = np.exp(logits - logits.max())
        dense[i, nb] = w / w.sum()
    return dense


def random_scene(v: int = 200, e: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((v, 3)), rng.standard_normal((v, e)).astype(np.float32)


@pytest.mark.parametrize("k,sharpen", [(1, 20.0), (8, 20.0), (33, 5.0), (200, 20.0)])
def test_build_affinity_matches_dense_reference(k, sharpen):
    centers, emb = random_scene()
    A = build_affinity(centers, emb, PoolConfig(k=k, sharpen=sharpen, include_self=True))
    assert A.layout == torch.sparse_csr and A.dtype == torch.float32
    ref = naive_affinity(centers, emb.astype(np.float64), k, sharpen)
    np.testing.assert_allclose(A.to_dense().numpy(), ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(A.to_dense().sum(1).numpy(), 1.0, atol=1e-5)
    assert A._nnz() == 200 * min(k, 200)


def test_self_is_a_neighbour_and_gets_the_largest_weight():
    centers, emb = random_scene()
    dense = build_affinity(centers, emb, PoolConfig(k=12, include_self=True)).to_dense().numpy()
    # cos(e_i, e_i) = 1 is the maximum, so the diagonal is the row maximum.
    assert np.all(np.diag(dense) > 0)
    np.testing.assert_allclose(np.diag(dense), dense.max(1), rtol=1e-6)


def test_exclude_self_matches_released_code_convention():
    centers, emb = random_scene(v=150)
    A = build_affinity(centers, emb, PoolConfig(k=10, include_self=False))
    dense = A.to_dense().numpy()
    assert np.all(np.diag(dense) == 0)
    assert np.all((dense > 0).sum(1) == 10)
    np.testing.assert_allclose(dense, naive_affinity(centers, emb.astype(np.float64), 10, 20.0, False), atol=1e-5)


def test_exclude_self_with_duplicate_centres_drops_exactly_one_entry():
    centers = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    nbr = neighbors(centers, PoolConfig(k=2, include_self=False))
    assert nbr.shape == (4, 2)
    assert not np.any(nbr == np.arange(4)[:, None])
    assert sorted(nbr[0].tolist()) == [1, 2] and sorted(nbr[1].tolist()) == [0, 2]


def test_chunk_size_does_not_change_the_matrix():
    centers, emb = random_scene(v=300, e=32)
    ref = build_affinity(centers, emb, PoolConfig(k=20, chunk=None, include_self=True)).to_dense()
    for chunk in (1, 7, 299, 300, 10_000):
        got = build_affinity(centers, emb, PoolConfig(k=20, chunk=chunk, include_self=True)).to_dense()
        # Chunks change the summation order of the row normalisation: float32 rounding, not exact equality.
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))


def test_memory_budget_bounds_the_chunk():
    cfg = PoolConfig(memory_mb=1.0)
    rows = cfg.rows_per_chunk(96)
    assert rows * 96 * 16 <= 2**20 < (rows + 1) * 96 * 16
    assert PoolConfig(memory_mb=1e-6).rows_per_chunk(96) == 1
    assert PoolConfig(chunk=5).rows_per_chunk(96) == 5


@pytest.mark.parametrize("steps", [0, 1, 5, 18])
def test_propagate_equals_dense_matrix_power(steps):
    centers, emb = random_scene(v=120)
    A = build_affinity(centers, emb, PoolConfig(k=9, include_self=True))
    X = np.random.default_rng(1).standard_normal((120, 6)).astype(np.float32)
    got = propagate(A, X, steps).numpy()
    dense = A.to_dense().double().numpy()
    np.testing.assert_allclose(got, np.linalg.matrix_power(dense, steps) @ X, atol=1e-5)


def test_purify_mirrors_input_type_and_matches_propagate():
    centers, emb = random_scene(v=100)
    X = np.random.default_rng(2).standard_normal((100, 4)).astype(np.float32)
    cfg = PoolConfig(k=7, steps=3)
    res = purify(centers, emb, X, cfg)
    assert isinstance(res.values, np.ndarray) and res.values.dtype == np.float32
    assert res.nnz == 700 and res.seconds_knn >= 0 and res.seconds_pool >= 0
    ref = propagate(build_affinity(centers, emb, cfg), X, 3).numpy()
    np.testing.assert_allclose(res.values, ref, rtol=1e-5, atol=1e-6)
    res_t = purify(torch.from_numpy(centers), torch.from_numpy(emb), torch.from_numpy(X), cfg)
    assert isinstance(res_t.values, torch.Tensor)
    np.testing.assert_allclose(res_t.values.numpy(), ref, rtol=1e-5, atol=1e-6)


def _check_argmax_agreement(a: np.ndarray, b: np.ndarray, margin_source: np.ndarray) -> None:
    """Labels agree except where the top-2 margin is within float rounding."""
    la, lb = a.argmax(1), b.argmax(1)
    top2 = np.sort(margin_source, axis=1)[:, -2:]
    tiny = (top2[:, 1] - top2[:, 0]) < 1e-5
    assert np.all((la == lb) | tiny)
    assert (la == lb).mean() > 0.99


@pytest.mark.parametrize("normalize", [False, True])
def test_pooling_logits_equals_pooling_features_then_classifying(normalize):
    rng = np.random.default_rng(3)
    v, d, c = 400, 64, 20
    centers = rng.random((v, 3))
    emb = rng.standard_normal((v, 8)).astype(np.float32)
    feats = (rng.standard_normal((v, d)) * rng.uniform(0.1, 5.0, (v, 1))).astype(np.float32)
    text = rng.standard_normal((c, d)).astype(np.float32)
    cfg = PoolConfig(k=16, steps=18)
    # Route A: pool the D-dim features (unit rows first when normalize), then cosine-classify.
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True) if normalize else feats
    pooled = purify(centers, emb, x, cfg).values
    t_unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    cos_a = (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)) @ t_unit.T
    # Route B: pool the C class logits.
    res_b = pool_logits(centers, emb, feats, text, cfg, normalize_features=normalize)
    np.testing.assert_allclose(res_b.values, pooled @ t_unit.T, atol=1e-4)
    _check_argmax_agreement(cos_a, res_b.values, cos_a)


def test_class_logits_are_scaled_cosines():
    rng = np.random.default_rng(4)
    f, t = rng.standard_normal((10, 5)), rng.standard_normal((3, 5))
    got = class_logits(f, t, normalize_features=True).numpy()
    ref = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T
    np.testing.assert_allclose(got, ref, atol=1e-6)


def two_planes(noise: float, seed: int = 0):
    """Floor z=0 and wall x=0 on a 2 cm grid meeting at an edge; labels 0 (floor) / 1 (wall)."""
    g = np.arange(40) * 0.02
    a, b = np.meshgrid(g, g, indexing="ij")
    floor = np.stack([a.ravel() + 0.02, b.ravel(), np.zeros(a.size)], 1)  # x >= 0.02
    wall = np.stack([np.zeros(a.size), b.ravel(), a.ravel()], 1)  # z >= 0
    centers = np.concatenate([floor, wall])
    truth = np.repeat([0, 1], a.size)
    rng = np.random.default_rng(seed)
    noisy = np.where(rng.random(len(truth)) < noise, 1 - truth, truth)
    feats = np.eye(2, dtype=np.float32)[noisy] + rng.normal(0, 0.1, (len(truth), 2)).astype(np.float32)
    return centers, truth, feats


def test_toy_scene_pooling_removes_label_noise_and_respects_the_edge():
    centers, truth, feats = two_planes(noise=0.3)
    before = (feats.argmax(1) == truth).mean()
    assert 0.6 < before < 0.8
    student = np.eye(2, dtype=np.float32)[truth]  # a perfect student: plane id one-hot
    guided = purify(centers, student, feats, PoolConfig(k=96, steps=18)).values.argmax(1)
    assert (guided == truth).mean() == 1.0
    # Without geometry-aware affinities (all embeddings equal: uniform kNN mean) the edge blurs.
    plain = purify(centers, np.ones_like(student), feats, PoolConfig(k=96, steps=18)).values.argmax(1)
    edge = np.maximum(centers[:, 0], centers[:, 2]) < 0.1  # within 10 cm of the edge line
    assert (guided[edge] == truth[edge]).all()
    assert (plain[edge] == truth[edge]).mean() < 0.9  # measured 0.64 with seed 0


def test_bad_inputs_raise_clear_errors():
    centers, emb = random_scene(v=20)
    with pytest.raises(InputError, match="rows"):
        build_affinity(centers, emb[:10])
    with pytest.raises(InputError, match=r"\(V, 3\)"):
        build_affinity(centers[:, :2], emb)
    bad = emb.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        build_affinity(centers, bad)
    with pytest.raises(InputError, match="rows"):
        purify(centers, emb, np.zeros((19, 2), np.float32))
    with pytest.raises(InputError, match="rows"):
        propagate(build_affinity(centers, emb, PoolConfig(k=3)), np.zeros((5, 2)), 2)
    for kwargs in ({"k": 0}, {"steps": -1}, {"sharpen": float("nan")}, {"chunk": 0}, {"memory_mb": 0}):
        with pytest.raises(ConfigError):
            PoolConfig(**kwargs)


@pytest.mark.cuda
def test_gpu_matches_cpu():
    centers, emb = random_scene(v=500, e=32)
    X = np.random.default_rng(5).standard_normal((500, 8)).astype(np.float32)
    cfg = PoolConfig(k=24, steps=18)
    cpu = purify(centers, emb, X, cfg).values
    gpu = purify(centers, torch.from_numpy(emb).cuda(), torch.from_numpy(X).cuda(), cfg).values
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu, atol=1e-4)


def test_affinity_computes_at_most_one_chunk_at_a_time(monkeypatch):
    centers, emb = random_scene(v=250, e=32)
    sizes: list[int] = []
    real = torch.sparse.sampled_addmm

    def spy(pattern, *args, **kwargs):
        sizes.append(pattern.shape[0])
        return real(pattern, *args, **kwargs)

    monkeypatch.setattr(torch.sparse, "sampled_addmm", spy)
    cfg = PoolConfig(k=16, memory_mb=16 * 16 * 40 / 2**20)  # exactly 40 rows of 16 neighbours
    build_affinity(centers, emb, cfg)
    assert cfg.rows_per_chunk(16) == 40
    assert max(sizes) == 40 and sum(sizes) == 250


def test_sampled_cosines_equal_the_gathered_ones():
    # the CPU's sampled product and the gather + vecdot kept for other devices give the same cosines
    from geopurify.pooling.pool import _neighbour_cosines

    rng = np.random.default_rng(8)
    emb = torch.from_numpy(rng.standard_normal((300, 24)).astype(np.float32))
    unit = emb / emb.norm(dim=1, keepdim=True)
    cols = torch.from_numpy(np.sort(rng.integers(0, 300, (120, 10)), axis=1)).int()
    a = _neighbour_cosines(unit, slice(50, 170), cols, sampled=True)
    b = _neighbour_cosines(unit, slice(50, 170), cols.long(), sampled=False)
    ref = (unit[50:170, None, :].double() * unit[cols.long()].double()).sum(-1)
    torch.testing.assert_close(a.double(), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(b.double(), ref, rtol=0, atol=1e-6)


def test_k_larger_than_scene_is_clipped():
    centers, emb = random_scene(v=6)
    assert build_affinity(centers, emb, PoolConfig(k=96, include_self=True))._nnz() == 36
    dense = build_affinity(centers, emb, PoolConfig(k=96, include_self=False)).to_dense().numpy()
    assert np.all((dense > 0).sum(1) == 5) and np.all(np.diag(dense) == 0)


@pytest.mark.parametrize("block", [1, 7, 32, 64, None])
def test_blocked_propagation_equals_whole_matrix_products(block):
    # the CPU carries column blocks through all steps; columns are independent, so any block
    # gives the reference X <- A X on all columns at once (float rounding only)
    centers, emb = random_scene(v=400)
    A = build_affinity(centers, emb, PoolConfig(k=16))
    X = np.random.default_rng(2).standard_normal((400, 70)).astype(np.float32)
    ref = torch.from_numpy(X)
    for _ in range(18):
        ref = A @ ref
    got = propagate(A, X, 18, block=block)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    dense = np.linalg.matrix_power(A.to_dense().double().numpy(), 18) @ X
    np.testing.assert_allclose(got.numpy(), dense, rtol=1e-4, atol=1e-5)


def _brute_grid_neighbours(coords: np.ndarray, k: int, include_self: bool) -> list[np.ndarray]:
    """Per voxel: its k nearest voxels on the grid by (squared offset length, offset), brute force."""
    out = []
    for i, c in enumerate(coords):
        off = coords - c
        d2 = (off**2).sum(1)
        order = np.lexsort((off[:, 2], off[:, 1], off[:, 0], d2))
        if not include_self:
            order = order[order != i]
        out.append(order[:k])
    return out


@pytest.mark.parametrize("include_self", [False, True])
def test_stencil_neighbours_are_the_grid_knn_in_offset_order(include_self, monkeypatch):
    from geopurify.pooling import stencil

    rng = np.random.default_rng(11)
    # a thin wall and a floor on a grid, a few isolated far voxels (they need the fallback search)
    a, b = np.meshgrid(np.arange(25), np.arange(12), indexing="ij")
    wall = np.stack([np.zeros(a.size, int), a.ravel(), b.ravel()], 1)
    floor = np.stack([a.ravel() + 1, b.ravel(), np.zeros(a.size, int)], 1)
    far = rng.integers(60, 200, (4, 3))
    coords = np.unique(np.concatenate([wall, floor, far]), axis=0)
    coords = coords[rng.permutation(len(coords))]
    for dense in (True, False):  # the dense cell grid and the sorted-key lookup
        monkeypatch.setattr(stencil, "DENSE_CELLS", 2**40 if dense else 0)
        got = stencil.stencil_neighbors(coords, 20, include_self)
        want = _brute_grid_neighbours(coords, 20, include_self)
        near = coords.max(1) < 60
        for i in np.flatnonzero(near):  # fixed offset order: exactly the brute-force rows
            np.testing.assert_array_equal(got[i], want[i])
        for i in np.flatnonzero(~near):  # fallback rows: the same set of distances
            dg, dw = (np.sort(((coords[idx] - coords[i]) ** 2).sum(1)) for idx in (got[i], want[i]))
            np.testing.assert_array_equal(dg, dw)


def test_stencil_option_in_purify_needs_coords_and_differs_only_in_ties():
    centers, truth, feats = two_planes(noise=0.3)
    coords = np.rint(centers / 0.02).astype(np.int64)
    emb = np.eye(2, dtype=np.float32)[truth]
    cfg = PoolConfig(k=24, steps=6, knn="stencil")
    with pytest.raises(ConfigError):
        purify(centers, emb, feats, cfg)
    with pytest.raises(ConfigError):
        PoolConfig(knn="ball")
    # centres exactly on the grid: same neighbour distances as the KD-tree (ties may pick others)
    nb_s = neighbors(centers, cfg, coords)
    nb_k = neighbors(centers, PoolConfig(k=24))
    d = lambda nb: np.sort(((centers[nb] - centers[:, None]) ** 2).sum(-1), axis=1)  # noqa: E731
    np.testing.assert_allclose(d(nb_s), d(nb_k), atol=1e-9)
    out = purify(centers, emb, feats, cfg, coords=coords).values
    assert (out.argmax(1) == truth).mean() > 0.99


def test_build_affinity_takes_coords_for_the_stencil_option():
    centers, truth, feats = two_planes(noise=0.3)
    coords = np.rint(centers / 0.02).astype(np.int64)
    emb = np.eye(2, dtype=np.float32)[truth]
    cfg = PoolConfig(k=24, steps=6, knn="stencil")
    A = build_affinity(centers, emb, cfg, coords=coords)
    nb = neighbors(centers, cfg, coords)
    np.testing.assert_array_equal(np.sort(A.col_indices().numpy().reshape(len(centers), -1), axis=1),
                                  np.sort(nb, axis=1))  # fmt: skip


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_csr_product_equals_dense_product_with_uneven_and_empty_rows(index_dtype):
    # the CPU product is embedding_bag over the CSR arrays: rows of any length, empty rows give 0
    from geopurify.pooling.pool import csr_product

    rng = np.random.default_rng(5)
    dense = rng.random((50, 50)) * (rng.random((50, 50)) < 0.2)
    dense[[3, 17, 49]] = 0.0  # empty rows, the last one included
    A = torch.from_numpy(dense.astype(np.float32)).to_sparse_csr()
    A = torch.sparse_csr_tensor(A.crow_indices().to(index_dtype), A.col_indices().to(index_dtype), A.values(), A.shape)
    x = rng.standard_normal((50, 9)).astype(np.float32)
    got = csr_product(A)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, dense @ x.astype(np.float64), rtol=1e-5, atol=1e-6)
    assert np.all(got[[3, 17, 49]] == 0.0)


def test_csr_product_falls_back_to_matmul_for_other_layouts():
    from geopurify.pooling.pool import csr_product

    rng = np.random.default_rng(6)
    dense = torch.from_numpy(rng.random((12, 12)))
    x = torch.from_numpy(rng.standard_normal((12, 3)))
    for A in (dense, dense.to_sparse(), dense.to_sparse_csr(), dense.float().to_sparse()):
        xx = x.to(A.dtype)
        torch.testing.assert_close(csr_product(A)(xx), (dense.to(A.dtype) @ xx), rtol=1e-5, atol=1e-6)


def test_propagate_on_an_empty_scene():
    A = torch.zeros((0, 0)).to_sparse_csr()
    assert propagate(A, np.zeros((0, 5), np.float32), 18).shape == (0, 5)


def test_column_block_rule():
    from geopurify.pooling.pool import column_block

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert column_block(66_000, 512, cpu) == 64  # a 64-column block fits the 32 MiB L3
    assert column_block(165_000, 512, cpu) == 48  # only a 48-column block fits
    assert column_block(1_000_000, 512, cpu) == 128  # none fits: wide blocks read the indices less
    assert column_block(66_000, 20, cpu) == 20 and column_block(66_000, 512, gpu) == 512
    assert column_block(66_000, 512, cpu, block=7) == 7 and column_block(10, 5, cpu, block=99) == 5


@pytest.mark.parametrize("bad", [-1, 50, 2**32 + 3])
def test_out_of_range_neighbour_indices_are_refused(bad):
    # 2**32 + 3 would wrap onto 3 if the indices were narrowed to int32 before the check
    from geopurify.pooling import affinity_from_neighbors

    rng = np.random.default_rng(9)
    nbr = rng.integers(0, 50, (50, 4)).astype(np.int64)
    nbr[7, 2] = bad
    with pytest.raises(InputError, match="must lie in"):
        affinity_from_neighbors(nbr, rng.standard_normal((50, 8)).astype(np.float32), PoolConfig(k=4))
    with pytest.raises(InputError, match="must lie in"):
        affinity_from_neighbors(torch.from_numpy(nbr), rng.standard_normal((50, 8)).astype(np.float32), PoolConfig(k=4))
