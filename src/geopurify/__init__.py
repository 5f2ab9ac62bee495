"""geopurify: open-vocabulary 3D semantic segmentation with geometry-guided purification."""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__", "load"]


def load(name_or_path, map_location: str = "cpu"):
    """Load a student checkpoint (safetensors + config); see :func:`geopurify.student.load`."""
    from .student import load as _load

    return _load(name_or_path, map_location=map_location)
