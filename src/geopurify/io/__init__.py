"""Readers: every layout becomes a :class:`~geopurify.io.scene.Scene` through :func:`read_scene`."""

from . import scannet  # noqa: F401  (registers the reader)
from .registry import READERS, Reader, ReadOptions, read_scene
from .scene import Frame, Scene

# Optional readers register themselves on import; a missing module must not break the rest.
for _mod in ("sens", "matterport", "rgbd", "pointcloud", "pointcept"):
    try:
        __import__(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{__name__}.{_mod}":
            raise

__all__ = ["READERS", "Reader", "ReadOptions", "read_scene", "Frame", "Scene"]
