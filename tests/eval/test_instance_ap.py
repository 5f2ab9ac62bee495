"""Instance AP against hand-made cases whose AP is worked out by hand below.

The rule (ScanNet's script): sort outcomes by confidence; at each distinct confidence, precision p and
recall r of everything at or above it (missed GT are false negatives); append (r=0, p=1);
AP = sum_i p_i (r_{i-1} - r_{i+1}) / 2 with r_{-1} = r_0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from geopurify.errors import InputError
from geopurify.eval.instance import (
    IOU_THRESHOLDS,
    InstanceEvaluator,
    PredictedInstances,
    average_precision,
    format_instance_table,
    thing_classes,
)

NAMES = ["wall", "chair", "table"]
WALL, CHAIR, TABLE = 0, 1, 2


def scene():
    """1000 points: 0-199 chair A, 200-399 chair B, 400-599 table T, 600-799 wall (void), 800-849 a
    50-point chair (small: never scored), 850-999 unlabelled."""
    sem = np.full(1000, -1)
    ins = np.full(1000, -1)
    sem[0:200], ins[0:200] = CHAIR, 1
    sem[200:400], ins[200:400] = CHAIR, 2
    sem[400:600], ins[400:600] = TABLE, 3
    sem[600:800], ins[600:800] = WALL, 4
    sem[800:850], ins[800:850] = CHAIR, 5
    return sem, ins


def run(preds, names=NAMES, split=None):
    ev = InstanceEvaluator(len(names), thing_classes(names))
    sem, ins = scene()
    labels, scores, masks = zip(*preds) if preds else ((), (), ())
    ev.add(sem, ins, PredictedInstances(list(labels), list(scores), [np.asarray(m) for m in masks]))
    return ev.result(names, split=split)


def r(a, b):
    return np.arange(a, b)


def test_thresholds_are_the_reference_scripts():
    assert len(IOU_THRESHOLDS) == 9 and IOU_THRESHOLDS[0] == 0.5 and abs(IOU_THRESHOLDS[-1] - 0.9) < 1e-9
    assert thing_classes(NAMES) == [CHAIR, TABLE]


def test_average_precision_by_hand():
    # outcomes by confidence: TP .9, FP .8, TP .7; 2 GT, none missed.
    # thresholds .7/.8/.9: (tp, fp, fn) = (2,1,0) (1,1,1) (1,0,1) -> p = 2/3, 1/2, 1; r = 1, 1/2, 1/2; end (1, 0)
    # widths: (1-.5)/2, (1-.5)/2, (.5-0)/2, (.5-0)/2 = .25 each -> AP = .25 (2/3 + 1/2 + 1 + 1) = 0.791666...
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7]), 0) == pytest.approx(19 / 24)
    # a single true positive, one GT missed: p = 1, r = 1/2 -> AP = 1 * (.5 + .5) / 2 ... = 0.5
    assert average_precision(np.array([1.0]), np.array([0.5]), 1) == pytest.approx(0.5)
    assert average_precision(np.array([]), np.array([]), 3) == 0.0


def test_perfect_predictions_score_one():
    s = run([(CHAIR, 0.9, r(0, 200)), (CHAIR, 0.8, r(200, 400)), (TABLE, 0.7, r(400, 600))])
    assert s.ap == pytest.approx(1.0) and s.ap50 == pytest.approx(1.0) and s.ap25 == pytest.approx(1.0)


def test_false_positive_between_true_positives():
    # chair: TP .9 (A), FP .8 (a chair said over the table's points: scored GT, so not ignored), TP .7 (B)
    # -> chair AP 19/24 at every threshold (see above); table has GT and no table prediction -> 0
    s = run([(CHAIR, 0.9, r(0, 200)), (CHAIR, 0.8, r(400, 600)), (CHAIR, 0.7, r(200, 400))])
    assert s.per_class["chair"]["ap"] == pytest.approx(19 / 24)
    assert s.per_class["chair"]["ap50"] == pytest.approx(19 / 24)
    assert s.per_class["table"]["ap50"] == 0.0
    assert s.ap50 == pytest.approx((19 / 24 + 0) / 2)


def test_iou_thresholds_strict_and_averaged():
    # a table mask with 152 of the table's 200 points: IoU .76 > t for t = .50 ... .75 (6 of 9 thresholds);
    # above, the GT is missed and the prediction is a false positive -> AP 0 there. AP = 6/9, AP50 = AP25 = 1.
    s = run([(TABLE, 0.5, r(400, 552)), (CHAIR, 0.9, r(0, 200)), (CHAIR, 0.9, r(200, 400))])
    assert s.per_class["table"]["ap"] == pytest.approx(6 / 9)
    assert s.per_class["table"]["ap50"] == pytest.approx(1.0)
    assert s.per_class["table"]["ap25"] == pytest.approx(1.0)
    # IoU exactly .5 (100 of 200 points): no match at .5 (IoU must exceed t: AP50 0), a match at .25
    s = run([(TABLE, 0.5, r(400, 500)), (CHAIR, 0.9, r(0, 200)), (CHAIR, 0.9, r(200, 400))])
    assert s.per_class["table"]["ap50"] == 0.0 and s.per_class["table"]["ap25"] == pytest.approx(1.0)


def test_missed_gt_halves_ap():
    s = run([(CHAIR, 0.9, r(0, 200)), (TABLE, 0.7, r(400, 600))])  # chair B missed: p = 1, r = 1/2 -> 0.5
    assert s.per_class["chair"]["ap50"] == pytest.approx(0.5)


def test_duplicate_of_a_found_gt_is_a_false_positive_below_it():
    # TP .9 and a duplicate at .6 on chair A; chair B found at .8.
    # ascending (.6 F, .8 T, .9 T): thresholds .6/.8/.9: (tp, fp) = (2,1) (2,0) (1,0), fn = 0, 0, 1
    # p = 2/3, 1, 1; r = 1, 1, 1/2; end (1, 0). widths (1-1)/2, (1-.5)/2, (1-0)/2, (.5-0)/2 = 0, .25, .5, .25
    # AP = 0 + .25 + .5 + .25 = 1.0: a lower-confidence duplicate does not cost AP here.
    s = run([(CHAIR, 0.9, r(0, 200)), (CHAIR, 0.6, r(0, 200)), (CHAIR, 0.8, r(200, 400))])
    assert s.per_class["chair"]["ap50"] == pytest.approx(1.0)
    # a duplicate above the others: (.95 dup of A, .9 A, .8 B) -> ascending (.8 T, .9 F, .95 T)?  No: A keeps
    # the highest confidence .95 as its TP and .9 becomes the FP. Ascending (.8 T, .9 F, .95 T): thresholds
    # .8/.9/.95: (tp, fp, fn) = (2,1,0) (1,1,1) (1,0,1) -> p 2/3, 1/2, 1; r 1, 1/2, 1/2 -> 19/24 as above.
    s = run([(CHAIR, 0.9, r(0, 200)), (CHAIR, 0.95, r(0, 200)), (CHAIR, 0.8, r(200, 400))])
    assert s.per_class["chair"]["ap50"] == pytest.approx(19 / 24)


def test_predictions_mostly_on_ignored_points_are_not_false_positives():
    # a chair over the wall (void for instance AP) and one over the small chair plus unlabelled points:
    # more than t of their points are ignored -> no false positive; the two real chairs keep AP 1.
    s = run([(CHAIR, 0.99, r(600, 800)), (CHAIR, 0.98, r(800, 950)), (CHAIR, 0.9, r(0, 200)),
             (CHAIR, 0.8, r(200, 400))])  # fmt: skip
    assert s.per_class["chair"]["ap"] == pytest.approx(1.0)
    # half on the wall, half on the table (100 + 100): 50% ignored <= .5 -> a false positive at t = .5;
    # at .85, between the two chairs: TP .9, FP .85, TP .8 -> 19/24 (worked out above)
    s = run([(CHAIR, 0.85, np.r_[r(700, 800), r(400, 500)]), (CHAIR, 0.9, r(0, 200)), (CHAIR, 0.8, r(200, 400))])
    assert s.per_class["chair"]["ap50"] == pytest.approx(19 / 24)
    # 125 wall + 75 table points: 62.5% ignored > t for t = .50, .55, .60 -> no false positive there (AP 1);
    # from .65 on it counts (TP .9, FP .85, TP .8 -> 19/24). AP = (3 * 1 + 6 * 19/24) / 9 over .50 ... .90
    s = run([(CHAIR, 0.85, np.r_[r(675, 800), r(400, 475)]), (CHAIR, 0.9, r(0, 200)), (CHAIR, 0.8, r(200, 400))])
    assert s.per_class["chair"]["ap50"] == pytest.approx(1.0)
    assert s.per_class["chair"]["ap"] == pytest.approx((3 + 6 * 19 / 24) / 9)


def test_small_and_unscored_gt_are_neither_found_nor_missed():
    # only chairs A, B and the table exist as scored GT; the 50-point chair and the wall are not counted
    s = run([(CHAIR, 0.9, r(0, 200)), (CHAIR, 0.9, r(200, 400)), (TABLE, 0.9, r(400, 600)),
             (WALL, 0.9, r(600, 800)), (CHAIR, 0.9, r(800, 850))])  # fmt: skip
    assert s.ap == pytest.approx(1.0)
    assert set(s.per_class) == {"chair", "table"}


def test_class_without_gt_is_nan_and_left_out():
    names = [*NAMES, "sofa"]
    s = run([(CHAIR, 0.9, r(0, 200)), (CHAIR, 0.9, r(200, 400)), (TABLE, 0.9, r(400, 600)), (3, 0.9, r(850, 999))],
            names=names)  # fmt: skip
    assert math.isnan(s.per_class["sofa"]["ap"]) and s.ap == pytest.approx(1.0)
    d = s.to_dict()
    assert d["per_class"]["sofa"]["ap"] is None and "sofa" not in format_instance_table(s)


def test_splits_and_pooling_over_scenes():
    ev = InstanceEvaluator(3, [CHAIR, TABLE])
    sem, ins = scene()
    ev.add(sem, ins, PredictedInstances([CHAIR, CHAIR], [0.9, 0.8], [r(0, 200), r(200, 400)]))  # table missed
    ev.add(sem, ins, PredictedInstances([TABLE], [0.5], [r(400, 600)]))  # both chairs missed here
    s = ev.result(NAMES, split={"head": [CHAIR], "tail": [TABLE]})
    # chair over both scenes: TP .9, TP .8, 2 missed -> p = 1, 1; r = 1/2, 1/4 -> widths (.5-.25)/2,
    # (.5-0)/2, (.25-0)/2 = .125, .25, .125 -> AP = .5. Table: TP .5, 1 missed -> .5
    assert s.splits["head"]["ap50"] == pytest.approx(0.5)
    assert s.splits["tail"]["ap50"] == pytest.approx(0.5)
    assert s.scenes == 2


def test_bad_predictions_are_input_errors():
    ev = InstanceEvaluator(3, [CHAIR, TABLE])
    sem, ins = scene()
    with pytest.raises(InputError):
        ev.add(sem, ins, PredictedInstances([CHAIR], [0.9], [np.array([5, 1000])]))
    with pytest.raises(InputError):
        PredictedInstances([CHAIR], [float("nan")], [np.array([1])])
    with pytest.raises(InputError):
        PredictedInstances([CHAIR, TABLE], [0.9], [np.array([1])])
