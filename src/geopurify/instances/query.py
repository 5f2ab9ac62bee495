"""Object queries: rank a scene's instances by similarity to a phrase."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .group import Instance, InstanceSet

log = logging.getLogger(__name__)


@dataclass
class ObjectMatch:
    """One instance's match to a phrase: ``score`` is the cosine of its mean feature with the phrase."""

    instance: Instance
    score: float

    def to_dict(self, with_points: bool = True) -> dict:
        i = self.instance
        d = {"id": i.id, "name": i.name, "score": round(self.score, 6), "confidence": round(i.confidence, 6),
             "num_points": int(len(i.points)), "aabb": i.aabb.to_dict(), "obb": i.obb.to_dict()}  # fmt: skip
        if with_points:
            d["points"] = i.points.tolist()
        return d


def instance_features(result: InstanceSet, features: np.ndarray) -> np.ndarray:
    """(I, D) float32 unit mean of the unit point features of every instance, in instance order."""
    out = np.zeros((len(result.instances), features.shape[1]), np.float32)
    for r, inst in enumerate(result.instances):
        f = np.asarray(features[inst.points], np.float32)
        f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        m = f.mean(axis=0)
        out[r] = m / max(float(np.linalg.norm(m)), 1e-12)
    return out


def rank_objects(result: InstanceSet, features: np.ndarray, phrase: np.ndarray) -> list[ObjectMatch]:
    """Instances sorted by cosine similarity to ``phrase (D,)``, best first (ties: lower id first).

    ``features`` are the scene's (N, D) per-point features (``features.npy`` of the segment output).
    """
    if features.ndim != 2 or features.shape[0] != result.num_points:
        raise InputError(f"rank_objects: {features.shape[0]} feature rows for {result.num_points} points")
    phrase = np.asarray(phrase, np.float32).reshape(-1)
    if phrase.shape[0] != features.shape[1]:
        raise InputError(f"rank_objects: phrase is {phrase.shape[0]}-d but the features are {features.shape[1]}-d")
    if not result.instances:
        return []
    sims = instance_features(result, features) @ (phrase / max(float(np.linalg.norm(phrase)), 1e-12))
    order = np.argsort(-sims, kind="stable")
    return [ObjectMatch(result.instances[i], float(sims[i])) for i in order]


def write_object_ranking(path, result: InstanceSet, features: np.ndarray, phrase: np.ndarray,
                         text: str = "") -> list[ObjectMatch]:  # fmt: skip
    """Rank the instances for one phrase and write them, best first, with masks and boxes, to ``path`` (JSON)."""
    from ..utils.atomic import write_json

    ranked = rank_objects(result, features, phrase)
    write_json(path, {"phrase": text, "objects": [m.to_dict() for m in ranked]})
    if ranked:
        best = ranked[0]
        log.info("query %r: best object #%d %s (score %.3f) -> %s", text, best.instance.id, best.instance.name,
                 best.score, path)
    return ranked
