"""Evaluation: confusion matrices, mIoU-style scores under three protocols, training-subset selection."""

from __future__ import annotations

from .metrics import (
    PROTOCOLS,
    ConfusionAccumulator,
    Scores,
    accumulate,
    confusion,
    format_table,
    protocol_names,
    scores,
)
from .select import KMeansResult, SceneStats, Selection, kmeans, scene_stats, select_scenes

__all__ = [
    "PROTOCOLS",
    "ConfusionAccumulator",
    "KMeansResult",
    "SceneStats",
    "Scores",
    "Selection",
    "accumulate",
    "confusion",
    "format_table",
    "kmeans",
    "protocol_names",
    "scene_stats",
    "scores",
    "select_scenes",
]
