"""Label points by cosine similarity with text embeddings (chunked, memory-bounded)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..utils import linalg
from ..utils.finite import all_finite

ArrayLike = np.ndarray | torch.Tensor

_EPS = 1e-12
#: Default rows per chunk: 65536 x C float32 scores stay small for any realistic C.
DEFAULT_CHUNK = 65536


def _tensor(x: ArrayLike, name: str, where: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{where}: {name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise InputError(f"{where}: {name} must be 2-D, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        x = x.float()
    return x.detach()


def prepare(features: ArrayLike, text: ArrayLike, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``features (N, D)`` and ``text (C, D)``; return features and unit text rows (float32).

    Text goes to the features' device. Raises :class:`InputError` on a dimension mismatch, an empty
    text set or non-finite values.
    """
    f = _tensor(features, "features", where)
    t = _tensor(text, "text embeddings", where).to(device=f.device, dtype=torch.float32)
    if t.shape[0] == 0:
        raise InputError(f"{where}: no text embeddings given (C = 0)")
    if f.shape[1] != t.shape[1]:
        raise InputError(f"{where}: features have D={f.shape[1]} but text embeddings have D={t.shape[1]}")
    if not all_finite(t):
        raise InputError(f"{where}: text embeddings contain NaN or infinite values")
    return f, t / t.norm(dim=1, keepdim=True).clamp_min(_EPS)


def _check_chunk(chunk: int) -> int:
    if int(chunk) != chunk or chunk < 1:
        raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
    return int(chunk)


def _finite_chunk(f: torch.Tensor, where: str) -> torch.Tensor:
    f = f.to(torch.float32)
    if not all_finite(f):
        raise InputError(f"{where}: features contain NaN or infinite values")
    return f


def _cosine_chunk(f: torch.Tensor, t_unit: torch.Tensor, where: str) -> torch.Tensor:
    f = _finite_chunk(f, where)
    # Zero rows get similarity 0 to every class (their label is then class 0).
    return linalg.mm(f / f.norm(dim=1, keepdim=True).clamp_min(_EPS), t_unit.T)


def _like(out: torch.Tensor, ref: ArrayLike) -> ArrayLike:
    return out.cpu().numpy() if isinstance(ref, np.ndarray) else out


def similarity(features: ArrayLike, text: ArrayLike, chunk: int = DEFAULT_CHUNK) -> ArrayLike:
    """Cosine similarity ``(N, C)`` float32 of ``features (N, D)`` with ``text (C, D)``.

    Returns numpy for numpy ``features``, else a tensor on their device.
    """
    chunk = _check_chunk(chunk)
    f, t = prepare(features, text, "similarity")
    out = torch.empty((f.shape[0], t.shape[0]), dtype=torch.float32, device=f.device)
    for s in range(0, f.shape[0], chunk):
        out[s : s + chunk] = _cosine_chunk(f[s : s + chunk], t, "similarity")
    return _like(out, features)


def classify(features: ArrayLike, text: ArrayLike, chunk: int = DEFAULT_CHUNK) -> ArrayLike:
    """Class index ``(N,)`` int64 of the most cosine-similar text embedding per row.

    Only ``(chunk, C)`` scores exist at a time. Also correct for pooled logits ``(N, C)`` when
    called with ``text = eye(C)`` (cosine with one-hot rows is a positive rescale of each logit row),
    although ``logits.argmax(1)`` is simpler there. Returns numpy for numpy input, else a tensor.
    """
    chunk = _check_chunk(chunk)
    f, t = prepare(features, text, "classify")
    out = torch.empty(f.shape[0], dtype=torch.int64, device=f.device)
    for s in range(0, f.shape[0], chunk):
        fc = _finite_chunk(f[s : s + chunk], "classify")
        # A row's norm is a positive scale of all its C scores, so the argmax needs no normalising
        # (zero rows score 0 everywhere: class 0, as with cosines). Same labels up to float rounding.
        out[s : s + chunk] = linalg.mm(fc, t.T).argmax(dim=1)  # oneDNN on the CPU: 16 vs 35 ms, 67k x 512 x 20
    return _like(out, features)
