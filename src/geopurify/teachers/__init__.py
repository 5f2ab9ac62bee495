"""Frozen 3D teachers whose feature similarities the student distils."""

from .base import TEACHERS, Teacher, build_teacher
from .geometric import GeometricTeacher, rgb_to_lab, shape_descriptors
from .precomputed import PrecomputedTeacher
from .sonata import SonataTeacher
from .superpoints import felzenszwalb, voxel_edges

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
