"""Semantic-segmentation metrics from confusion matrices: mIoU, mAcc, f-mIoU, foreground mIoU, splits.

Conventions:

* ``conf[i, j]`` counts points whose ground truth is class ``i`` and prediction is class ``j``.
* IoU_c = TP / (TP + FP + FN) = conf[c, c] / (row_c + col_c - conf[c, c]); Acc_c = TP / row_c.
* A class with no ground-truth point is *absent*: its IoU/Acc are NaN (``None`` in JSON and "-" in tables)
  and it is left out of every mean, even if it was predicted. (ScanNet's own script would give such a
  class IoU 0 when it is predicted; on dataset-level confusions every benchmark class is present, so the
  two agree there. Per scene, excluding absent classes is the only meaningful choice.)
* Dataset-level scores come from the *sum* of per-scene confusions (:func:`accumulate`), never from the
  mean of per-scene mIoUs.

Protocols (``scores(..., protocol=...)``):

* ``"geopurify"``: every class of ``names`` is evaluated under its own name.
* ``"openscene"``: every class, with ``"otherfurniture"`` reported (and prompted) as ``"other"``, as
  OpenScene evaluates ScanNet-20.
* ``"paper"``: GeoPurify's table protocol: ``"otherfurniture"`` is not a class: points whose ground truth is
  otherfurniture are ignored (not counted as wrong); predictions *of* otherfurniture on other points still
  count as misses for their true class. Foreground mIoU leaves out wall, floor and ceiling.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = [
    "PROTOCOLS",
    "ConfusionAccumulator",
    "Scores",
    "accumulate",
    "confusion",
    "format_table",
    "protocol_names",
    "scores",
]

PROTOCOLS = ("geopurify", "openscene", "paper")
_OTHER = ("otherfurniture", "other furniture", "other")
_CHUNK = 1 << 22  # points per bincount pass in :func:`confusion`


def confusion(
    gt: np.ndarray | Sequence[int],
    pred: np.ndarray | Sequence[int],
    num_classes: int,
    ignore: int = -1,
) -> np.ndarray:
    """Confusion matrix of one scene.

    Args:
        gt: (N,) integer ground-truth class indices; ``ignore`` marks unlabelled points.
        pred: (N,) integer predicted class indices in ``[0, num_classes)`` (only checked where gt is valid).
        num_classes: C.
        ignore: the ground-truth value to skip.

    Returns:
        (C, C) int64, rows = ground truth, columns = prediction.

    Raises:
        InputError: shapes differ, or a non-ignored gt / its prediction lies outside ``[0, C)``.
    """
    if num_classes <= 0:
        raise ConfigError(f"num_classes must be positive, got {num_classes}")
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise InputError(f"confusion: gt has shape {gt.shape} but pred has shape {pred.shape}")
    for arr, what in ((gt, "gt"), (pred, "pred")):
        if arr.size and arr.dtype.kind not in "iub":
            raise InputError(f"confusion: {what} must be integer class indices, got dtype {arr.dtype}")
    gt = gt.reshape(-1)
    pred = pred.reshape(-1)
    flat = np.zeros(num_classes * num_classes, dtype=np.int64)
    # Chunked so that the int64 temporaries stay bounded for scans with hundreds of millions of points.
    for start in range(0, max(gt.size, 1), _CHUNK):
        g = gt[start : start + _CHUNK].astype(np.int64)
        p = pred[start : start + _CHUNK].astype(np.int64)
        valid = g != ignore
        g, p = g[valid], p[valid]
        if g.size and (g.min() < 0 or g.max() >= num_classes):
            bad = g[(g < 0) | (g >= num_classes)][0]
            raise InputError(f"confusion: gt contains class {bad}, outside [0, {num_classes}) and not ignore={ignore}")
        if p.size and (p.min() < 0 or p.max() >= num_classes):
            bad = p[(p < 0) | (p >= num_classes)][0]
            raise InputError(f"confusion: pred contains class {bad} on a labelled point, outside [0, {num_classes})")
        flat += np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def accumulate(confusions: Iterable[np.ndarray]) -> np.ndarray:
    """Dataset-level confusion: the sum of per-scene (C, C) confusions. Raises on mixed sizes or none."""
    total: np.ndarray | None = None
    for i, conf in enumerate(confusions):
        conf = _check_conf(conf, f"confusion #{i}")
        if total is None:
            total = conf.copy()
        elif conf.shape != total.shape:
            raise InputError(f"accumulate: confusion #{i} has shape {conf.shape}, expected {total.shape}")
        else:
            total += conf
    if total is None:
        raise InputError("accumulate: no confusion matrices given")
    return total


@dataclass
class ConfusionAccumulator:
    """Running dataset-level confusion: ``acc.add(gt, pred)`` per scene, then ``acc.matrix``.

    Attributes:
        num_classes: C.
        matrix: (C, C) int64 running sum.
        scenes: number of scenes added.
    """

    num_classes: int
    matrix: np.ndarray = field(init=False)
    scenes: int = 0

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def add(self, gt: np.ndarray, pred: np.ndarray, ignore: int = -1) -> np.ndarray:
        """Add one scene's points; returns that scene's (C, C) confusion."""
        conf = confusion(gt, pred, self.num_classes, ignore=ignore)
        self.matrix += conf
        self.scenes += 1
        return conf

    def add_confusion(self, conf: np.ndarray) -> None:
        conf = _check_conf(conf, "confusion")
        if conf.shape != self.matrix.shape:
            raise InputError(f"confusion has shape {conf.shape}, expected {self.matrix.shape}")
        self.matrix += conf
        self.scenes += 1


@dataclass
class Scores:
    """Metrics of one confusion matrix under one protocol. Fractions in [0, 1]; NaN/None = undefined.

    Attributes:
        protocol: ``"geopurify"``, ``"openscene"`` or ``"paper"``.
        names: evaluated class names (K of them, after the protocol's renaming/dropping).
        iou: (K,) float64 per-class IoU, NaN for classes absent from the ground truth.
        acc: (K,) float64 per-class accuracy (recall), NaN for absent classes.
        gt_points: (K,) int64 ground-truth points per class.
        pred_points: (K,) int64 predictions per class (on evaluated points).
        miou: mean IoU over present classes (None if none is present).
        macc: mean accuracy over present classes.
        fmiou: frequency-weighted IoU, sum_c (gt_c / total) IoU_c over present classes.
        fg_miou: mean IoU over present classes not named in ``foreground_exclude``.
        overall_acc: correctly labelled / evaluated points.
        split_miou: ``{"head": ..., "common": ..., "tail": ...}`` mean IoU of present members, when a split
            was given.
        num_points: evaluated points (ground truth not ignored).
        ignored_classes: classes whose ground-truth points the protocol ignores.
        foreground: names of the classes that foreground mIoU averages over (present or not).
        outside_points: evaluated points predicted as a class outside the label set (``outside=True``):
            misses of their true class, counted in every class's row but no class themselves.
    """

    protocol: str
    names: list[str]
    iou: np.ndarray
    acc: np.ndarray
    gt_points: np.ndarray
    pred_points: np.ndarray
    miou: float | None
    macc: float | None
    fmiou: float | None
    fg_miou: float | None
    overall_acc: float | None
    split_miou: dict[str, float | None]
    num_points: int
    ignored_classes: list[str]
    foreground: list[str]
    outside_points: int = 0

    @property
    def present(self) -> np.ndarray:
        """(K,) bool: classes with at least one ground-truth point."""
        return self.gt_points > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None)."""
        return {
            "protocol": self.protocol,
            "miou": self.miou,
            "macc": self.macc,
            "fmiou": self.fmiou,
            "fg_miou": self.fg_miou,
            "overall_acc": self.overall_acc,
            **{f"{k}_miou": v for k, v in self.split_miou.items()},
            "num_points": int(self.num_points),
            "num_classes": len(self.names),
            "num_present": int(self.present.sum()),
            "ignored_classes": list(self.ignored_classes),
            "foreground": list(self.foreground),
            "outside_points": int(self.outside_points),
            "per_class": [
                {
                    "name": n,
                    "iou": _opt(self.iou[i]),
                    "acc": _opt(self.acc[i]),
                    "gt_points": int(self.gt_points[i]),
                    "pred_points": int(self.pred_points[i]),
                }
                for i, n in enumerate(self.names)
            ],
        }


def protocol_names(names: Sequence[str], protocol: str = "geopurify") -> list[str]:
    """The class names a protocol evaluates (and prompts the text encoder with).

    >>> protocol_names(["wall", "otherfurniture"], "openscene")
    ['wall', 'other']
    >>> protocol_names(["wall", "otherfurniture"], "paper")
    ['wall']
    """
    _check_protocol(protocol)
    if protocol == "openscene":
        return ["other" if _is_other(n) else n for n in names]
    if protocol == "paper":
        return [n for n in names if not _is_other(n)]
    return list(names)


def scores(
    conf: np.ndarray,
    names: Sequence[str],
    protocol: str = "geopurify",
    foreground_exclude: Sequence[str] = ("wall", "floor", "ceiling"),
    split: Mapping[str, Sequence[int | str]] | None = None,
    outside: bool = False,
) -> Scores:
    """Score a (C, C) confusion matrix (see the module docstring for definitions and protocols).

    Args:
        conf: (C, C) integer confusion, rows = ground truth; usually a dataset-level sum (:func:`accumulate`).
        names: C class names, in index order.
        protocol: ``"geopurify"`` | ``"openscene"`` | ``"paper"``.
        foreground_exclude: class names left out of foreground mIoU (case-insensitive).
        split: optional ``{"head": [...], "common": [...], "tail": [...]}`` of class indices (into ``names``)
            or class names, e.g. ``LabelSet.split``; members the protocol drops are skipped.
        outside: ``conf`` is (C + 1, C + 1) for C ``names``: its last column counts predictions of classes
            outside the label set (:func:`geopurify.eval.gt.prediction_confusion`). They are misses of
            their point's class, but that column is no class: not in ``names``, the per-class results, the
            class count or the foreground (:attr:`Scores.outside_points` counts them). Its row must be 0.

    Classes absent from the ground truth (no gt point) are excluded from every mean and reported as NaN
    (``None`` in :meth:`Scores.to_dict`), even when they were predicted.
    """
    _check_protocol(protocol)
    conf = _check_conf(conf, "confusion")
    names = list(names)
    if len(names) + int(outside) != conf.shape[0]:
        raise InputError(f"scores: {len(names)} class names{' and the outside column' if outside else ''} for a "
                         f"{conf.shape[0]}x{conf.shape[0]} confusion")
    C = len(names)
    if outside and conf[C].any():
        raise InputError("scores: the outside-the-label-set row of the confusion has ground-truth points")
    dropped = [i for i, n in enumerate(names) if protocol == "paper" and _is_other(n)]
    kept = np.array([i for i in range(C) if i not in dropped], dtype=np.int64)
    work = conf.copy()
    work[dropped, :] = 0  # ignored ground truth: those points are not evaluated at all
    outside_points = int(work[:, C].sum()) if outside else 0
    tp = np.diag(work)[kept].astype(np.float64)
    # Row sums over *all* columns: predicting a dropped class on a kept class's point is still a miss.
    gt = work.sum(axis=1)[kept]
    pred = work.sum(axis=0)[kept]
    present = gt > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(present, tp / (gt + pred - tp), np.nan)
        acc = np.where(present, tp / gt, np.nan)
    eval_names = protocol_names([names[i] for i in kept], protocol)
    total = int(work.sum())

    excl = {s.lower() for s in foreground_exclude}
    fg = np.array([n.lower() not in excl for n in eval_names], dtype=bool)
    split_miou: dict[str, float | None] = {}
    if split:
        position = {int(orig): k for k, orig in enumerate(kept)}
        for part, members in split.items():
            idx = [position[m] for m in (_member_index(m, names, part) for m in members) if m in position]
            sel = np.zeros(len(kept), dtype=bool)
            sel[idx] = True
            split_miou[part] = _mean(iou, sel & present)
    if not present.any():
        logger.warning("scores: no evaluated class has ground-truth points; all means are undefined")
    fmiou = None
    if present.any():
        fmiou = float(np.sum(gt[present] * iou[present]) / gt[present].sum())
    return Scores(
        protocol=protocol,
        names=eval_names,
        iou=iou,
        acc=acc,
        gt_points=gt.astype(np.int64),
        pred_points=pred.astype(np.int64),
        miou=_mean(iou, present),
        macc=_mean(acc, present),
        fmiou=fmiou,
        fg_miou=_mean(iou, present & fg),
        overall_acc=float(tp.sum() / total) if total else None,
        split_miou=split_miou,
        num_points=total,
        ignored_classes=[names[i] for i in dropped],
        foreground=[n for n, f in zip(eval_names, fg) if f],
        outside_points=outside_points,
    )


def format_table(s: Scores, digits: int = 1) -> str:
    """Plain-text table: one row per class (IoU, Acc in %, gt points), then the summary metrics.

    Absent classes show ``-``.
    """
    width = max([len("class")] + [len(n) for n in s.names])
    lines = [
        f"protocol: {s.protocol}   classes: {len(s.names)} ({int(s.present.sum())} present)   "
        f"points: {s.num_points}" + (f"   ignored: {', '.join(s.ignored_classes)}" if s.ignored_classes else "")
        + (f"   predicted outside the label set: {s.outside_points}" if s.outside_points else ""),
        f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}  {'points':>10}",
        "-" * (width + 28),
    ]
    for i, n in enumerate(s.names):
        lines.append(
            f"{n:<{width}}  {_pct(s.iou[i], digits):>6}  {_pct(s.acc[i], digits):>6}  {int(s.gt_points[i]):>10}"
        )
    lines.append("-" * (width + 28))
    summary = [
        ("mIoU", s.miou),
        ("mAcc", s.macc),
        ("f-mIoU", s.fmiou),
        ("fg-mIoU", s.fg_miou),
        ("allAcc", s.overall_acc),
    ] + [(f"{k}-mIoU", v) for k, v in s.split_miou.items()]
    lines.append("   ".join(f"{k} {_pct(v, digits)}" for k, v in summary))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- helpers


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown evaluation protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")


def _check_conf(conf: np.ndarray, what: str) -> np.ndarray:
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or conf.shape[0] == 0:
        raise InputError(f"{what}: expected a square (C, C) matrix, got shape {conf.shape}")
    if conf.dtype.kind not in "iu":
        if conf.dtype.kind != "f" or not np.array_equal(conf, np.round(conf)):
            raise InputError(f"{what}: expected integer counts, got dtype {conf.dtype}")
    if (conf < 0).any():
        raise InputError(f"{what}: negative counts")
    return conf.astype(np.int64)


def _is_other(name: str) -> bool:
    return name.strip().lower() in _OTHER


def _member_index(m: int | str, names: Sequence[str], part: str) -> int:
    if isinstance(m, str):
        try:
            return list(names).index(m)
        except ValueError:
            raise InputError(f"scores: split {part!r} names class {m!r}, which is not in the class names") from None
    m = int(m)
    if not 0 <= m < len(names):
        raise InputError(f"scores: split {part!r} has class index {m}, outside [0, {len(names)})")
    return m


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def _opt(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _pct(x: float | None, digits: int) -> str:
    return "-" if x is None or math.isnan(x) else f"{100.0 * x:.{digits}f}"
