"""Synthetic indoor rooms in the ScanNet export layout, with a simulated, imperfect 2D VLM.

>>> from geopurify.synthetic import SyntheticConfig, make_scene
>>> path = make_scene("data/synthetic", "synth0000_00", SyntheticConfig(seed=0))  # doctest: +SKIP
"""

from ..labels import nyu40_to_scannet20
from .config import SCANNET20_NAMES, SCANNET20_NYU40, ScanRenderConfig, SyntheticConfig, VLMSimConfig
from .layout import Layout, build_layout
from .masks import SceneReading, ViewMasks, decide_reading, simulate_view
from .mesh import Mesh, mesh_for_target, sample_surfaces
from .render import Render, intrinsics, look_at, render, rescale_intrinsics
from .scan import LabelledScan, ScanRenderResult, crop_scan, read_labelled_scan, render_scan
from .scene import SceneTruth, load_truth, make_cameras, make_dataset, make_scene
from .vlm import MaskOutput, VLMErrors, decide_errors, simulate_masks, text_embeddings

__all__ = [
    "SCANNET20_NAMES", "SCANNET20_NYU40", "LabelledScan", "Layout", "MaskOutput", "Mesh", "Render",
    "ScanRenderConfig", "ScanRenderResult", "SceneReading", "VLMSimConfig", "ViewMasks", "crop_scan",
    "decide_reading", "read_labelled_scan", "render_scan", "simulate_view",
    "SceneTruth", "SyntheticConfig", "VLMErrors", "build_layout", "decide_errors", "intrinsics", "load_truth",
    "look_at", "make_cameras", "make_dataset", "make_scene", "mesh_for_target", "nyu40_to_scannet20", "render",
    "rescale_intrinsics", "sample_surfaces", "simulate_masks", "text_embeddings",
]  # fmt: skip
