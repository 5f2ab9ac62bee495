"""geopurify: open-vocabulary 3D semantic segmentation with geometry-guided purification."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .version import __version__

if TYPE_CHECKING:
    from .student import AffinityNet

__all__ = ["__version__", "load"]


def load(name_or_path: str | os.PathLike, map_location: str = "cpu") -> AffinityNet:
    """Load a student checkpoint (safetensors + config); see :func:`geopurify.student.load`."""
    from .student import load as _load

    return _load(name_or_path, map_location=map_location)
