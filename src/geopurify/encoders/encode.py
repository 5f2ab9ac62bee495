"""``geopurify encode``: run a 2D encoder over a scene's frames once, into ``features_2d/``.

The output is the documented input format (README, "the input contract"): one ``<frame_id>.npz`` per
colour frame holding ``feat`` (h, w, D) float16, or ``segments`` (h, w) int32 + ``embeddings`` (S, D)
float16, plus

* ``encoder.json``: which encoder wrote the folder (name, :meth:`Encoder.cache_key`, options without
  paths' contents), the frames written and skipped, ``"status": "complete"`` once every frame was tried;
* ``text_embeddings.npz``: ``names`` + ``embeddings`` of ``classes`` (or of the encoder's own vocabulary,
  as X-Decoder has), when the encoder has a text tower.

Every file is written to a temporary name and renamed, so a kill leaves no partial ``.npz``; a rerun skips
the frames whose file is already there and readable, and removes stale temporary files. ``segment
--encoder NAME`` reads the same folder through :func:`scene_encoder` when its ``encoder.json`` names NAME:
the GPU-heavy step runs once on a GPU machine and training and segmentation on a laptop.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FrameError, InputError
from ..utils.atomic import atomic_open, write_json
from ..utils.fields import check_field_types
from ..utils.progress import bar_disable
from .base import ENCODERS, Encoder, FeatureMap
from .precomputed import read_feature_file, write_feature_file

log = logging.getLogger(__name__)

MANIFEST = "encoder.json"
TEXT_FILE = "text_embeddings.npz"
FOLDER = "features_2d"


@dataclass
class EncodeConfig:
    """``geopurify encode`` options.

    Attributes:
        encoder: a name in :data:`ENCODERS` other than ``precomputed``.
        encoder_options: passed to the encoder (``weights``, ``config``, ``classes``, ...).
        out: output folder; default ``<scene>/features_2d``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (given to the encoder).
        batch_size: frames per ``encode_batch`` call.
        classes: class names whose text embeddings are written to ``text_embeddings.npz``.
        overwrite: replace a folder written by another encoder or by hand.
    """

    encoder: str = "clip"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    device: str = "auto"
    batch_size: int = 4
    classes: list[str] | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.encoder in ("auto", "precomputed"):
            raise ConfigError(f"encode needs a model encoder (e.g. clip, xdecoder, lseg), not {self.encoder!r}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"encode batch_size must be >= 1, got {self.batch_size}")
        self.batch_size = int(self.batch_size)


@dataclass
class EncodeResult:
    """What :func:`encode_scene` did. ``failed`` counts skipped frames by reason (``bad_color`` ...)."""

    out_dir: Path
    written: int
    reused: int
    failed: dict[str, int]
    seconds: float


# ----------------------------------------------------------------------------- the file format
def feature_path(out_dir: Path, frame_id: str) -> Path:
    return Path(out_dir) / f"{frame_id}.npz"


def read_manifest(out_dir: Path) -> dict | None:
    """The folder's ``encoder.json``, or None when absent or unreadable."""
    import json

    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("ignoring unreadable %s", path)
        return None
    return data if isinstance(data, dict) and "encoder" in data else None


def _remove_stale_temporaries(out_dir: Path) -> int:
    n = 0
    for tmp in out_dir.glob(".*.tmp"):  # atomic_path's names: .<file>.<random>.tmp
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def _valid(path: Path, dim: int | None) -> bool:
    if not path.is_file():
        return False
    try:
        fmap = read_feature_file(path)
    except FrameError as exc:
        log.warning("re-encoding %s: %s", path.name, exc)
        return False
    return dim is None or fmap.dim == dim


# ----------------------------------------------------------------------------- encoding
def _with_classes(name: str, options: dict[str, Any], classes: list[str] | None) -> dict[str, Any]:
    """Give ``classes`` to an encoder whose features depend on a vocabulary (xdecoder) unless set."""
    opts = dict(options)
    if classes and "classes" not in opts and "classes" in _params(name):
        opts["classes"] = list(classes)
    return opts


def _params(name: str) -> dict:
    try:
        return dict(inspect.signature(ENCODERS.get(name)).parameters)
    except (TypeError, ValueError, ConfigError):  # unknown names fail later, where it matters
        return {}


def _build(name: str, scene, options: dict[str, Any], device: str, classes: list[str] | None = None) -> Encoder:
    from . import build_encoder

    opts = _with_classes(name, options, classes)
    params = _params(name)
    takes_device = not params or "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    if takes_device:
        opts.setdefault("device", device)
    elif device != "auto":
        raise ConfigError(f"encoder {name!r} takes no device option; leave --device at auto")
    return build_encoder(name, scene=scene, cache=False, **opts)


def _out_dir(scene, config: EncodeConfig) -> Path:
    if config.out:
        return Path(config.out).expanduser()
    root = getattr(scene, "root", None)
    if root is None or not Path(root).is_dir():
        raise ConfigError(f"{scene.name}: the scene is not a folder; pass --out DIR for the features")
    return Path(root) / FOLDER


def _check_folder(out_dir: Path, name: str, key: str | None, overwrite: bool) -> None:
    """Refuse to mix features of two encoders (or with files written by hand) in one folder."""
    if not out_dir.is_dir():
        return
    manifest = read_manifest(out_dir)
    files = sorted(p for p in out_dir.glob("*.npz") if p.name != TEXT_FILE)
    if manifest is None and not files:
        return
    same = manifest is not None and manifest.get("encoder") == name and (key is None or manifest.get("key") == key)
    if same:
        return
    what = (
        f"features of encoder {manifest.get('encoder')!r} (key {manifest.get('key')})"
        if manifest is not None
        else f"{len(files)} feature files not written by `geopurify encode`"
    )
    if not overwrite:
        raise ConfigError(f"{out_dir} holds {what}; pass --overwrite to replace them, or --out another folder")
    log.warning("%s: replacing %s", out_dir, what)
    for p in files:
        p.unlink()
    (out_dir / MANIFEST).unlink(missing_ok=True)
    (out_dir / TEXT_FILE).unlink(missing_ok=True)


def encode_scene(scene, config: EncodeConfig, encoder: Encoder | None = None) -> EncodeResult:
    """Encode every frame of ``scene`` into ``features_2d/`` (see the module docstring); resumable.

    Args:
        scene: a :class:`~geopurify.io.scene.Scene` with frames.
        config: :class:`EncodeConfig`.
        encoder: an already built encoder (tests, the API); default: built from ``config``.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if not scene.frames:
        raise InputError(f"{scene.name}: no colour frames to encode")
    out_dir = _out_dir(scene, config)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder; pass --out DIR")
    _check_folder(out_dir, config.encoder, None, config.overwrite)  # cheap check before loading a model
    if encoder is None:
        encoder = _build(config.encoder, scene, config.encoder_options, config.device, config.classes)
    key = encoder.cache_key()
    _check_folder(out_dir, config.encoder, key, config.overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = _remove_stale_temporaries(out_dir)
    if stale:
        log.info("%s: removed %d temporary files of an interrupted run", out_dir, stale)
    previous = read_manifest(out_dir) or {}
    manifest = {
        "encoder": config.encoder,
        "key": key,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in config.encoder_options.items()},
        "status": "partial",
    }
    write_json(out_dir / MANIFEST, {**previous, **manifest})

    dim = previous.get("dim")
    todo = [f for f in scene.frames if not _valid(feature_path(out_dir, f.frame_id), dim)]
    reused = len(scene.frames) - len(todo)
    if reused:
        log.info("%s: %d of %d frames already encoded, %d to go", out_dir, reused, len(scene.frames), len(todo))
    failed: dict[str, int] = {}
    written = 0
    bar = tqdm(total=len(todo), desc=f"encode ({config.encoder})", unit="frame", disable=bar_disable())
    for start in range(0, len(todo), config.batch_size):
        batch = todo[start : start + config.batch_size]
        for frame, fmap in _encode_isolating(encoder, batch, failed):
            if dim is None:
                dim = fmap.dim
                write_json(out_dir / MANIFEST, {**manifest, "dim": dim})
            elif fmap.dim != dim:
                raise ConfigError(f"{config.encoder} gave {fmap.dim}-d features for frame {frame.frame_id}, not {dim}")
            write_feature_file(feature_path(out_dir, frame.frame_id), fmap)
            written += 1
        bar.update(len(batch))
    bar.close()

    classes = list(config.classes) if config.classes else list(getattr(encoder, "classes", None) or [])
    if classes:
        try:
            emb = np.asarray(encoder.encode_text(classes), np.float32)
        except NotImplementedError:
            log.info("%s has no text tower; no %s written", config.encoder, TEXT_FILE)
        else:
            with atomic_open(out_dir / TEXT_FILE, "wb") as f:
                np.savez(f, names=np.array(classes), embeddings=emb)
    done = reused + written
    write_json(
        out_dir / MANIFEST,
        {**manifest, "dim": dim, "status": "complete", "frames": done, "failed": failed, "classes": classes or None},
    )
    seconds = time.perf_counter() - t0
    if done == 0:
        raise InputError(f"{scene.name}: no frame could be encoded ({failed})")
    if failed:
        log.warning("%s: %d frames could not be encoded: %s", scene.name, sum(failed.values()), failed)
    return EncodeResult(out_dir=out_dir, written=written, reused=reused, failed=failed, seconds=seconds)


def _encode_isolating(encoder: Encoder, frames: list, failed: dict[str, int]):
    """(frame, map) pairs; a bad frame is logged, counted in ``failed`` and left out."""
    try:
        maps = encoder.encode_batch(frames)
    except FrameError as exc:
        if len(frames) > 1:
            maps = None
        else:
            log.warning("skipping frame %s: %s", frames[0].frame_id, exc)
            failed[exc.reason] = failed.get(exc.reason, 0) + 1
            return
    if maps is not None:
        yield from zip(frames, maps)
        return
    for frame in frames:  # isolate the bad frame(s) of the batch
        try:
            (fmap,) = encoder.encode_batch([frame])
        except FrameError as exc:
            log.warning("skipping frame %s: %s", frame.frame_id, exc)
            failed[exc.reason] = failed.get(exc.reason, 0) + 1
            continue
        yield frame, fmap


# ----------------------------------------------------------------------------- reading it back (segment)
class EncodedFeatures(Encoder):
    """Features written by :func:`encode_scene`, with the model (when it loads) for frames not there.

    ``encode_text`` uses the model when it loaded, else looks the names up in ``text_embeddings.npz``.
    ``text_file``: for a folder named with ``features=DIR``, ``DIR/text_embeddings.npz``, the only class
    text that goes with these features (the scene folder's may come from another encoder); else None.
    """

    cacheable = False

    def __init__(self, out_dir: Path, manifest: dict, model: Encoder | None, foreign: bool = False) -> None:
        self.dir, self.manifest, self.model = Path(out_dir), manifest, model
        self.name = str(manifest["encoder"])
        self.classes = manifest.get("classes")
        self.text_file = self.dir / TEXT_FILE if foreign else None

    def cache_key(self) -> str:
        return str(self.manifest.get("key", self.name))

    def encode(self, frame) -> FeatureMap:
        path = feature_path(self.dir, frame.frame_id)
        if path.is_file():
            return read_feature_file(path)
        if self.model is None:
            raise FrameError(
                f"{path}: frame {frame.frame_id} was not encoded and the {self.name} model is not available here "
                "(run `geopurify encode` again where it is)",
                reason="missing_features",
            )
        (fmap,) = self.model.encode_batch([frame])
        write_feature_file(path, fmap)  # the same cache: the next run reads it back
        return read_feature_file(path)

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        if self.model is not None:
            return self.model.encode_text(prompts)
        from .text import load_text_embeddings

        path = self.dir / TEXT_FILE
        if not path.is_file():
            raise ConfigError(
                f"{self.dir}: no {TEXT_FILE} and the {self.name} model is not available to encode the classes; "
                "rerun `geopurify encode` with --classes, or pass --text FILE"
            )
        text = load_text_embeddings(path)
        index = {n: i for i, n in enumerate(text.names)}
        missing = [p for p in prompts if p not in index]
        if missing:
            raise ConfigError(
                f"{path} has no embedding for {', '.join(missing)} (it holds {len(index)} classes); "
                "rerun `geopurify encode` with these --classes"
            )
        return text.embeddings[[index[p] for p in prompts]]


def scene_encoder(scene, name: str, options: dict[str, Any], classes: list[str] | None = None) -> Encoder:
    """The encoder ``segment``/``train`` use for ``--encoder NAME``.

    When ``<scene>/features_2d/encoder.json`` names ``NAME``, its features are read (and the model, if
    it loads here with the same key, fills frames that are missing); otherwise the model runs, with the
    per-scene feature cache. ``classes`` (``--classes``) become the vocabulary of an encoder that has one.
    Option ``features=DIR`` names the folder `encode --out` wrote instead (e.g. for a read-only scene).
    """
    from . import build_encoder

    options = _with_classes(name, options, classes)
    features = options.pop("features", None)
    root = getattr(scene, "root", None)
    if features is not None:
        out_dir = Path(features).expanduser()
        if read_manifest(out_dir) is None:
            raise ConfigError(f"{out_dir}: no {MANIFEST}; features=DIR must be a folder written by `geopurify encode`")
    else:
        out_dir = Path(root) / FOLDER if root is not None and Path(root).is_dir() else None
    manifest = read_manifest(out_dir) if out_dir is not None else None
    if manifest is None or manifest.get("encoder") != name:
        if features is not None:
            raise ConfigError(f"{out_dir} holds features of encoder {manifest.get('encoder')!r}, not {name!r}")
        return build_encoder(name, scene=scene, **options)
    try:
        model = build_encoder(name, scene=scene, cache=False, **options)
    except ConfigError as exc:  # missing package or weights: read-only use of the encoded frames
        log.info("%s: using %s/ written by `geopurify encode` (%s model not loaded here: %s)", scene.name, out_dir,
                 name, exc)
        if manifest.get("status") != "complete":  # each frame it did not reach is skipped, one warning each
            log.warning("%s: %s/ is an unfinished `geopurify encode` (status %r); the frames it did not reach are "
                        "skipped. Rerun `geopurify encode` where the %s model loads to finish it",
                        scene.name, out_dir, manifest.get("status"), name)
        if options.get("classes") is not None and manifest.get("classes"):
            from .text import vocabulary

            if vocabulary(options["classes"]) != list(manifest["classes"]):
                log.warning("%s: the features in %s were computed with the vocabulary %s, not the classes asked for",
                            scene.name, out_dir, manifest["classes"])
        return EncodedFeatures(out_dir, manifest, None, foreign=features is not None)
    if model.cache_key() != manifest.get("key"):
        log.warning("%s: %s/ was encoded with other %s options (key %s, now %s); running the model instead",
                    scene.name, out_dir, name, manifest.get("key"), model.cache_key())
        return build_encoder(name, scene=scene, **options)
    return EncodedFeatures(out_dir, manifest, model, foreign=features is not None)
