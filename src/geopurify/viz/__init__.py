"""Pictures and the interactive viewer: PLY export, headless PNG renders, the viser viewer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .ply import heatmap_colors, instance_colors, label_colors, palette, write_ply
from .render import Panel, render_panels, render_png

if TYPE_CHECKING:  # the viewer (and viser) load only when it starts
    from .viewer import OutputBundle, ViewerServer

__all__ = [
    "write_ply",
    "palette",
    "heatmap_colors",
    "label_colors",
    "instance_colors",
    "render_png",
    "render_panels",
    "Panel",
    "serve",
    "load_output",
]


def serve(*args: Any, **kwargs: Any) -> ViewerServer:
    """Start the interactive viewer; see :func:`geopurify.viz.viewer.serve`."""
    from .viewer import serve as _serve

    return _serve(*args, **kwargs)


def load_output(out_dir: str | os.PathLike, instances: Any = None) -> OutputBundle:
    """Read a segmentation output folder; see :func:`geopurify.viz.viewer.load_output`."""
    from .viewer import load_output as _load

    return _load(out_dir, instances)
