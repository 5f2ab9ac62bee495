"""Adapter for the Sonata self-supervised point transformer (facebookresearch/sonata).

Upstream followed: ``facebookresearch/sonata`` at commit ``18c09ff`` -- ``README.md`` ("Quick Start":
data, transform, model, inference) and ``demo/0_pca.py``; and the way the released GeoPurify calls it
(``tj12323/GeoPurify`` at ``d4f323a``, ``models/affinity_module.py``, ``get_sonata_features`` and the
model set-up near line 250). Read, not copied; re-stated:

* **Input**: the scene's points (not our voxels): ``coord`` (N, 3), ``color`` (N, 3) in 0..255,
  ``normal`` (N, 3) float32.
* **Transform**: ``sonata.transform.default()`` -- ``CenterShift(apply_z=True)``, ``GridSample(grid_size
  =0.02, hash_type="fnv", mode="train", return_grid_coord, return_inverse)``, ``NormalizeColor`` (/255),
  ``ToTensor``, ``Collect(keys=(coord, grid_coord, color, inverse), feat_keys=(coord, color, normal))``.
  ``mode="train"`` keeps a random point per 2 cm cell; the adapter seeds NumPy's generator for that
  call (``seed``) and restores its state, so features are repeatable.
* **Model**: ``sonata.load("sonata", repo_id="facebook/sonata")``; without ``flash_attn`` the README's
  fallback ``custom_config = {"enc_patch_size": [1024] * 5, "enable_flash": False}``.
* **Up-casting**: two up-casts concatenating the parent's features with the child's (``pooling_parent``
  / ``pooling_inverse``), plain copies for the remaining levels, then ``feat[inverse]`` back to every
  input point; per-point features are then averaged over our voxels (:meth:`VoxelGrid.reduce`).
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MissingDependencyError, load_reason, pickle_refusal
from ..geometry import VoxelGrid, estimate_normals
from ..io.scene import Scene
from ..utils.device import pick_device
from .base import TEACHERS, Teacher

log = logging.getLogger(__name__)

# not `pip install sonata`: that name on PyPI is an unrelated project
_INSTALL = ("install facebookresearch/sonata from github.com/facebookresearch/sonata (it is not on PyPI; "
            "PyPI's 'sonata' is another project), then pass --teacher-opt weights=<name, or a local .pth path offline>")
_WEIGHTS = "pass --teacher-opt weights=PATH of a local sonata.pth (from huggingface.co/facebook/sonata)"


def _first_line(exc: BaseException) -> str:
    return load_reason(exc)  # never torch's advice to load a pickle that could run code


@TEACHERS.register("sonata")
class SonataTeacher(Teacher):
    """Sonata features per voxel.

    Args:
        weights: a model name known to ``sonata.load`` (``"sonata"``, downloaded from ``repo_id``) or the
            path of a local checkpoint (offline use).
        repo_id: Hugging Face repository of the named weights.
        device: ``auto``, ``cpu`` or ``cuda``.
        custom_config: passed to ``sonata.load``; default: none with flash-attn installed, else the
            README's ``{"enc_patch_size": [1024] * 5, "enable_flash": False}``.
        concat_levels: how many up-casts concatenate features (the demo uses 2).
        seed: NumPy seed for the random point GridSample keeps per cell.
    """

    name = "sonata"

    def __init__(
        self,
        weights: str = "sonata",
        repo_id: str = "facebook/sonata",
        device: str = "auto",
        custom_config: dict | None = None,
        concat_levels: int = 2,
        seed: int = 53124,
    ) -> None:
        self.weights, self.repo_id, self.device = weights, repo_id, device
        self.custom_config, self.concat_levels, self.seed = custom_config, int(concat_levels), int(seed)
        self._model = None
        self._check_weights(self._import())  # before any scene is lifted, not after the first one

    def _import(self):
        try:
            import sonata
        except ImportError:
            raise MissingDependencyError(f"the sonata teacher needs the 'sonata' package: {_INSTALL}") from None
        if not callable(getattr(sonata, "load", None)):
            raise MissingDependencyError(f"the installed 'sonata' ({getattr(sonata, '__file__', '?')}) is not "
                                         f"facebookresearch/sonata (it has no sonata.load): {_INSTALL}")
        return sonata

    def _check_weights(self, sonata) -> None:
        import torch

        if tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2]) < (2, 4):
            # sonata.load reads its checkpoint with a bare torch.load (any pickle) before torch 2.4
            raise ConfigError(f"the sonata teacher needs torch >= 2.4 (this is {torch.__version__}): older "
                              "sonata.load unpickles its checkpoint without weights_only; upgrade torch")
        names = list(getattr(getattr(sonata, "model", None), "MODELS", ["sonata"]))
        if self.weights not in names and not Path(self.weights).expanduser().is_file():
            # sonata.load would raise a bare RuntimeError ("Model ... not found")
            raise ConfigError(f"the sonata teacher: weights={self.weights!r} is neither a model name "
                              f"({', '.join(names)}) nor a file; {_WEIGHTS}")

    def cache_key(self) -> str:
        return f"sonata-{self.weights}-{self.concat_levels}-s{self.seed}-points"

    def _load(self):
        sonata = self._import()
        if self._model is None:
            custom = self.custom_config
            if custom is None:
                try:
                    import flash_attn  # noqa: F401
                except ImportError:
                    custom = {"enc_patch_size": [1024] * 5, "enable_flash": False}  # the README's fallback
            named = self.weights in getattr(sonata.model, "MODELS", ["sonata"])
            try:
                if named:
                    model = sonata.load(self.weights, repo_id=self.repo_id, custom_config=custom)
                else:
                    model = sonata.load(str(Path(self.weights).expanduser()), custom_config=custom)
            except pickle.UnpicklingError as exc:
                raise ConfigError(f"{self.weights}: refused, the checkpoint is not plain weights "
                                  f"({pickle_refusal(exc)})") from None
            except OSError as exc:  # huggingface_hub's errors (offline, no cache, no such repo) are OSErrors
                if not named:
                    raise ConfigError(f"{self.weights}: cannot read the Sonata checkpoint ({_first_line(exc)}); "
                                      f"{_WEIGHTS}") from None
                raise ConfigError(f"the sonata teacher could not get the {self.weights!r} weights from "
                                  f"{self.repo_id} ({_first_line(exc)}); {_WEIGHTS}") from None
            except (EOFError, KeyError, RuntimeError, ValueError) as exc:
                if named:
                    raise
                raise ConfigError(f"{self.weights}: not a Sonata checkpoint ({type(exc).__name__}: "
                                  f"{_first_line(exc)}); {_WEIGHTS}") from None
            self._model = model.to(pick_device(self.device)).eval()
        return sonata, self._model

    def features(self, scene: Scene, grid: VoxelGrid, lifted: np.ndarray | None = None) -> np.ndarray:
        import torch

        sonata, model = self._load()
        normals = scene.normals if scene.normals is not None else estimate_normals(scene.points)
        point = {
            "coord": np.asarray(scene.points, np.float32),
            "color": (np.clip(scene.colors, 0, 1) * 255.0).astype(np.float32),
            "normal": np.asarray(normals, np.float32),
        }
        state = np.random.get_state()
        np.random.seed(self.seed)  # GridSample(mode="train") draws with the global generator
        try:
            point = sonata.transform.default()(point)
        finally:
            np.random.set_state(state)
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
        per_point = feat.float().cpu().numpy()
        if per_point.shape[0] != len(scene.points):
            raise RuntimeError(f"sonata returned {per_point.shape[0]} rows for {len(scene.points)} points")
        return grid.reduce(per_point)
