"""Ground truth of a scene as indices into a label set, and predictions mapped onto it by class name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.scene import Scene
from ..labels import get_label_set, raw_to_index
from ..segment.query import norm_name
from .metrics import confusion


def name_mapping(pred_names: list[str], target_names: list[str]) -> np.ndarray:
    """(P,) int64 index of each predicted class name in ``target_names`` (by normalised name), -1 if absent."""
    lookup = {norm_name(n): i for i, n in enumerate(target_names)}
    return np.array([lookup.get(norm_name(n), -1) for n in pred_names], dtype=np.int64)


@dataclass
class PointSample:
    """Up to 1024 of an output's points at evenly spaced indices, kept instead of all of them to tell,
    once its scene is read, whether the output was made from that scene.

    index: (S,) int64 point indices; points: (S, 3) float32 their positions; num_points: N.
    """

    num_points: int
    index: np.ndarray
    points: np.ndarray

    @classmethod
    def of(cls, points: np.ndarray, size: int = 1024) -> PointSample:
        """The sample of (N, 3) ``points``."""
        n = len(points)
        index = np.unique(np.linspace(0, n - 1, min(size, n)).round().astype(np.int64)) if n else np.zeros(0, np.int64)
        return cls(n, index, np.asarray(points[index], np.float32))

    def check(self, scene: Scene, out: str | Path, gt: str | Path, tolerance: float = 1e-3) -> None:
        """Refuse (InputError) a scene of another point count, or whose points at the sampled indices lie
        more than ``tolerance`` metres from the output's: the output of another scene, scored silently
        against this one's labels otherwise."""
        if scene.num_points != self.num_points:
            raise InputError(f"{out}: {self.num_points} labels but the scene {gt} has {scene.num_points} points")
        theirs = np.asarray(scene.points[self.index], np.float64)
        off = np.abs(theirs - self.points).max(axis=1) if len(self.index) else np.zeros(0)
        if len(off) and not np.all(off <= tolerance):
            i = int(np.argmax(~(off <= tolerance)))
            raise InputError(
                f"{out}: made from another scene than {gt}: the same {self.num_points} points in count, but point "
                f"{int(self.index[i])} is at {np.round(self.points[i].astype(np.float64), 3).tolist()} there and at "
                f"{np.round(theirs[i], 3).tolist()} in the scene"
            )


def gt_indices(scene: Scene, label_set: str) -> np.ndarray:
    """Scene GT as (N,) int64 indices into ``label_set``; -1 = ignore.

    Raises:
        InputError: no GT, a GT that does not map to ``label_set``, or indices outside ``[-1, C)`` (class
            indices of another set, or another ignore value such as 255): scored as a class otherwise.
    """
    gt = _gt_indices(scene, label_set)
    C = len(get_label_set(label_set).names)
    bad = (gt < -1) | (gt >= C)
    if bad.any():
        values = np.unique(gt[bad])
        shown = ", ".join(str(int(v)) for v in values[:5]) + (", ..." if len(values) > 5 else "")
        raise InputError(
            f"{scene.root or scene.name}: ground truth has class index {shown} on {int(bad.sum())} points, outside "
            f"the {C} classes of {label_set} (0..{C - 1}, -1 = unlabelled)"
        )
    return gt


def _gt_indices(scene: Scene, label_set: str) -> np.ndarray:
    if scene.labels is None and "scannet200_raw" not in scene.meta:
        raise InputError(f"{scene.root or scene.name}: scene has no ground-truth labels")
    if scene.label_set == label_set:
        return scene.labels.astype(np.int64)
    if scene.label_set is None:
        raise InputError(f"{scene.root or scene.name}: unknown label set of the ground truth")
    if label_set == "scannet200" and "scannet200_raw" in scene.meta:  # .sens + aggregation + segs
        return raw_to_index(get_label_set("scannet200"), np.asarray(scene.meta["scannet200_raw"]))
    if f"labels_{label_set}" in scene.meta:  # e.g. a Pointcept folder with both segment20 and segment200
        return np.asarray(scene.meta[f"labels_{label_set}"], np.int64)
    if label_set.startswith("matterport") and "matterport_category_raw" in scene.meta \
            and "category_mapping" in scene.meta:  # a Matterport region: OpenScene's name-based sets
        from ..labels import matterport_category_map, matterport_to_index, read_labels_tsv

        lut = matterport_category_map(read_labels_tsv(scene.meta["category_mapping"]), label_set)
        return matterport_to_index(np.asarray(scene.meta["matterport_category_raw"]), lut)
    if scene.label_set == "nyu40" and label_set in ("scannet20", "nyu40", "matterport21"):
        return raw_to_index(get_label_set(label_set), scene.labels)  # these sets use NYU40 ids
    if scene.label_set == "matterport_category":  # what the reader keeps without the category table
        raise InputError(
            f"{scene.root or scene.name}: ground truth is raw Matterport category ids, and no category_mapping.tsv "
            "was found to map them to a label set; put Matterport's category_mapping.tsv in the house folder or "
            "a metadata/ folder up to 3 folders above the region"
        )
    raise InputError(
        f"{scene.root or scene.name}: ground truth is in {scene.label_set}, which does not map to {label_set}; "
        f"pass --label-set {scene.label_set}"
    )


def prediction_confusion(pred: np.ndarray, pred_names: list[str], gt: np.ndarray,
                         target_names: list[str]) -> np.ndarray:
    """(C + 1, C + 1) int64 confusion of predictions (indices into ``pred_names``) against GT indices.

    The extra last class collects predictions of classes outside the label set: wrong, never ignored;
    it has no GT points, so the means leave it out.
    """
    C = len(target_names)
    if len(pred) != len(gt):
        raise InputError(f"{len(pred)} predicted labels but the ground truth has {len(gt)} points")
    mapped = name_mapping(pred_names, target_names)
    ok = (pred >= 0) & (pred < len(mapped))
    p = np.full(len(pred), C, np.int64)
    p[ok] = mapped[pred[ok]]
    p[p < 0] = C
    return confusion(gt, p, C + 1)


def gt_in_classes(gt: np.ndarray, gt_names: list[str], pred_names: list[str]) -> np.ndarray:
    """(N,) int64 GT as indices into the prediction's classes (matched by class name); -1 for unlabelled
    points and for GT classes the prediction does not have."""
    back = name_mapping(gt_names, pred_names)
    gt = np.asarray(gt, np.int64)
    ok = gt >= 0
    out = np.full(len(gt), -1, np.int64)
    out[ok] = back[gt[ok]]
    return out


def gt_colors(gt: np.ndarray, gt_names: list[str], pred_names: list[str], palette: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 GT shown in the prediction's palette (matched by class name); unmatched dark grey."""
    gi = gt_in_classes(gt, gt_names, pred_names)
    col = np.full((len(gt), 3), 40, np.uint8)
    col[gi >= 0] = palette[gi[gi >= 0]]
    return col
