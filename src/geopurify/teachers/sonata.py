"""Adapter for the Sonata self-supervised point transformer (facebookresearch/sonata).

Sonata's default transform expects ``coord``, ``color`` in 0-255 and ``normal``; features are brought
back to full resolution as in its demo: two up-casts concatenating the parent's features with the
child's (through ``pooling_parent`` / ``pooling_inverse``), plain copies for the remaining levels, then
the grid-sampling ``inverse`` map back to the input points (here: our voxels).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import missing_dependency
from ..geometry import VoxelGrid, estimate_normals
from ..io.scene import Scene
from ..utils.device import pick_device
from .base import TEACHERS, Teacher

log = logging.getLogger(__name__)


@TEACHERS.register("sonata")
class SonataTeacher(Teacher):
    """Sonata features per voxel.

    Args:
        weights: a model name known to ``sonata.load`` (``"sonata"``, downloaded from ``repo_id``) or the
            path of a local checkpoint (offline use).
        repo_id: Hugging Face repository of the named weights.
        device: ``auto``, ``cpu`` or ``cuda``.
        custom_config: passed to ``sonata.load`` (e.g. ``{"enable_flash": False}`` without flash-attn).
        concat_levels: how many up-casts concatenate features (the demo uses 2).
    """

    name = "sonata"

    def __init__(
        self,
        weights: str = "sonata",
        repo_id: str = "facebook/sonata",
        device: str = "auto",
        custom_config: dict | None = None,
        concat_levels: int = 2,
    ) -> None:
        self.weights, self.repo_id, self.device = weights, repo_id, device
        self.custom_config, self.concat_levels = custom_config, int(concat_levels)
        self._model = None

    def cache_key(self) -> str:
        return f"sonata-{self.weights}-{self.concat_levels}"

    def _load(self):
        try:
            import sonata
        except ImportError:
            err = missing_dependency("sonata", None, "the sonata teacher")
            raise type(err)(
                f"{err} (github.com/facebookresearch/sonata); then pass weights=<name, or a local .pth path offline>"
            ) from None
        if self._model is None:
            if self.weights in getattr(sonata.model, "MODELS", ["sonata"]):
                model = sonata.load(self.weights, repo_id=self.repo_id, custom_config=self.custom_config)
            else:
                model = sonata.load(self.weights, custom_config=self.custom_config)
            self._model = model.to(pick_device(self.device)).eval()
        return sonata, self._model

    def features(self, scene: Scene, grid: VoxelGrid) -> np.ndarray:
        import torch

        sonata, model = self._load()
        normals = grid.reduce(scene.normals) if scene.normals is not None else estimate_normals(grid.centers)
        point = {
            "coord": grid.centers.astype(np.float32),
            "color": (np.clip(grid.reduce(scene.colors), 0, 1) * 255.0).astype(np.float32),
            "normal": normals.astype(np.float32),
        }
        point = sonata.transform.default()(point)
        device = next(model.parameters()).device
        with torch.inference_mode():
            for key in list(point.keys()):
                if isinstance(point[key], torch.Tensor):
                    point[key] = point[key].to(device)
            point = model(point)
            for _ in range(self.concat_levels):
                parent = point.pop("pooling_parent")
                inverse = point.pop("pooling_inverse")
                parent.feat = torch.cat([parent.feat, point.feat[inverse]], dim=-1)
                point = parent
            while "pooling_parent" in point.keys():
                parent = point.pop("pooling_parent")
                inverse = point.pop("pooling_inverse")
                parent.feat = point.feat[inverse]
                point = parent
            feat = point.feat[point.inverse]
        out = feat.float().cpu().numpy()
        if out.shape[0] != grid.num_voxels:
            raise RuntimeError(f"sonata returned {out.shape[0]} rows for {grid.num_voxels} voxels")
        return out
