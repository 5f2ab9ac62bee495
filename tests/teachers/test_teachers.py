"""Teachers: colour/shape descriptors, FH superpoints, the three geometric variants, precomputed, sonata."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from geopurify.errors import ConfigError, InputError, MissingDependencyError
from geopurify.geometry import voxelize
from geopurify.io.scene import Scene
from geopurify.teachers import (
    TEACHERS,
    build_teacher,
    felzenszwalb,
    rgb_to_lab,
    shape_descriptors,
    voxel_edges,
)


def corner_scene(n: int = 20, faces: bool = False) -> tuple[Scene, np.ndarray]:
    """Floor (z=0, grey) and wall (x=0, red) of n x n points at 2 cm; label 0 floor, 1 wall."""
    s = 0.02
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    floor = np.stack([(a.ravel() + 1) * s, b.ravel() * s, np.zeros(a.size)], 1)
    wall = np.stack([np.zeros(a.size), b.ravel() * s, (a.ravel() + 1) * s], 1)
    pts = (np.concatenate([floor, wall]) + s / 2).astype(np.float32)
    label = np.repeat([0, 1], n * n)
    colors = np.where(label[:, None] == 0, [0.5, 0.5, 0.5], [0.8, 0.1, 0.1]).astype(np.float32)
    normals = np.where(label[:, None] == 0, [0, 0, 1.0], [1.0, 0, 0]).astype(np.float32)
    f = None
    if faces:
        idx = np.arange(n * n).reshape(n, n)
        quads = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
        tri = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
        f = np.concatenate([tri, tri + n * n]).astype(np.int64)
    return Scene("corner", pts, colors, normals=normals, faces=f), label


def test_rgb_to_lab_reference_values():
    lab = rgb_to_lab(np.array([[1.0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1]]))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)
    np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.05)


def test_shape_descriptors_line_plane_volume():
    rng = np.random.default_rng(0)
    line = np.stack([np.linspace(0, 1, 200), np.zeros(200), np.zeros(200)], 1)
    plane = np.stack([rng.uniform(0, 1, 400), rng.uniform(0, 1, 400), np.zeros(400)], 1)
    blob = rng.standard_normal((400, 3))
    assert shape_descriptors(line, 10)[:, 0].min() > 0.99
    assert np.median(shape_descriptors(plane, 16)[:, 1]) > 0.5
    assert np.median(shape_descriptors(blob, 32)[:, 2]) > 0.2
    np.testing.assert_allclose(shape_descriptors(blob, 16).sum(1), 1.0, atol=1e-5)


def test_felzenszwalb_hand_graph():
    # two cheap chains joined by one expensive edge, plus a singleton tied by an expensive edge
    edges = np.array([[0, 1], [1, 2], [3, 4], [2, 3], [4, 5]])
    w = np.array([0.01, 0.02, 0.01, 0.9, 0.95])
    labels = felzenszwalb(6, edges, w, c=0.1, min_size=1)
    assert labels[0] == labels[1] == labels[2] and labels[3] == labels[4]
    assert len({labels[0], labels[3], labels[5]}) == 3
    # min_size=3 merges the 2-voxel chain and the singleton along their cheapest edge
    labels = felzenszwalb(6, edges, w, c=0.1, min_size=3)
    assert labels[3] == labels[4] == labels[5] or labels[3] == labels[0]
    assert np.bincount(labels).min() >= 3


def test_voxel_edges_from_faces_and_knn():
    scene, _ = corner_scene(6, faces=True)
    grid = voxelize(scene.points, 0.02)
    e = voxel_edges(grid.point_to_voxel, scene.faces, grid.centers)
    assert (e[:, 0] < e[:, 1]).all() and len(np.unique(e, axis=0)) == len(e)
    # a 6x6 triangulated grid has 5*6*2 axis edges + 25 diagonals per plane
    assert len(e) == 2 * (60 + 25)
    e_knn = voxel_edges(grid.point_to_voxel, None, grid.centers, k=4)
    assert len(e_knn) > 0 and (e_knn[:, 0] != e_knn[:, 1]).all()


@pytest.mark.parametrize("faces", [False, True])
def test_superpoints_never_straddle_the_corner(faces):
    scene, label = corner_scene(20, faces=faces)
    grid = voxelize(scene.points, 0.02)
    teacher = build_teacher("geometric", variant="superpoint")
    feats = teacher.features(scene, grid)
    sp = teacher.last_superpoints
    vlabel = label[np.argsort(grid.point_to_voxel)][: grid.num_voxels]  # one point per voxel here
    for s in np.unique(sp):
        assert len(np.unique(vlabel[sp == s])) == 1, "a superpoint spans floor and wall"
    assert 2 <= sp.max() + 1 <= 20  # uniform planes: few superpoints
    assert feats.shape == (grid.num_voxels, 32) and feats.dtype == np.float32
    sim = feats @ feats.T
    same = sp[:, None] == sp[None]
    np.testing.assert_allclose(sim[same], 1.0, atol=1e-5)


def test_descriptor_and_combined_variants_separate_planes():
    scene, label = corner_scene(16)
    grid = voxelize(scene.points, 0.02)
    vlabel = np.zeros(grid.num_voxels, int)
    vlabel[grid.point_to_voxel] = label
    for variant, dim in (("descriptor", 10), ("combined", 42)):
        f = build_teacher("geometric", variant=variant).features(scene, grid)
        assert f.shape == (grid.num_voxels, dim)
        fn = f / np.linalg.norm(f, axis=1, keepdims=True)
        sim = fn @ fn.T
        same = vlabel[:, None] == vlabel[None]
        assert sim[same].mean() - sim[~same].mean() > 0.5, variant


def test_geometric_estimates_normals_when_missing():
    scene, _ = corner_scene(10)
    scene.normals = None
    grid = voxelize(scene.points, 0.02)
    f = build_teacher("geometric", variant="descriptor").features(scene, grid)
    assert np.isfinite(f).all() and f.shape[0] == grid.num_voxels


def test_registry_and_bad_options():
    assert {"geometric", "precomputed", "sonata"} <= set(TEACHERS.names())
    with pytest.raises(ConfigError, match="unknown teacher"):
        build_teacher("nope")
    with pytest.raises(ConfigError, match="variant"):
        build_teacher("geometric", variant="magic")


def test_precomputed_teacher_averages_per_voxel(tmp_path):
    pts = np.array([[0.001, 0, 0], [0.005, 0, 0], [0.05, 0, 0]], np.float32)
    scene = Scene("s", pts, np.zeros((3, 3), np.float32))
    grid = voxelize(pts, 0.02)
    feats = np.array([[1.0, 0], [3.0, 2], [5, 5]], np.float32)
    np.save(tmp_path / "t.npy", feats)
    out = build_teacher("precomputed", path=tmp_path / "t.npy").features(scene, grid)
    np.testing.assert_allclose(out, [[2.0, 1.0], [5.0, 5.0]])
    scene.teacher_features = feats * 2
    np.testing.assert_allclose(build_teacher("precomputed").features(scene, grid), [[4.0, 2.0], [10.0, 10.0]])
    np.save(tmp_path / "bad.npy", feats[:2])
    with pytest.raises(InputError, match=r"bad\.npy.*\(2, 2\).*\(3, T\)"):
        build_teacher("precomputed", path=tmp_path / "bad.npy").features(scene, grid)
    with pytest.raises(InputError, match="missing.npy"):
        build_teacher("precomputed", path=tmp_path / "missing.npy").features(scene, grid)
    scene.teacher_features = None
    with pytest.raises(ConfigError, match="path="):
        build_teacher("precomputed").features(scene, grid)


# ---------------------------------------------------------------- sonata, with a fake package


class _Point(dict):
    """Attribute access like sonata.structure.Point (an addict Dict)."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None

    def __setattr__(self, k, v):
        self[k] = v


def _fake_sonata(record: dict) -> types.ModuleType:
    mod = types.ModuleType("sonata")
    g = torch.Generator().manual_seed(0)

    def grid_sample(point):  # like the default transform: colour 0-255, normals needed, GridSample inverse
        record["input"] = {k: np.array(v) for k, v in point.items()}
        coord = torch.as_tensor(point["coord"])
        key = torch.floor(coord / 0.04).long()
        uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
        feat = torch.cat([coord, torch.as_tensor(point["color"]) / 255.0, torch.as_tensor(point["normal"])], 1)
        return {"coord": uniq.float(), "feat": feat[: len(uniq)], "inverse": inverse}

    class _Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, data):
            m0 = len(data["coord"])
            pt = _Point(feat=torch.randn(m0, 4, generator=g), inverse=data["inverse"])
            record["levels"] = [pt]
            for c in (3, 2, 5):  # three poolings: 4 -> 3 -> 2 -> 5 channels
                n_parent = len(pt["feat"])
                inv = torch.arange(n_parent) // 2
                child = _Point(
                    feat=torch.randn(int(inv.max()) + 1, c, generator=g), pooling_parent=pt, pooling_inverse=inv
                )
                record["levels"].append(child)
                pt = child
            # snapshot: the adapter pops the pooling keys and overwrites feats, as the sonata demo does
            record["snap"] = [(p["feat"].clone(), p.get("pooling_inverse")) for p in record["levels"]]
            return pt

    def load(name="sonata", repo_id="facebook/sonata", download_root=None, custom_config=None, ckpt_only=False):
        record["load"] = dict(name=name, repo_id=repo_id, custom_config=custom_config)
        return _Model()

    mod.load = load
    mod.model = types.SimpleNamespace(MODELS=["sonata"])
    mod.transform = types.SimpleNamespace(default=lambda: grid_sample)
    return mod


def test_sonata_adapter_with_fake_package(monkeypatch):
    record: dict = {}
    monkeypatch.setitem(sys.modules, "sonata", _fake_sonata(record))
    scene, _ = corner_scene(6)
    grid = voxelize(scene.points, 0.02)
    feats = build_teacher("sonata", device="cpu", custom_config={"enable_flash": False}).features(scene, grid)
    assert record["load"] == {"name": "sonata", "repo_id": "facebook/sonata", "custom_config": {"enable_flash": False}}
    inp = record["input"]
    assert set(inp) == {"coord", "color", "normal"} and inp["color"].max() > 200  # 0-255 colours
    # expected, as the sonata demo: two concatenating up-casts, one copy, then the grid-sample inverse
    (f0, _), (f1, i1), (f2, i2), (f3, i3) = record["snap"]
    l2 = torch.cat([f2, f3[i3]], 1)
    l1 = torch.cat([f1, l2[i2]], 1)
    l0 = l1[i1]
    expect = l0[record["levels"][0]["inverse"]].numpy()  # per input point, as the demo
    assert len(inp["coord"]) == len(scene.points)  # the points go in, not the voxels (GeoPurify, the demo)
    assert feats.shape == (grid.num_voxels, 3 + 2 + 5)
    np.testing.assert_allclose(feats, grid.reduce(expect), rtol=1e-5, atol=1e-6)


def test_sonata_local_weights_path(monkeypatch, tmp_path):
    record: dict = {}
    monkeypatch.setitem(sys.modules, "sonata", _fake_sonata(record))
    scene, _ = corner_scene(4)
    (tmp_path / "sonata.pth").write_bytes(b"")  # the fake load does not read it
    build_teacher("sonata", weights=str(tmp_path / "sonata.pth"), device="cpu").features(
        scene, voxelize(scene.points, 0.02)
    )
    assert record["load"]["name"] == str(tmp_path / "sonata.pth")


def test_sonata_missing_or_wrong_weights_are_one_line_config_errors(monkeypatch, tmp_path):
    """A mistyped weights path, offline without the named weights, or a wrong or code-running file:
    sonata.load's RuntimeError / huggingface_hub's OSError / torch's errors used to end in an internal
    error (exit 1), the first two only after the first scene had been lifted; now ConfigError (exit 3)
    naming --teacher-opt weights=PATH, the path one at build time."""
    import pickle

    record: dict = {}
    fake = _fake_sonata(record)
    monkeypatch.setitem(sys.modules, "sonata", fake)
    with pytest.raises(ConfigError, match="neither a model name .*sonata.* nor a file.*--teacher-opt weights=PATH"):
        build_teacher("sonata", weights=str(tmp_path / "typo.pth"))
    assert "load" not in record

    class LocalEntryNotFoundError(FileNotFoundError):  # what huggingface_hub raises offline without a cache
        pass

    def offline(*a, **k):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    scene, _ = corner_scene(4)
    grid = voxelize(scene.points, 0.02)
    monkeypatch.setattr(fake, "load", offline)
    with pytest.raises(ConfigError, match="could not get the 'sonata' weights from facebook/sonata.*weights=PATH"):
        build_teacher("sonata", device="cpu").features(scene, grid)
    bad = tmp_path / "other.pth"
    bad.write_bytes(b"x")
    for exc, match in ((KeyError("config"), "not a Sonata checkpoint"), (EOFError("Ran out of input"), "not a Sonata"),
                       (pickle.UnpicklingError("Weights only load failed"), "refused, the checkpoint is not plain")):
        def load(*a, _exc=exc, **k):
            raise _exc

        monkeypatch.setattr(fake, "load", load)
        with pytest.raises(ConfigError, match=match):
            build_teacher("sonata", weights=str(bad), device="cpu").features(scene, grid)
    monkeypatch.setattr(torch, "__version__", "2.3.1")  # sonata.load unpickles without weights_only there
    with pytest.raises(ConfigError, match="needs torch >= 2.4"):
        build_teacher("sonata", weights=str(bad))


def test_sonata_missing_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sonata", None)  # import sonata -> ImportError
    scene, _ = corner_scene(4)
    with pytest.raises(MissingDependencyError, match="'sonata'.*weights=") as exc:
        build_teacher("sonata").features(scene, voxelize(scene.points, 0.02))
    # PyPI's 'sonata' is an unrelated project: the message must not tell a user to pip install it
    assert "pip install sonata" not in str(exc.value) and "github.com/facebookresearch/sonata" in str(exc.value)


def test_an_unrelated_sonata_package_is_named_not_an_internal_error(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "sonata", types.ModuleType("sonata"))  # PyPI's 'sonata': no sonata.load
    scene, _ = corner_scene(4)
    with pytest.raises(MissingDependencyError, match="is not facebookresearch/sonata"):
        build_teacher("sonata").features(scene, voxelize(scene.points, 0.02))


def test_sonata_without_flash_attn_uses_the_readme_fallback(monkeypatch):
    record: dict = {}
    monkeypatch.setitem(sys.modules, "sonata", _fake_sonata(record))
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # not installed
    scene, _ = corner_scene(4)
    build_teacher("sonata", device="cpu").features(scene, voxelize(scene.points, 0.02))
    assert record["load"]["custom_config"] == {"enc_patch_size": [1024] * 5, "enable_flash": False}


class _LabelTrap(Scene):
    """A scene whose ground truth raises when read: proves a teacher never looks at it."""

    @property
    def labels(self):  # type: ignore[override]
        raise AssertionError("a teacher read the ground-truth labels")

    @labels.setter
    def labels(self, value) -> None:
        pass


def _semantic_lifted(scene: Scene, label: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 8) lifted 2D features: one direction per plane (floor / wall) plus noise."""
    rng = np.random.default_rng(seed)
    dirs = np.eye(8, dtype=np.float32)[[1, 5]]
    return dirs[label] + 0.1 * rng.standard_normal((len(label), 8)).astype(np.float32)


def test_semantic_variant_superpoint_means_of_the_lifted_features():
    scene, label = corner_scene(16, faces=True)
    grid = voxelize(scene.points, 0.02)
    lifted = _semantic_lifted(scene, label)
    teacher = build_teacher("geometric", variant="semantic", sem_weight=0.5, sem_dim=4)
    f = teacher.features(scene, grid, lifted)
    assert f.shape == (grid.num_voxels, 10 + 4) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)  # sqrt(0.5)^2 * 2 parts
    np.testing.assert_array_equal(f, teacher.features(scene, grid, lifted))  # deterministic
    sp = teacher.last_segments
    assert sp is not None and sp.shape == (grid.num_voxels,) and np.array_equal(sp, teacher.last_superpoints)
    sem = f[:, 10:] / np.sqrt(0.5)
    for s in np.unique(sp):  # one semantic vector per superpoint: its voxels' mean
        np.testing.assert_allclose(sem[sp == s], np.broadcast_to(sem[sp == s][0], sem[sp == s].shape), atol=1e-5)
    vlabel = np.zeros(grid.num_voxels, int)
    vlabel[grid.point_to_voxel] = label
    sim = sem @ sem.T
    same = vlabel[:, None] == vlabel[None]
    assert sim[same].mean() > 0.9 and sim[~same].mean() < -0.5  # centred: the two readings oppose
    # the same 2D reading everywhere: nothing is left after centring, the semantic part is zero
    f_same = teacher.features(scene, grid, np.tile(lifted[:1], (len(label), 1)))
    np.testing.assert_allclose(f_same[:, 10:], 0.0, atol=1e-5)
    np.testing.assert_allclose(f_same[:, :10], f[:, :10], atol=1e-6)  # the descriptor part is unchanged


def test_semantic_variant_is_label_free_and_checks_its_input():
    scene, label = corner_scene(12, faces=True)
    trap = _LabelTrap(scene.name, scene.points, scene.colors, normals=scene.normals, faces=scene.faces)
    grid = voxelize(scene.points, 0.02)
    lifted = _semantic_lifted(scene, label)
    scene.labels = label
    ref = build_teacher("geometric", variant="semantic").features(scene, grid, lifted)
    np.testing.assert_array_equal(build_teacher("geometric", variant="semantic").features(trap, grid, lifted), ref)
    for variant in ("combined", "descriptor", "superpoint", "appearance"):
        build_teacher("geometric", variant=variant).features(trap, grid)
    with pytest.raises(ConfigError, match="lifted"):
        build_teacher("geometric", variant="semantic").features(scene, grid)
    with pytest.raises(InputError, match="lifted"):
        build_teacher("geometric", variant="semantic").features(scene, grid, lifted[:-1])
    with pytest.raises(ConfigError, match="sem_weight"):
        build_teacher("geometric", variant="semantic", sem_weight=1.5)
    t = build_teacher("geometric", variant="descriptor")
    t.features(scene, grid)
    assert t.last_segments is None  # no superpoints cut


def test_appearance_variant_is_unit_normal_and_weighted_lab():
    scene, _ = corner_scene(8)
    grid = voxelize(scene.points, 0.02)
    f = build_teacher("geometric", variant="appearance", app_color=3.0).features(scene, grid)
    assert f.shape == (grid.num_voxels, 6) and f.dtype == np.float32
    lab = rgb_to_lab(grid.reduce(scene.colors))
    raw = np.concatenate([grid.reduce(scene.normals), 3.0 * lab / 100.0], axis=1)
    np.testing.assert_allclose(f, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(ConfigError, match="app_color"):
        build_teacher("geometric", variant="appearance", app_color=-1.0)
