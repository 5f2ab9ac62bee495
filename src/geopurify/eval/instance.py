"""ScanNet-style instance AP: AP over IoU 0.50:0.95 (the reference script's thresholds), AP50 and AP25.

What the reference evaluation (ScanNet's ``evaluate_semantic_instance.py``) does, and this module too:

* Ground-truth instances are the point sets of one instance id; their class is the most common GT class
  of their points; only the evaluated (thing) classes count. GT instances under ``min_region`` points are
  not scored (neither found nor missed); predictions under ``min_region`` points are dropped.
* Per class and IoU threshold ``t``: each GT instance takes, among the unused predictions of its class
  with IoU > ``t``, the first one (here: in decreasing confidence); further predictions over ``t`` for an
  already found GT are false positives (the found GT keeps the highest confidence). A GT instance
  nothing matches is a missed positive.
* A prediction that matches no GT of its class at IoU > ``t`` is a false positive unless more than ``t`` of
  its points are "ignored": points whose GT class is not evaluated (wall, floor, unlabelled...) or that
  belong to small GT instances of its class.
* AP from the score-sorted list: at every distinct confidence, precision and recall of the predictions at or
  above it (missed GT count as false negatives), plus the end point (recall 0, precision 1); AP is
  ``sum_i p_i (r_{i-1} - r_{i+1}) / 2`` (recall step widths by central differences, ``r_{-1} = r_0``). The
  precision is not made monotone. A class with GT but no prediction has AP 0; a class with no GT is NaN
  and left out of the means.
* The IoU thresholds are ``np.arange(0.5, 0.95, 0.05)``, which the reference script uses: 0.50 ... 0.90
  (nine values; 0.95 is not reached). Every scene's matches are pooled per class before the AP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

IOU_THRESHOLDS = np.arange(0.5, 0.95, 0.05)
AP25 = 0.25
MIN_REGION = 100


@dataclass
class PredictedInstances:
    """One scene's predicted instances.

    Attributes:
        labels: (P,) int64 class index into the evaluated label set (-1 = a class outside it: not scored).
        scores: (P,) float confidence.
        masks: P arrays of point indices (int) or (N,) bool masks.
    """

    labels: np.ndarray
    scores: np.ndarray
    masks: list[np.ndarray]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, np.float64).reshape(-1)
        if not (len(self.labels) == len(self.scores) == len(self.masks)):
            raise InputError(
                f"instance predictions: {len(self.labels)} labels, {len(self.scores)} scores, {len(self.masks)} masks"
            )
        if not np.isfinite(self.scores).all():
            raise InputError("instance predictions: confidences contain NaN or infinite values")


@dataclass
class _Matches:
    """Pooled per (class, threshold): 0/1 outcomes, their confidences, missed GT; plus GT/pred presence."""

    true: list[list[float]] = field(default_factory=list)
    score: list[list[float]] = field(default_factory=list)
    missed: int = 0


def average_precision(true: np.ndarray, score: np.ndarray, missed: int) -> float:
    """AP of outcomes ``true (K,)`` (1 = true positive) with confidences ``score (K,)`` and ``missed`` GT.

    The reference script's rule (see the module doc). ``true + missed`` must count every GT instance.
    """
    true = np.asarray(true, np.float64)
    score = np.asarray(score, np.float64)
    order = np.argsort(score, kind="stable")
    t, s = true[order], score[order]
    k = len(t)
    total = float(t.sum())
    _, first = np.unique(s, return_index=True)  # first (lowest-ranked) index of every distinct confidence
    before = np.concatenate([[0.0], np.cumsum(t)])[first]  # true positives below each threshold
    tp = total - before
    fp = (k - first) - tp
    fn = before + missed
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        r = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1e-300), 0.0)
    p = np.append(p, 1.0)
    r = np.append(r, 0.0)
    padded = np.concatenate([[r[0]], r, [0.0]])
    widths = 0.5 * (padded[:-2] - padded[2:])
    return float(p @ widths)


class InstanceEvaluator:
    """Pools instance matches over scenes, then gives per-class AP.

    Args:
        num_classes: size of the evaluated label set.
        classes: class indices that are scored (thing classes); the others' points are "ignored".
        thresholds: IoU thresholds averaged into AP (default :data:`IOU_THRESHOLDS`).
        min_region: smallest GT / predicted instance, in points.
    """

    def __init__(self, num_classes: int, classes: Sequence[int], thresholds: Sequence[float] | None = None,
                 min_region: int = MIN_REGION) -> None:  # fmt: skip
        self.num_classes = int(num_classes)
        self.classes = sorted(int(c) for c in classes)
        th = IOU_THRESHOLDS if thresholds is None else np.asarray(thresholds, np.float64)
        self.thresholds = [float(x) for x in th]
        self._all_th = self.thresholds + ([AP25] if AP25 not in self.thresholds else [])
        self.min_region = int(min_region)
        self._m = {(c, t): _Matches() for c in self.classes for t in self._all_th}
        self._has_gt = dict.fromkeys(self.classes, False)
        self._has_pred = dict.fromkeys(self.classes, False)
        self.scenes = 0

    def add(self, gt_labels: np.ndarray, gt_instances: np.ndarray, pred: PredictedInstances) -> None:
        """Add one scene.

        ``gt_labels (N,)`` int class index (-1 unlabelled); ``gt_instances (N,)`` int ids (-1 none).
        """
        sem = np.asarray(gt_labels, np.int64).reshape(-1)
        ins = np.asarray(gt_instances, np.int64).reshape(-1)
        n = len(sem)
        if len(ins) != n:
            raise InputError(f"instance GT: {n} labels but {len(ins)} instance ids")
        scored = np.zeros(self.num_classes + 1, bool)
        scored[self.classes] = True
        sem_ok = np.where((sem >= 0) & (sem < self.num_classes), sem, self.num_classes)
        void = ~scored[sem_ok]
        # GT instances: compact ids, class = the most common label among their points
        has = ins >= 0
        ids, comp = np.unique(ins[has], return_inverse=True)
        g = len(ids)
        gid = np.full(n, -1, np.int64)
        gid[has] = comp
        votes = np.zeros((g, self.num_classes + 1), np.int64)
        np.add.at(votes, (comp, sem_ok[has]), 1)
        g_cls = votes.argmax(axis=1)
        g_size = np.bincount(comp, minlength=g)
        g_scored = scored[g_cls]
        g_small = g_size < self.min_region

        masks = []
        for m in pred.masks:
            m = np.asarray(m)
            idx = np.flatnonzero(m) if m.dtype == bool else m.astype(np.int64).reshape(-1)
            if m.dtype == bool and len(m) != n:
                raise InputError(f"instance predictions: a boolean mask of {len(m)} points for {n}")
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise InputError(f"instance predictions: point indices outside 0..{n - 1}")
            masks.append(np.unique(idx))
        keep = [i for i, (lab, m) in enumerate(zip(pred.labels, masks))
                if lab in self._has_pred and len(m) >= self.min_region]  # fmt: skip
        keep.sort(key=lambda i: -pred.scores[i])  # GT take their matches in decreasing confidence
        p_cls = pred.labels[keep]
        p_score = pred.scores[keep]
        p_size = np.array([len(masks[i]) for i in keep], np.int64)
        inter = np.zeros((len(keep), g), np.int64)
        p_void = np.zeros(len(keep), np.int64)
        for r, i in enumerate(keep):
            m = masks[i]
            inter[r] = np.bincount(gid[m][gid[m] >= 0], minlength=g)
            p_void[r] = int(void[m].sum())
        union = p_size[:, None] + g_size[None, :] - inter
        iou = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)

        for c in self.classes:
            gts = np.flatnonzero((g_cls == c) & g_scored & ~g_small)
            small = np.flatnonzero((g_cls == c) & g_small)
            prs = np.flatnonzero(p_cls == c)
            self._has_gt[c] |= len(gts) > 0
            self._has_pred[c] |= len(prs) > 0
            ignored = p_void[prs] + inter[np.ix_(prs, small)].sum(axis=1)
            sub = iou[np.ix_(prs, gts)]
            for t in self._all_th:
                acc = self._m[(c, t)]
                used = np.zeros(len(prs), bool)
                for j in range(len(gts)):
                    best = None
                    for r in np.flatnonzero((sub[:, j] > t) & ~used):
                        if best is None:
                            best = p_score[prs[r]]
                            used[r] = True
                        else:  # a duplicate: the lower confidence is a false positive
                            acc.true.append(0.0)
                            acc.score.append(min(best, p_score[prs[r]]))
                            best = max(best, p_score[prs[r]])
                    if best is None:
                        acc.missed += 1
                    else:
                        acc.true.append(1.0)
                        acc.score.append(best)
                for r in range(len(prs)):
                    if not (sub[r] > t).any() and ignored[r] <= t * p_size[prs[r]]:
                        acc.true.append(0.0)
                        acc.score.append(p_score[prs[r]])
        self.scenes += 1

    def class_ap(self, c: int, t: float) -> float:
        """AP of class ``c`` at IoU threshold ``t`` (NaN without GT, 0 with GT but no prediction)."""
        if not self._has_gt[c]:
            return math.nan
        if not self._has_pred[c]:
            return 0.0
        acc = self._m[(c, t)]
        return average_precision(np.array(acc.true), np.array(acc.score), acc.missed)

    def result(self, names: Sequence[str], split: Mapping[str, Sequence[int]] | None = None) -> InstanceScores:
        """Per-class AP / AP50 / AP25 and their means over the classes with GT (and per split part)."""
        per = {}
        for c in self.classes:
            ap = [self.class_ap(c, t) for t in self.thresholds]
            per[names[c]] = {
                "ap": math.nan if all(math.isnan(x) for x in ap) else float(np.nanmean(ap)),
                "ap50": self.class_ap(c, 0.5) if 0.5 in self.thresholds else math.nan,
                "ap25": self.class_ap(c, AP25),
            }
        means = _means(per, [names[c] for c in self.classes])
        parts = {}
        for part, members in (split or {}).items():
            mem = [names[c] for c in members if c in self._has_gt]
            parts[part] = _means(per, mem)
        return InstanceScores(means["ap"], means["ap50"], means["ap25"], per, parts, self.scenes, self.thresholds)


def _means(per: dict[str, dict[str, float]], members: list[str]) -> dict[str, float]:
    out = {}
    for key in ("ap", "ap50", "ap25"):
        vals = [per[m][key] for m in members if not math.isnan(per[m][key])]
        out[key] = float(np.mean(vals)) if vals else math.nan
    return out


@dataclass
class InstanceScores:
    """Instance AP (fractions in [0, 1]; NaN where no class had GT).

    Attributes:
        ap, ap50, ap25: means over the classes with GT; per_class: name -> {"ap", "ap50", "ap25"};
        splits: part ("head"/"common"/"tail") -> the same three means over its classes.
    """

    ap: float
    ap50: float
    ap25: float
    per_class: dict[str, dict[str, float]]
    splits: dict[str, dict[str, float]]
    scenes: int
    thresholds: list[float]

    def to_dict(self) -> dict:
        def clean(x):
            return None if isinstance(x, float) and math.isnan(x) else x

        return {
            "ap": clean(self.ap), "ap50": clean(self.ap50), "ap25": clean(self.ap25),
            "per_class": {k: {m: clean(v) for m, v in d.items()} for k, d in self.per_class.items()},
            "splits": {k: {m: clean(v) for m, v in d.items()} for k, d in self.splits.items()},
            "scenes": self.scenes,
            "iou_thresholds": [round(t, 4) for t in self.thresholds],
        }  # fmt: skip


def format_instance_table(s: InstanceScores) -> str:
    """A plain-text table: one line per class with GT, then the means (percent)."""

    def pct(x: float) -> str:
        return "      -" if math.isnan(x) else f"{100 * x:7.1f}"

    lines = [f"{'class':<24}{'AP':>7}{'AP50':>7}{'AP25':>7}"]
    for name, d in s.per_class.items():
        if not math.isnan(d["ap25"]):
            lines.append(f"{name:<24}{pct(d['ap'])}{pct(d['ap50'])}{pct(d['ap25'])}")
    lines.append(f"{'mean':<24}{pct(s.ap)}{pct(s.ap50)}{pct(s.ap25)}")
    for part, d in s.splits.items():
        lines.append(f"{part:<24}{pct(d['ap'])}{pct(d['ap50'])}{pct(d['ap25'])}")
    return "\n".join(lines)


#: Classes that are not objects in the instance benchmarks (ScanNet-20 and ScanNet200 leave out wall and floor).
NOT_SCORED = ("wall", "floor")


def thing_classes(names: Sequence[str], exclude: Sequence[str] = NOT_SCORED) -> list[int]:
    """Indices of the classes an instance benchmark scores (all but ``exclude``)."""
    ex = {e.lower() for e in exclude}
    return [i for i, n in enumerate(names) if n.lower() not in ex]


def predictions(result, class_map: np.ndarray) -> PredictedInstances:
    """A :class:`geopurify.instances.InstanceSet` as predictions in an evaluated label set.

    ``class_map (C,)`` int64: the evaluated class index of each of the set's class names (-1 = none).
    """
    labels = [int(class_map[i.label]) if 0 <= i.label < len(class_map) else -1 for i in result.instances]
    return PredictedInstances(labels, [i.confidence for i in result.instances], [i.points for i in result.instances])
