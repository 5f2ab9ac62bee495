"""``synth --from-scan``: posed RGB-D views of a labelled scan and the image-space simulated VLM.

The input scan is a small procedural room (always available) or a crop of the real ScanNet scans in
../shared (skipped when absent). Checks use plain numpy/PIL readers, not the package's lifting.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from _synth_helpers import read_labels_ply, read_matrix, to20
from PIL import Image
from scipy.spatial import cKDTree

from geopurify.cli import main
from geopurify.synthetic import (
    SCANNET20_NAMES,
    ScanRenderConfig,
    SyntheticConfig,
    VLMSimConfig,
    make_scene,
    read_labelled_scan,
    render_scan,
)
from geopurify.synthetic.masks import SIMILAR, common_direction, decide_reading, simulate_view
from geopurify.synthetic.render import intrinsics
from geopurify.synthetic.scan import Surface, splat
from geopurify.synthetic.vlm import text_embeddings

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scannet-scene0011-pointcept" / "scene0011_00"
FAST = dict(n_frames=12, color_hw=(96, 128), depth_hw=(72, 96), feature_hw=(48, 64))


@pytest.fixture(scope="module")
def room(tmp_path_factory) -> Path:
    cfg = dataclasses.replace(SyntheticConfig(), seed=3, target_points=15_000, n_frames=2, room_size=(3.5, 4.0))
    return make_scene(tmp_path_factory.mktemp("src"), "synth0003_00", cfg)


@pytest.fixture(scope="module")
def rendered(room, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scan") / "fromscan_00"
    render_scan(room, out, ScanRenderConfig(seed=1, **FAST))
    return out


def test_splat_hand_computed_plane_and_occlusion():
    g = np.arange(-1.6, 1.6, 0.01)
    x, y = np.meshgrid(g, g)
    plane = np.column_stack([x.ravel(), y.ravel(), np.full(x.size, 2.0)])  # z = 2 m in front
    patch = np.column_stack([x.ravel() * 0.03125, y.ravel() * 0.03125, np.full(x.size, 1.0)])  # 10 cm square at 1 m
    pts = np.concatenate([plane, patch]).astype(np.float32)
    surf = Surface(pts, np.full(len(pts), 0.01, np.float32), np.arange(len(pts)))
    K = intrinsics((60, 80), 60.0)
    view = splat(surf, K, np.eye(4), (60, 80))
    assert (view.source >= 0).all()  # a dense plane covers the whole image
    cy, cx = 30, 40
    assert view.depth[cy, cx] == pytest.approx(1.0, abs=1e-3) and view.source[cy, cx] >= len(plane)
    # the patch spans 0.1 * f / 1 pixels; away from it the plane at 2 m shows
    f = K[0, 0]
    assert view.depth[cy, int(cx + 0.1 * f)] == pytest.approx(2.0, abs=1e-3)
    assert view.source[cy, int(cx + 0.1 * f)] < len(plane)


def test_output_is_the_scan_in_order_with_its_ground_truth(room, rendered):
    scan = read_labelled_scan(room)
    v, lab, inst = read_labels_ply(rendered / f"{rendered.name}_vh_clean_2.labels.ply")
    np.testing.assert_allclose(v, scan.points, atol=1e-6)
    np.testing.assert_array_equal(to20(lab), scan.labels)
    np.testing.assert_array_equal(inst, scan.instance)
    from geopurify.io import read_scene

    sc = read_scene(rendered)
    assert sc.num_points == scan.num_points and len(sc.frames) == FAST["n_frames"]
    np.testing.assert_allclose(sc.normals, scan.normals, atol=1e-5)  # the scan's normals, not re-estimated


def test_depth_backprojects_onto_the_scan(room, rendered):
    scan = read_labelled_scan(room)
    tree = cKDTree(scan.points)
    Kd = read_matrix(rendered / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
    dists, valid_frac = [], []
    for p in sorted((rendered / "pose").glob("*.txt"))[:6]:
        pose = read_matrix(p)
        d = np.asarray(Image.open(rendered / "depth" / f"{p.stem}.png")).astype(np.float64) / 1000.0
        valid_frac.append((d > 0).mean())
        vv, uu = np.nonzero(d > 0)
        z = d[vv, uu]
        cam = np.column_stack([(uu - Kd[0, 2]) / Kd[0, 0] * z, (vv - Kd[1, 2]) / Kd[1, 1] * z, z])
        world = cam @ pose[:3, :3].T + pose[:3, 3]
        dists.append(tree.query(world)[0])
    dist = np.concatenate(dists)
    # Pixels land on the surface between vertices: compare with the vertex spacing, plus sensor noise.
    spacing = np.median(tree.query(scan.points[::10], k=2)[0][:, 1])
    assert np.median(dist) < 0.6 * spacing + 0.005 and np.mean(dist < spacing + 0.03) > 0.9, (
        spacing, np.percentile(dist, [50, 90]))
    assert 0.3 < np.mean(valid_frac) < 0.995  # views see the room, with holes


def test_masks_are_per_mask_features_off_the_text_directions(rendered):
    text = np.load(rendered / "text_embeddings.npz")
    T = text["embeddings"]
    assert list(text["names"]) == list(SCANNET20_NAMES)
    best, embs = [], []
    for f in sorted((rendered / "features_2d").glob("*.npz")):
        z = np.load(f)
        seg, emb = z["segments"], z["embeddings"].astype(np.float32)
        assert seg.shape == FAST["feature_hw"] and seg.max() < len(emb) and seg.min() >= -1
        best.append((emb @ T.T).max(1))
        embs.append(emb)
    best, embs = np.concatenate(best), np.concatenate(embs)
    assert np.median(best) < 0.8  # modality gap: image embeddings sit off the text directions
    cos = embs @ embs.T
    assert np.median(cos) > 0.3  # ... and share a common component


def test_masks_cross_object_borders_and_errors_are_similar_classes():
    rng = np.random.default_rng(0)
    h, w = 120, 160
    inst = np.zeros((h, w), np.int64)
    inst[:, 70:] = 1  # two objects side by side, same depth, same colour: no cue for the border
    inst[40:80, 20:40] = 2  # a small object
    depth = np.full((h, w), 2.0)
    rgb = np.full((h, w, 3), 0.5)
    text = text_embeddings(32)
    common = common_direction(text, 1)
    true = np.array([SCANNET20_NAMES.index(n) for n in ("table", "cabinet", "sink")])
    cfg = dataclasses.replace(VLMSimConfig(), merge_prob=0.0, miss_small_prob=0.0)
    reading = decide_reading(true, cfg, rng)
    vm = simulate_view(inst, depth, rgb, reading, text, common, cfg, rng)
    # Superpixel masks: the border between objects 0 and 1 is not where the instances meet.
    m0 = vm.mask_instance[vm.segments[:, 60:80]]
    assert ((m0 == 0) & (inst[:, 60:80] == 1)).any() or ((m0 == 1) & (inst[:, 60:80] == 0)).any()
    agree = (vm.mask_instance[vm.segments] == inst).mean()
    assert 0.8 < agree < 0.995  # 1-pixel superpixels (masks that follow the instances) give 0.999
    # Persistent confusions go to similar classes.
    sure = dataclasses.replace(cfg, confusion_prob=1.0)
    r = decide_reading(np.repeat(true, 50), sure, rng)
    for t, p in zip(r.true_class, r.perceived):
        assert SCANNET20_NAMES[p] in SIMILAR[SCANNET20_NAMES[t]]
    assert (r.wrong_rate > 0).all()


def test_seeded_and_deterministic(room, rendered, tmp_path):
    again = tmp_path / "fromscan_00"
    render_scan(room, again, ScanRenderConfig(seed=1, **FAST))
    for f in sorted((rendered / "features_2d").glob("*.npz"))[:4]:
        a, b = np.load(f), np.load(again / "features_2d" / f.name)
        np.testing.assert_array_equal(a["segments"], b["segments"])
        np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
    for p in sorted((rendered / "pose").glob("*.txt"))[:4]:
        assert p.read_text() == (again / "pose" / p.name).read_text()


def test_cli_from_scan_and_bad_input(room, tmp_path):
    out = tmp_path / "cli_00"
    assert main(["-q", "synth", "--from-scan", str(room), str(out), "--frames", "3"]) == 0
    assert len(list((out / "features_2d").glob("*.npz"))) == 3
    unlabelled = tmp_path / "nolabels"
    unlabelled.mkdir()
    np.save(unlabelled / "coord.npy", np.random.default_rng(0).random((2000, 3)).astype(np.float32))
    np.save(unlabelled / "color.npy", np.full((2000, 3), 128, np.uint8))
    assert main(["-q", "synth", "--from-scan", str(unlabelled), str(tmp_path / "x_00")]) == 2
    assert not (tmp_path / "x_00").exists()
    assert main(["-q", "synth", "--from-scan", str(room), str(tmp_path / "y_00"), "--n", "2"]) == 3


@pytest.mark.skipif(not (REAL / "coord.npy").is_file(), reason="real ScanNet scans not in ../shared/data")
def test_real_scan_crop_renders_and_reads_back(tmp_path):
    scan = read_labelled_scan(REAL)
    x0, y0 = np.percentile(scan.points[:, :2], 10, axis=0)
    out = tmp_path / "real_00"
    res = render_scan(scan, out, ScanRenderConfig(crop=(x0, y0, x0 + 3.0, y0 + 3.0), **FAST))
    v, lab, _ = read_labels_ply(out / f"{out.name}_vh_clean_2.labels.ply")
    keep = (scan.points[:, 0] >= x0) & (scan.points[:, 0] < x0 + 3) & (scan.points[:, 1] >= y0) & (
        scan.points[:, 1] < y0 + 3)  # fmt: skip
    np.testing.assert_allclose(v, scan.points[keep], atol=1e-6)
    np.testing.assert_array_equal(to20(lab), scan.labels[keep])
    assert res.frames == FAST["n_frames"] and res.masks_per_frame > 2
