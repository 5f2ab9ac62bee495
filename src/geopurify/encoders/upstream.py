"""Shared helpers of the adapters for models installed from source (X-Decoder, LSeg)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:  # torch is imported by the adapters that call these, not at import time here
    import torch as _torch


def import_upstream(module: str, package: str, url: str) -> ModuleType:
    """Import ``module`` from the user's checkout; MissingDependencyError (exit 3) says where to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {package} encoder needs the '{package}' package (not on PyPI): clone {url} and put it on "
            f"PYTHONPATH ({exc.name or module} could not be imported)"
        ) from exc


def need_file(path: str | os.PathLike | None, what: str, encoder: str) -> Path:
    """``path`` as an existing file, else ConfigError saying which option to pass: on the command line
    ``--weights PATH`` for the weights, ``--encoder-opt KEY=PATH`` for the others (``config`` is not
    ``--config``, which reruns a run.json), in Python the encoder option."""
    if path is None or not Path(path).expanduser().is_file():
        key = what.split()[0]
        flag = "--weights PATH" if key == "weights" else f"--encoder-opt {key}=PATH"
        got = "none given" if path is None else f"{path} is not a file"
        raise ConfigError(f"the {encoder} encoder needs {what}: pass {flag} (encoder option {key}=PATH; {got})")
    return Path(path).expanduser()


def resize_rgb(img: np.ndarray, size: tuple[int, int], torch: ModuleType, mode: str = "bilinear") -> _torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 tensor in 0..255, resized to ``size`` (h, w).

    ``torch``: the torch module, passed in by the adapter (this module does not import it).

    ``bilinear`` (pixel centres, no antialiasing) matches OpenCV's ``cv2.resize`` INTER_LINEAR, as in
    GeoPurify's loader; ``nearest`` (source index ``floor(i * H / h)``) matches INTER_NEAREST, as in
    OpenScene's ScanNet frame export.
    """
    if mode not in ("bilinear", "nearest"):
        raise ConfigError(f"resize must be 'bilinear' or 'nearest', got {mode!r}")
    if img.ndim != 3 or img.shape[2] < 3:
        raise ConfigError(f"expected an (H, W, 3) colour image, got shape {img.shape}")
    t = torch.from_numpy(np.array(img[..., :3], copy=True)).permute(2, 0, 1)[None].float()
    if tuple(t.shape[-2:]) != tuple(size):
        if mode == "nearest":
            t = torch.nn.functional.interpolate(t, size=tuple(size), mode="nearest")
        else:
            t = torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)
    return t
