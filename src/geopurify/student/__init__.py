"""Student Affinity Network: sparse 3D convs mapping lifted features to affinity embeddings."""

from .checkpoint import load, save
from .model import AffinityNet, StudentConfig, student_inputs
from .sparse_conv import KernelMap, SubMConv3d, build_kernel_map, submanifold_conv3d

__all__ = [
    "AffinityNet",
    "StudentConfig",
    "student_inputs",
    "save",
    "load",
    "KernelMap",
    "SubMConv3d",
    "build_kernel_map",
    "submanifold_conv3d",
]
