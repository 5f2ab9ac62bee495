"""Frozen 3D teachers whose feature similarities the student distils."""

from .base import TEACHERS, Teacher
from .geometric import GeometricTeacher, rgb_to_lab, shape_descriptors
from .precomputed import PrecomputedTeacher
from .sonata import SonataTeacher
from .superpoints import felzenszwalb, voxel_edges


def build_teacher(name: str = "geometric", **options) -> Teacher:
    """Build a registered teacher: ``geometric`` (default), ``precomputed``, ``sonata`` (the built-ins
    register on import of this package; base.py imports none of them, so there is no circle)."""
    return TEACHERS.build(name, **options)


__all__ = [
    "TEACHERS",
    "Teacher",
    "build_teacher",
    "GeometricTeacher",
    "PrecomputedTeacher",
    "SonataTeacher",
    "felzenszwalb",
    "voxel_edges",
    "rgb_to_lab",
    "shape_descriptors",
]
