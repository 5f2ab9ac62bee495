"""Student checkpoints: a safetensors file whose metadata holds the JSON :class:`StudentConfig`."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import torch

from ..errors import ConfigError, InputError, load_reason, needs_pickle, pickle_refusal
from ..utils.atomic import atomic_path
from ..utils.finite import all_finite
from .model import AffinityNet, StudentConfig

log = logging.getLogger(__name__)

METADATA_KEY = "geopurify_student"
FILE_NAME = "student.safetensors"


def save(model: AffinityNet, path: str | os.PathLike) -> Path:
    """Write ``model`` weights + config to ``path``: a ``.safetensors`` file, or a folder (-> student.safetensors).

    Atomic: the file appears only when complete. Returns the file written.
    """
    from safetensors.torch import save_file

    model = getattr(model, "module", model)  # unwrap DDP
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / FILE_NAME
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {METADATA_KEY: model.config.to_json(), "format": "pt"}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    log.info("saved student (%s) to %s", model.config.to_json(), path)
    return path


#: What an unfinished ``geopurify train`` leaves in its folder (see :mod:`geopurify.distill.train`).
TRAIN_CHECKPOINT = "checkpoint.pt"


def _unfinished(folder: Path) -> str:
    """Why ``folder`` holds a training checkpoint but no student: the step it stands at and what to do."""
    ck_path = folder / TRAIN_CHECKPOINT
    try:
        ck = torch.load(str(ck_path), map_location="cpu", weights_only=True)
        at = f"at step {int(ck['step'])} of {int(ck['train_config']['steps'])}"
    except Exception:  # noqa: BLE001 (only the hint's step is lost; loading it says what is wrong)
        at = "(its step unreadable)"
    return (f"{folder}: training did not finish (no {FILE_NAME}; {TRAIN_CHECKPOINT} stands {at}): rerun the "
            f"same `geopurify train` command to resume it, or pass --student {ck_path} to use those weights")


def _resolve(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        cand = path / FILE_NAME
        if not cand.is_file():
            if (path / TRAIN_CHECKPOINT).is_file():
                raise InputError(_unfinished(path))
            raise InputError(f"{path}: folder has no {FILE_NAME}")
        return cand
    if not path.is_file():
        raise InputError(f"{path}: no student checkpoint there (expected a .safetensors file or a folder)")
    return path


def _build(config_dict: dict, state: dict, source: Path, map_location: str) -> AffinityNet:
    try:
        config = StudentConfig.from_dict(config_dict)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: bad student config: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    model = AffinityNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise InputError(f"{source}: weights do not match the stored config ({detail[:300]})") from None
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not all_finite(v)]
    if bad:  # a diverged training run: every embedding would be NaN, found only after lifting
        raise InputError(f"{source}: the weights hold NaN or infinite values (e.g. {bad[0]}); retrain, lower --lr")
    model.source = source
    return model.to(map_location).eval()


def load(name_or_path: str | os.PathLike, map_location: str = "cpu") -> AffinityNet:
    """Load a student from a ``.safetensors`` file, a folder holding ``student.safetensors``, or a
    foreign/training ``.pt``/``.pth`` file (read with ``torch.load(weights_only=True)``; a pickle that
    would run code is refused with :class:`ConfigError`).

    A ``.pt`` must hold a dict with ``config`` (dict) and ``model`` or ``state_dict`` (tensors), as the
    training checkpoints do. Truncated or mismatching files raise :class:`InputError` naming the file.
    """
    path = _resolve(name_or_path)
    if path.suffix in (".pt", ".pth"):
        return _load_torch(path, map_location)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    if METADATA_KEY not in meta:
        raise InputError(f"{path}: safetensors file has no '{METADATA_KEY}' config in its metadata")
    try:
        config_dict = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError:
        raise InputError(f"{path}: student config in the metadata is not valid JSON") from None
    return _build(config_dict, state, path, map_location)


def _load_torch(path: Path, map_location: str) -> AffinityNet:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    # KeyError: a file that is neither a zip nor a pickle (torch reads its first bytes as a pickle opcode)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError, KeyError) as exc:
        if needs_pickle(exc):
            raise ConfigError(f"{path}: refused, the pickle is not plain weights ({pickle_refusal(exc)})") from None
        raise InputError(f"{path}: not a readable torch file ({load_reason(exc)})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("config"), dict):
        raise InputError(f"{path}: expected a dict with 'config' and 'model' (or 'state_dict')")
    state = obj.get("model", obj.get("state_dict"))
    if not isinstance(state, dict):
        raise InputError(f"{path}: no 'model' or 'state_dict' tensors in the checkpoint")
    return _build(obj["config"], state, path, map_location)
