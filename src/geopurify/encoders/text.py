"""Reading class text embeddings (``text_embeddings.npz``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import TextEmbeddings


def load_text_embeddings(path: str | Path) -> TextEmbeddings:
    """Read ``names`` (C,) strings and ``embeddings`` (C, D) floats; rows come back unit-normalised.

    Raises InputError naming the file when it is missing, unreadable or inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: text-embedding file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "names" not in z.files or "embeddings" not in z.files:
                raise InputError(f"{path}: needs arrays 'names' and 'embeddings', found {sorted(z.files)}")
            names, emb = z["names"], z["embeddings"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: unreadable text-embedding file ({exc})") from exc
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise InputError(f"{path}: 'names' must be a 1-D string array, got {names.dtype} {names.shape}")
    if emb.ndim != 2 or len(emb) != len(names) or not np.issubdtype(emb.dtype, np.floating):
        raise InputError(f"{path}: 'embeddings' must be float ({len(names)}, D), got {emb.dtype} {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise InputError(f"{path}: 'embeddings' holds NaN or infinite values")
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    if np.any(norms == 0):
        raise InputError(f"{path}: class {names[np.argmin(norms)]!s} has an all-zero embedding")
    names_list = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    if len(set(names_list)) != len(names_list):
        raise InputError(f"{path}: duplicate class names")
    return TextEmbeddings(names=names_list, embeddings=(emb / norms[:, None]).astype(np.float32))
