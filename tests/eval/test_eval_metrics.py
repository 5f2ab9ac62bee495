"""Metrics on hand-made confusion matrices with hand-computed IoUs, and against naive per-point references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geopurify.errors import ConfigError, InputError
from geopurify.eval import (
    ConfusionAccumulator,
    accumulate,
    confusion,
    format_table,
    protocol_names,
    scores,
)

# rows = gt, cols = pred
CONF3 = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
NAMES3 = ["wall", "floor", "chair"]


def test_confusion_hand_case_and_ignore():
    gt = np.array([0, 0, 1, 1, 2, -1, 2, 0])
    pred = np.array([0, 1, 1, 1, 0, 7, 2, 0])  # pred 7 sits on an ignored point: allowed
    conf = confusion(gt, pred, 3)
    assert conf.dtype == np.int64
    assert conf.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    # a different ignore value
    conf255 = confusion(np.where(gt < 0, 255, gt), pred, 3, ignore=255)
    np.testing.assert_array_equal(conf, conf255)


def test_confusion_matches_naive_loop():
    rng = np.random.default_rng(3)
    C = 7
    gt = rng.integers(-1, C, 5000)
    pred = rng.integers(0, C, 5000)
    naive = np.zeros((C, C), dtype=np.int64)
    for g, p in zip(gt, pred):
        if g != -1:
            naive[g, p] += 1
    np.testing.assert_array_equal(confusion(gt, pred, C), naive)


def test_confusion_bad_input():
    with pytest.raises(InputError, match="shape"):
        confusion(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(InputError, match="gt contains class 5"):
        confusion(np.array([0, 5]), np.array([0, 1]), 2)
    with pytest.raises(InputError, match="pred contains class -1"):
        confusion(np.array([0, 1]), np.array([0, -1]), 2)
    with pytest.raises(InputError, match="integer"):
        confusion(np.array([0.5, 1.0]), np.array([0, 1]), 2)
    with pytest.raises(ConfigError):
        confusion(np.array([0]), np.array([0]), 0)


def test_scores_hand_computed():
    s = scores(CONF3, NAMES3)
    # IoU = TP / (row + col - TP): wall 5/(6+7-5), floor 3/(6+4-3), chair 4/(4+5-4)
    np.testing.assert_allclose(s.iou, [5 / 8, 3 / 7, 4 / 5])
    np.testing.assert_allclose(s.acc, [5 / 6, 3 / 6, 4 / 4])
    assert s.miou == pytest.approx((5 / 8 + 3 / 7 + 4 / 5) / 3)
    assert s.macc == pytest.approx((5 / 6 + 0.5 + 1.0) / 3)
    assert s.fmiou == pytest.approx((6 * 5 / 8 + 6 * 3 / 7 + 4 * 4 / 5) / 16)
    assert s.fg_miou == pytest.approx(0.8)  # wall and floor excluded: chair only
    assert s.overall_acc == pytest.approx(12 / 16)
    assert s.num_points == 16
    assert s.gt_points.tolist() == [6, 6, 4] and s.pred_points.tolist() == [7, 4, 5]
    assert s.foreground == ["chair"]


def test_absent_class_is_excluded_not_zero():
    # desk has no gt point but two wall points were predicted as desk
    conf = np.array([[5, 1, 0, 2], [2, 3, 1, 0], [0, 0, 4, 0], [0, 0, 0, 0]])
    s = scores(conf, NAMES3 + ["desk"])
    assert np.isnan(s.iou[3]) and np.isnan(s.acc[3])
    assert s.present.tolist() == [True, True, True, False]
    # wall's FN grew by 2: 5/(8+7-5)
    np.testing.assert_allclose(s.iou[:3], [5 / 10, 3 / 7, 4 / 5])
    assert s.miou == pytest.approx((0.5 + 3 / 7 + 0.8) / 3)
    d = s.to_dict()
    assert d["per_class"][3] == {"name": "desk", "iou": None, "acc": None, "gt_points": 0, "pred_points": 2}
    assert d["num_present"] == 3
    json.dumps(d, allow_nan=False)  # JSON-safe


def test_protocols_differ_as_specified():
    names = ["wall", "floor", "otherfurniture"]
    conf = np.array([[8, 0, 2], [1, 6, 1], [3, 2, 5]])
    geo = scores(conf, names, protocol="geopurify")
    osc = scores(conf, names, protocol="openscene")
    pap = scores(conf, names, protocol="paper")
    # all classes: wall 8/(10+12-8), floor 6/(8+8-6), other 5/(10+8-5)
    np.testing.assert_allclose(geo.iou, [8 / 14, 6 / 10, 5 / 13])
    np.testing.assert_allclose(osc.iou, geo.iou)
    assert geo.names == names and osc.names == ["wall", "floor", "other"]
    # paper: otherfurniture gt points ignored (not counted as wall/floor FPs), but wall/floor points
    # predicted as otherfurniture are still misses. wall 8/(10+9-8), floor 6/(8+6-6)
    assert pap.names == ["wall", "floor"]
    assert pap.ignored_classes == ["otherfurniture"]
    np.testing.assert_allclose(pap.iou, [8 / 11, 6 / 8])
    assert pap.miou == pytest.approx((8 / 11 + 0.75) / 2)
    assert pap.num_points == 18 and geo.num_points == 28
    assert pap.overall_acc == pytest.approx(14 / 18)
    assert pap.fg_miou is None  # only wall and floor remain, both excluded from foreground
    assert protocol_names(names, "openscene") == ["wall", "floor", "other"]
    assert protocol_names(names, "paper") == ["wall", "floor"]
    with pytest.raises(ConfigError, match="unknown evaluation protocol"):
        scores(conf, names, protocol="nope")


def test_scores_against_naive_point_reference():
    rng = np.random.default_rng(11)
    names = ["wall", "floor", "ceiling", "chair", "table", "otherfurniture"]
    C = len(names)
    gt = rng.integers(-1, C, 3000)
    gt[gt == 2] = 4  # ceiling absent from gt
    pred = np.where(rng.random(3000) < 0.6, np.clip(gt, 0, None), rng.integers(0, C, 3000))
    s = scores(confusion(gt, pred, C), names, protocol="paper")
    valid = (gt >= 0) & (gt != 5)
    g, p = gt[valid], pred[valid]
    ious = {}
    for c, n in enumerate(names[:5]):
        inter = np.sum((g == c) & (p == c))
        union = np.sum((g == c) | (p == c))
        if np.sum(g == c):
            ious[n] = inter / union
    assert s.names == names[:5]
    for n, v in ious.items():
        assert s.iou[s.names.index(n)] == pytest.approx(v)
    assert np.isnan(s.iou[2])
    assert s.miou == pytest.approx(np.mean(list(ious.values())))
    assert s.fg_miou == pytest.approx(np.mean([ious["chair"], ious["table"]]))
    assert s.overall_acc == pytest.approx(np.mean(g == p))


def test_split_means():
    conf = np.diag([4, 4, 4, 0]).astype(np.int64)
    conf[0, 1] = 4  # wall IoU 4/8, floor IoU 4/8, chair 1.0, desk absent
    names = ["wall", "floor", "chair", "desk"]
    s = scores(conf, names, split={"head": [0, 1], "tail": ["chair", "desk"]})
    assert s.split_miou["head"] == pytest.approx(0.5)
    assert s.split_miou["tail"] == pytest.approx(1.0)  # desk absent: left out
    d = s.to_dict()
    assert d["head_miou"] == pytest.approx(0.5) and d["tail_miou"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="not in the class names"):
        scores(conf, names, split={"head": ["sofa"]})


def test_accumulate_is_sum_of_scene_confusions():
    rng = np.random.default_rng(0)
    scenes = [(rng.integers(0, 4, n), rng.integers(0, 4, n)) for n in (50, 300, 7)]
    confs = [confusion(g, p, 4) for g, p in scenes]
    total = accumulate(confs)
    all_gt = np.concatenate([g for g, _ in scenes])
    all_pred = np.concatenate([p for _, p in scenes])
    np.testing.assert_array_equal(total, confusion(all_gt, all_pred, 4))
    acc = ConfusionAccumulator(4)
    for g, p in scenes:
        acc.add(g, p)
    np.testing.assert_array_equal(acc.matrix, total)
    assert acc.scenes == 3
    with pytest.raises(InputError, match="no confusion"):
        accumulate([])
    with pytest.raises(InputError, match="shape"):
        accumulate([np.zeros((2, 2), int), np.zeros((3, 3), int)])


def test_dataset_miou_is_not_mean_of_scene_mious():
    a = np.array([[10, 0], [0, 0]])  # scene 1: only class 0, perfect
    b = np.array([[0, 0], [10, 90]])  # scene 2: class 1, 10 points mislabelled as class 0
    per_scene = np.mean([scores(a, ["x", "y"]).miou, scores(b, ["x", "y"]).miou])
    assert per_scene == pytest.approx((1.0 + 0.9) / 2)
    ds = scores(accumulate([a, b]), ["x", "y"])
    assert ds.miou == pytest.approx((10 / 20 + 90 / 100) / 2)


def test_scores_bad_input():
    with pytest.raises(InputError, match="square"):
        scores(np.zeros((2, 3), int), ["a", "b"])
    with pytest.raises(InputError, match="2 class names for a 3x3"):
        scores(np.eye(3, dtype=int), ["a", "b"])
    with pytest.raises(InputError, match="negative"):
        scores(-np.eye(2, dtype=int), ["a", "b"])


def test_format_table():
    conf = np.array([[5, 1, 0, 2], [2, 3, 1, 0], [0, 0, 4, 0], [0, 0, 0, 0]])
    text = format_table(scores(conf, NAMES3 + ["desk"]))
    lines = text.splitlines()
    assert lines[0].startswith("protocol: geopurify") and "(3 present)" in lines[0]
    wall = next(line for line in lines if line.startswith("wall"))
    assert wall.split() == ["wall", "50.0", "62.5", "8"]
    desk = next(line for line in lines if line.startswith("desk"))
    assert desk.split() == ["desk", "-", "-", "0"]
    assert f"mIoU {100 * (0.5 + 3 / 7 + 0.8) / 3:.1f}" in lines[-1]
    assert "fg-mIoU 80.0" in lines[-1]


def test_confusion_chunked_equals_single_pass(monkeypatch):
    from geopurify.eval import metrics

    rng = np.random.default_rng(8)
    gt = rng.integers(-1, 5, 10_001)
    pred = rng.integers(0, 5, 10_001)
    whole = confusion(gt, pred, 5)
    monkeypatch.setattr(metrics, "_CHUNK", 97)
    np.testing.assert_array_equal(confusion(gt, pred, 5), whole)
    assert whole.sum() == np.sum(gt >= 0)
    bad = pred.copy()
    bad[9_999] = 5  # error found in a late chunk too
    gt[9_999] = 1
    with pytest.raises(InputError, match="pred contains class 5"):
        confusion(gt, bad, 5)


def _pointcept_pair(tmp_path, gt20, pred, names):
    """A Pointcept GT scene (ScanNet-20 labels ``gt20``) and a segment output of its points predicting ``pred``
    (indices into ``names``)."""
    from geopurify.outputs import OutputWriter, SegmentFiles

    n = len(gt20)
    pts = np.c_[np.arange(n) * 0.01, np.zeros(n), np.zeros(n)].astype(np.float32)
    scene = tmp_path / "scene0000_00"
    scene.mkdir()
    np.save(scene / "coord.npy", pts)
    np.save(scene / "color.npy", np.full((n, 3), 128, np.uint8))
    np.save(scene / "segment20.npy", np.asarray(gt20, np.int64))
    out = tmp_path / "out"
    out.mkdir()
    w = OutputWriter(out)
    w.segment(SegmentFiles(pts, np.full((n, 3), 0.5), np.asarray(pred), names, np.zeros((len(names), 3), np.uint8),
                           np.eye(len(names), dtype=np.float32)))
    w.finish({"command": "segment"})
    return out, scene


def test_eval_predictions_outside_the_label_set_are_misses_not_a_class(tmp_path):
    """Predictions of a name outside ScanNet-20 ("lamp") are wrong on their points, but no class: the paper
    protocol has 19 classes (it said 20, and listed "(not in label set)" as a foreground class and a
    per-class row); the geopurify protocol 20 (it said 21)."""
    from geopurify import api

    # wall, wall, chair, chair, chair, otherfurniture, unlabelled, chair
    gt20 = [0, 0, 4, 4, 4, 19, -1, 4]
    names = ["wall", "chair", "lamp"]
    pred = [0, 2, 1, 1, 2, 2, 2, 1]
    out, scene = _pointcept_pair(tmp_path, gt20, pred, names)
    res = api.evaluate(out, scene, json_path=tmp_path / "e.json")
    d = json.loads((tmp_path / "e.json").read_text())
    # paper: otherfurniture and unlabelled ignored -> 6 evaluated points; wall: tp 1, gt 2, pred 1 -> 1/2;
    # chair: tp 3, gt 4, pred 3 -> 3/4; lamp predicted on 2 of them (the wall and a chair point)
    assert d["num_classes"] == 19 and len(d["per_class"]) == 19 and len(res.scores.names) == 19
    assert all("label set" not in n for n in d["foreground"]) and len(d["foreground"]) == 17
    assert d["num_points"] == 6 and d["outside_points"] == 2
    assert d["miou"] == pytest.approx((1 / 2 + 3 / 4) / 2)
    assert d["overall_acc"] == pytest.approx(4 / 6)
    by = {c["name"]: c for c in d["per_class"]}
    assert by["wall"]["iou"] == pytest.approx(0.5) and by["chair"]["iou"] == pytest.approx(0.75)
    assert res.confusion.shape == (21, 21) and res.confusion[:, 20].sum() == 3  # the otherfurniture point too
    d = api.evaluate(out, scene, protocol="geopurify").scores.to_dict()
    assert d["num_classes"] == 20 and d["outside_points"] == 3 and d["num_points"] == 7
    assert "predicted outside the label set: 3" in format_table(api.evaluate(out, scene, protocol="geopurify").scores)


def test_eval_refuses_gt_class_indices_outside_the_label_set(tmp_path, capsys):
    from geopurify.cli import main

    out, scene = _pointcept_pair(tmp_path, [0, 0, 4, 4, 20, 20], [0, 0, 1, 1, 1, 1], ["wall", "chair"])
    assert main(["-q", "eval", str(out), "--gt", str(scene)]) == 2
    err = capsys.readouterr().err.strip()
    assert "class index 20 on 2 points, outside the 20 classes of scannet20" in err and len(err.splitlines()) == 1
    assert not (out / "eval.json").exists()
