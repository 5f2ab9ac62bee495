"""Synthetic indoor rooms in the ScanNet export layout, with a simulated, imperfect 2D VLM.

>>> from geopurify.synthetic import SyntheticConfig, make_scene
>>> path = make_scene("data/synthetic", "synth0000_00", SyntheticConfig(seed=0))  # doctest: +SKIP

Names load their module on first use, so the CLI can read :class:`SynthConfig` without torch or scipy.
"""

from __future__ import annotations

from ..labels import nyu40_to_scannet20  # noqa: F401  (re-exported)
from ..utils.lazy import lazy_exports

_WHERE = {
    "SCANNET20_NAMES": "config", "SCANNET20_NYU40": "config", "ScanRenderConfig": "config",
    "SynthConfig": "config", "SyntheticConfig": "config", "VLMSimConfig": "config",
    "Layout": "layout", "build_layout": "layout",
    "SceneReading": "masks", "ViewMasks": "masks", "decide_reading": "masks", "simulate_view": "masks",
    "Mesh": "mesh", "mesh_for_target": "mesh", "sample_surfaces": "mesh",
    "Render": "render", "intrinsics": "render", "look_at": "render", "render": "render",
    "rescale_intrinsics": "render",
    "LabelledScan": "scan", "ScanRenderResult": "scan", "crop_scan": "scan", "read_labelled_scan": "scan",
    "render_scan": "scan",
    "SceneTruth": "scene", "load_truth": "scene", "make_cameras": "scene", "make_dataset": "scene",
    "make_scene": "scene",
    "MaskOutput": "vlm", "VLMErrors": "vlm", "decide_errors": "vlm", "simulate_masks": "vlm",
    "text_embeddings": "vlm",
}  # fmt: skip
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

__all__ = sorted([*_WHERE, "nyu40_to_scannet20"])
