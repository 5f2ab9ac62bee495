"""Geometry-Guided Pooling (purification) of lifted features with student affinities."""

from __future__ import annotations

from ..utils.lazy import lazy_exports

_WHERE = {
    "PoolConfig": "config",
    "PoolResult": "pool",
    "affinity_from_neighbors": "pool",
    "build_affinity": "pool",
    "class_logits": "pool",
    "neighbors": "pool",
    "pool_logits": "pool",
    "propagate": "pool",
    "purify": "pool",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
