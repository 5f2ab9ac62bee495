"""2D vision-language encoders: per-frame feature maps and text embeddings in the same space.

Built-in names: ``precomputed``, ``clip``, ``xdecoder``, ``lseg``; third parties register through the
entry-point group ``geopurify.encoders`` (a factory taking keyword options, optionally ``scene``).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

from . import clip, lseg, precomputed, xdecoder  # noqa: F401  (register the built-ins)
from .base import ENCODERS, Encoder, FeatureMap, TextEmbeddings
from .cache import CachedEncoder, FeatureCache, default_cache_dir
from .text import load_text_embeddings

log = logging.getLogger(__name__)

__all__ = [
    "ENCODERS",
    "CachedEncoder",
    "Encoder",
    "FeatureCache",
    "FeatureMap",
    "TextEmbeddings",
    "build_encoder",
    "default_cache_dir",
    "load_text_embeddings",
]


def build_encoder(
    name: str,
    scene=None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    **options,
) -> Encoder:
    """Build the encoder ``name`` with ``options``.

    Args:
        name: a name in :data:`ENCODERS`.
        scene: the :class:`~geopurify.io.scene.Scene` it will encode (``precomputed`` reads its
            ``root``; the feature cache is keyed by its name and folder).
        cache: wrap a cacheable encoder in the on-disk float16 feature cache (needs ``scene``).
        cache_dir: cache root; default ``$GEOPURIFY_CACHE`` or ``~/.cache/geopurify``.
        options: passed to the encoder factory (e.g. ``weights=PATH`` for ``clip``).
    """
    factory = ENCODERS.get(name)
    ENCODERS.check_options(name, {k: v for k, v in options.items() if k != "scene"})
    params = inspect.signature(factory).parameters
    takes_scene = "scene" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    encoder = factory(scene=scene, **options) if takes_scene else factory(**options)
    if cache and scene is not None and getattr(encoder, "cacheable", True):
        root = getattr(scene, "root", None)
        scene_key = f"{scene.name}@{Path(root).resolve() if root is not None else ''}"
        encoder = CachedEncoder(encoder, FeatureCache(encoder.cache_key(), scene_key, cache_dir))
        log.debug("feature cache for %s: %s", name, encoder.cache.dir)
    return encoder
