"""Which encoder and which class text a scene gets (the ``--encoder auto`` and ``--text`` rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from .base import Encoder, TextEmbeddings
from .text import load_text_embeddings


def check_encoder(name: str, options: dict[str, Any] | None = None) -> None:
    """The cheap checks of an encoder that will run, before a scene is read (a cloud fused from depth takes
    seconds to minutes): a known name, options it accepts, and the files its options must name (its
    weights), without loading a model. ``auto`` is decided by the scene, so it is checked later.

    For ``encode`` only: ``segment`` and ``train`` may read features encoded on another machine, by an
    encoder that is not installed or has no weights here (:func:`geopurify.encoders.encode.scene_encoder`)."""
    if name == "auto":
        return
    from . import ENCODERS

    ENCODERS.check_options(name, dict(options or {}))


def nothing_to_lift(scene) -> str | None:
    """Why no 2D encoder can label ``scene`` (no usable frame and no per-point 2D features; one line),
    else None: :func:`encoder_for_scene` refuses it, and ``inspect`` exits 2 on it."""
    if scene.frames or scene.point_features is not None:
        return None
    if scene.skipped_frames:
        return f"{scene.name}: every frame was dropped ({scene.skipped_frames}); no 2D features to lift"
    return (f"{scene.name}: no camera frames and no per-point 2D features, so no 2D encoder can label it; "
            "give per-point features (a point cloud's features_2d key or sibling .npy: see Readers), or "
            "render posed views of a scan with `geopurify synth --from-scan SCAN OUT` and segment OUT")


def lifts_frames(scene, name: str) -> bool:
    """Whether ``segment --encoder name`` lifts the scene's frames (False: it takes the per-point features).

    ``none`` is what ``segment`` calls the per-point features; ``auto`` lifts when the scene folder has
    ``features_2d/`` (even beside per-point features), as :func:`encoder_for_scene` chooses.
    """
    if name == "none":
        return False
    if name == "auto":
        return _features_dir(scene) is not None or scene.point_features is None
    return True


def reads_feature_files(scene, name: str) -> bool:
    """Whether ``segment --encoder name`` reads the scene's ``features_2d/<id>.npz`` (the ``precomputed``
    encoder, which ``auto`` picks when the folder is there), as :func:`encoder_for_scene` chooses."""
    return name == "precomputed" or (name == "auto" and _features_dir(scene) is not None)


def _features_dir(scene) -> Path | None:
    root = scene.root if scene.root is not None and Path(scene.root).is_dir() else None
    return root / "features_2d" if root is not None and (root / "features_2d").is_dir() else None


def encoder_for_scene(scene, name: str = "auto", options: dict[str, Any] | None = None,
                      classes: list[str] | None = None) -> Encoder | None:
    """The 2D encoder for ``scene``, or None when the scene carries per-point features.

    ``auto``: ``precomputed`` when the scene folder has ``features_2d/``, else the per-point features.
    """
    from . import build_encoder

    why = nothing_to_lift(scene)
    if why:  # before a model loads: it would have no images
        raise InputError(why)
    if name == "auto":
        if _features_dir(scene) is not None:
            name = "precomputed"
        elif scene.point_features is not None:
            return None
        else:
            raise ConfigError(
                f"{scene.name}: no features_2d/ folder and no per-point features; choose a 2D encoder "
                "with --encoder (clip, xdecoder, lseg) and its --weights"
            )
    if name == "precomputed":
        return build_encoder(name, scene=scene, **dict(options or {}))
    from .encode import scene_encoder

    return scene_encoder(scene, name, dict(options or {}), classes)  # reads what `geopurify encode` wrote


def scene_text_file(scene) -> Path | None:
    """The scene's own class text embeddings: ``<root>/text_embeddings.npz``, else
    ``<root>/features_2d/text_embeddings.npz`` (where ``geopurify encode`` writes them); None if neither."""
    if scene.root is None:
        return None
    root = Path(scene.root)
    root = root if root.is_dir() else root.parent
    for cand in (root / "text_embeddings.npz", root / "features_2d" / "text_embeddings.npz"):
        if cand.is_file():
            return cand
    return None


def class_text(scene, text: str | None = None, classes: list[str] | None = None,
               encoder: Encoder | None = None) -> TextEmbeddings:
    """Class names and (C, D) embeddings: ``text`` (a file), ``classes`` through the encoder's text tower,
    or the scene's ``text_embeddings.npz``.

    Raises:
        ConfigError: ``classes`` with an encoder that has no text tower, or no source of class text.
    """
    if text:
        return load_text_embeddings(Path(text))
    # --classes, else the encoder's own vocabulary (xdecoder's; the classes `geopurify encode` embedded)
    classes = list(classes or []) or list(getattr(encoder, "classes", None) or [])
    if classes:
        if encoder is None:
            raise ConfigError(f"{scene.name}: --classes needs a 2D encoder with a text tower (--encoder clip ...)")
        try:
            emb = encoder.encode_text(list(classes))
        except NotImplementedError:
            raise ConfigError(
                f"{scene.name}: encoder {encoder.name!r} has no text tower, so --classes cannot be encoded; "
                "pass --text FILE.npz, or --encoder clip --weights PATH"
            ) from None
        return TextEmbeddings(names=list(classes), embeddings=np.asarray(emb, np.float32))
    pinned = getattr(encoder, "text_file", None)  # features read from another folder: only its text fits
    if pinned is not None:
        if Path(pinned).is_file():
            return load_text_embeddings(Path(pinned))
        raise ConfigError(
            f"{scene.name}: no {Path(pinned).name} in {Path(pinned).parent} (an unfinished `geopurify encode`, "
            "or one without --classes), and the scene folder's class text may come from another encoder; "
            "pass --classes (rerun encode with them), or --text FILE.npz"
        )
    found = scene_text_file(scene)
    if found is not None:
        return load_text_embeddings(found)
    raise ConfigError(
        f"{scene.name}: no class text embeddings; pass --text FILE.npz (names, embeddings) "
        "or --classes with an encoder that has a text tower (e.g. --encoder clip --weights PATH)"
    )
