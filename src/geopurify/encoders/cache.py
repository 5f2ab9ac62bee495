"""On-disk cache of feature maps (float16 ``.npz``), one folder per encoder configuration and scene.

Files have the ``features_2d/`` format (:func:`~geopurify.encoders.precomputed.write_feature_file`).
Layout: ``<cache root>/features/<encoder slug>-<hash>/<scene slug>-<hash>/<frame_id>.npz`` where the
encoder part comes from :meth:`Encoder.cache_key` and the scene part from the scene name and folder.
The root is ``$GEOPURIFY_CACHE`` or ``~/.cache/geopurify``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import FrameError
from .base import Encoder, FeatureMap
from .precomputed import read_feature_file, write_feature_file

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$GEOPURIFY_CACHE`` if set, else ``~/.cache/geopurify``."""
    env = os.environ.get("GEOPURIFY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "geopurify"


def _slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:n].strip("._") or "x"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def to_float16(fmap: FeatureMap) -> FeatureMap:
    """The map as it is stored: float16 features, int32 segment ids."""
    if fmap.dense is not None:
        return FeatureMap(dense=np.ascontiguousarray(fmap.dense, dtype=np.float16))
    return FeatureMap(
        segments=np.ascontiguousarray(fmap.segments, dtype=np.int32),
        embeddings=np.ascontiguousarray(fmap.embeddings, dtype=np.float16),
    )


class FeatureCache:
    """Float16 feature maps of one scene under one encoder key."""

    def __init__(self, encoder_key: str, scene_key: str, root: str | Path | None = None) -> None:
        root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.dir = (
            root
            / "features"
            / f"{_slug(encoder_key)}-{_digest(encoder_key)}"
            / f"{_slug(scene_key)}-{_digest(scene_key)}"
        )

    def path(self, frame_id: str) -> Path:
        return self.dir / f"{_slug(frame_id, 80)}-{_digest(frame_id)[:6]}.npz"

    def load(self, frame_id: str) -> FeatureMap | None:
        """The cached map, or None when absent or unreadable (it is then recomputed)."""
        path = self.path(frame_id)
        if not path.is_file():
            return None
        try:
            return read_feature_file(path)
        except FrameError as exc:
            log.warning("ignoring unreadable cache file %s: %s", path, exc)
            return None

    def save(self, frame_id: str, fmap: FeatureMap) -> None:
        write_feature_file(self.path(frame_id), fmap)


class CachedEncoder(Encoder):
    """Wraps an encoder: frames found in the cache are read back, the rest encoded and stored.

    Fresh results are returned in their stored float16 form, so a cached run equals the first one.
    ``hits`` and ``misses`` count frames.
    """

    def __init__(self, inner: Encoder, cache: FeatureCache) -> None:
        self.inner, self.cache = inner, cache
        self.name = inner.name
        self.hits = 0
        self.misses = 0

    def encode(self, frame) -> FeatureMap:
        return self.encode_batch([frame])[0]

    def encode_batch(self, frames: list) -> list[FeatureMap]:
        out: list[FeatureMap | None] = [self.cache.load(f.frame_id) for f in frames]
        todo = [i for i, m in enumerate(out) if m is None]
        self.hits += len(frames) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self.inner.encode_batch([frames[i] for i in todo])
            for i, fmap in zip(todo, fresh):
                fmap = to_float16(fmap)
                self.cache.save(frames[i].frame_id, fmap)
                out[i] = fmap
        return out

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        return self.inner.encode_text(prompts)

    def cache_key(self) -> str:
        return self.inner.cache_key()
