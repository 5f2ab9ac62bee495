"""The ``precomputed`` encoder: 2D features already on disk as ``<root>/features_2d/<frame_id>.npz``.

Each file holds either ``feat`` (h, w, D) dense per-pixel features, or ``segments`` (h, w) integer
mask ids (-1 = no mask) with ``embeddings`` (S, D) per-mask features.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FrameError, InputError, load_reason
from ..utils.atomic import atomic_open
from .base import ENCODERS, Encoder, FeatureMap


def write_feature_file(path: Path, fmap: FeatureMap) -> None:
    """Write one map in the format :func:`read_feature_file` reads (float16 features), atomically."""
    if fmap.dense is not None:
        arrays = {"feat": np.ascontiguousarray(fmap.dense, dtype=np.float16)}
    else:
        arrays = {
            "segments": np.ascontiguousarray(fmap.segments, dtype=np.int32),
            "embeddings": np.ascontiguousarray(fmap.embeddings, dtype=np.float16),
        }
    with atomic_open(path, "wb") as f:  # a file handle: np.savez adds no suffix
        np.savez(f, **arrays)


def read_feature_file(path: Path) -> FeatureMap:
    """Read and validate one ``.npz`` feature file; FrameError (reason ``bad_features``) names it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FrameError(f"{path}: unreadable feature file ({load_reason(exc)})", reason="bad_features") from None

    def bad(msg: str) -> FrameError:
        return FrameError(f"{path}: {msg}", reason="bad_features")

    if "feat" in data:
        feat = data["feat"]
        if feat.ndim != 3 or feat.shape[2] < 1 or not np.issubdtype(feat.dtype, np.floating):
            raise bad(f"'feat' must be a float (h, w, D) array, got {feat.dtype} {feat.shape}")
        if not np.all(np.isfinite(feat)):
            raise bad("'feat' holds NaN or infinite values")
        return FeatureMap(dense=feat)
    if "segments" in data and "embeddings" in data:
        seg, emb = data["segments"], data["embeddings"]
        if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer):
            raise bad(f"'segments' must be an integer (h, w) array, got {seg.dtype} {seg.shape}")
        if emb.ndim != 2 or emb.shape[1] < 1 or not np.issubdtype(emb.dtype, np.floating):
            raise bad(f"'embeddings' must be a float (S, D) array, got {emb.dtype} {emb.shape}")
        if not np.all(np.isfinite(emb)):
            raise bad("'embeddings' holds NaN or infinite values")
        if seg.size and (seg.max() >= len(emb) or seg.min() < -1):
            raise bad(
                f"segment ids range over [{seg.min()}, {seg.max()}] but there are {len(emb)} embeddings "
                "(valid ids: -1 for no mask, 0..S-1)"
            )
        return FeatureMap(segments=seg.astype(np.int32), embeddings=emb)
    raise bad(f"expected 'feat' or 'segments' + 'embeddings', found {sorted(data)}")


class PrecomputedEncoder(Encoder):
    """Reads ``<root>/<folder>/<frame_id>.npz``; checks every frame has the same feature dimension."""

    name = "precomputed"
    cacheable = False  # already on disk

    def __init__(self, root: str | Path, folder: str = "features_2d") -> None:
        self.dir = Path(root) / folder
        self._dim: int | None = None
        self._dim_file: Path | None = None

    def encode(self, frame) -> FeatureMap:
        path = self.dir / f"{frame.frame_id}.npz"
        if not path.is_file():
            raise FrameError(f"{path}: no 2D features for frame {frame.frame_id}", reason="missing_features")
        fmap = read_feature_file(path)
        if self._dim is None:
            self._dim, self._dim_file = fmap.dim, path
        elif fmap.dim != self._dim:
            raise InputError(f"{path}: feature dimension {fmap.dim} differs from {self._dim} in {self._dim_file.name}")
        return fmap

    def cache_key(self) -> str:
        return f"precomputed:{self.dir}"


@ENCODERS.register("precomputed")
def _build_precomputed(scene=None, root: str | Path | None = None, folder: str = "features_2d") -> Encoder:
    root = root if root is not None else getattr(scene, "root", None)
    if root is None:
        raise ConfigError("the precomputed encoder needs a scene read from a folder, or root=PATH")
    return PrecomputedEncoder(root, folder)
