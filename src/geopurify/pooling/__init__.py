"""Geometry-Guided Pooling (purification) of lifted features with student affinities."""

from .pool import (
    PoolConfig,
    PoolResult,
    affinity_from_neighbors,
    build_affinity,
    class_logits,
    neighbors,
    pool_logits,
    propagate,
    purify,
)

__all__ = [
    "PoolConfig",
    "PoolResult",
    "affinity_from_neighbors",
    "build_affinity",
    "class_logits",
    "neighbors",
    "pool_logits",
    "propagate",
    "purify",
]
