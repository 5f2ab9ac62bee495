import numpy as np

from geopurify.geometry import estimate_normals, knn, mesh_normals, voxelize


def test_voxelize_groups_points_and_means():
    pts = np.array([[0.001, 0.001, 0.001], [0.019, 0.0, 0.0], [0.021, 0.0, 0.0], [0.5, 0.5, 0.5]], np.float32)
    g = voxelize(pts, 0.02)
    assert g.num_voxels == 3
    assert g.point_to_voxel[0] == g.point_to_voxel[1] != g.point_to_voxel[2]
    np.testing.assert_allclose(g.centers[g.point_to_voxel[0]], [0.01, 0.0005, 0.0005], atol=1e-6)
    vals = np.arange(8, dtype=np.float32).reshape(4, 2)
    red = g.reduce(vals)
    np.testing.assert_allclose(red[g.point_to_voxel[0]], [1.0, 2.0])
    np.testing.assert_allclose(g.expand(red)[3], [6.0, 7.0])
    # integer coords are the floor grid shifted to start at 0
    assert g.coords.min() == 0 and g.coords.dtype == np.int32


def test_voxelize_large_reduce_matches_add_at():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (20000, 3)).astype(np.float32)
    g = voxelize(pts, 0.1)
    vals = rng.normal(size=(20000, 3))
    ref = np.zeros((g.num_voxels, 3))
    np.add.at(ref, g.point_to_voxel, vals)
    np.testing.assert_allclose(g.reduce(vals), ref / g.counts[:, None], rtol=1e-5, atol=1e-6)


def test_knn_includes_self_and_is_sorted():
    rng = np.random.default_rng(1)
    pts = rng.uniform(size=(500, 3))
    idx, dist = knn(pts, pts, 8)
    assert (idx[:, 0] == np.arange(500)).all()
    assert (np.diff(dist, axis=1) >= 0).all()
    brute = np.argsort(((pts[:, None] - pts[None]) ** 2).sum(-1), axis=1)[:, :8]
    assert (np.sort(idx, 1) == np.sort(brute, 1)).all()


def test_normals_of_a_plane():
    rng = np.random.default_rng(2)
    pts = np.c_[rng.uniform(size=(2000, 2)), np.zeros(2000)]
    n = estimate_normals(pts, k=12)
    assert np.abs(np.abs(n[:, 2]) - 1).max() < 1e-6
    # mesh normals of one triangle pointing +z
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    np.testing.assert_allclose(mesh_normals(v, np.array([[0, 1, 2]])), np.tile([0, 0, 1], (3, 1)), atol=1e-6)


def test_mesh_normals_match_a_naive_loop():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(50, 3)).astype(np.float32)
    f = rng.integers(0, 50, size=(200, 3))
    ref = np.zeros((50, 3))
    for tri in f:
        a, b, c = v[tri].astype(np.float64)
        for i in tri:
            ref[i] += np.cross(b - a, c - a)
    norm = np.linalg.norm(ref, axis=1, keepdims=True)
    ref = np.where(norm > 0, ref / np.maximum(norm, 1e-12), [0, 0, 1])
    np.testing.assert_allclose(mesh_normals(v, f), ref, atol=1e-5)
