"""Lift per-frame 2D features onto 3D points, fusing the views that see each point.

Memory stays bounded by the output: frames are streamed, nothing of shape (N, views, D) exists.

* ``mean`` (OpenScene): one pass, running sum (N, D) and count (N,).
* ``consensus`` (GeoPurify): pass 1 sums per-view logits ``feature . text`` into (N, C) and picks the
  consensus class ``c*`` per point; pass 2 scores every view by its logit for ``c*`` and keeps the
  ``top_views`` best as (score, frame, u, v) in (N, k) buffers; pass 3 re-reads only the frames those
  buffers reference and adds ``softmax(score / temperature)``-weighted features. Neural encoders are
  wrapped in an on-disk cache, so passes 2 and 3 read feature maps instead of recomputing them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..encoders.base import Encoder, FeatureMap, TextEmbeddings
from ..errors import ConfigError, FrameError, InputError
from ..geometry import knn
from .projection import camera_points, check_pose, project_camera, visible_mask

log = logging.getLogger(__name__)

FUSIONS = ("consensus", "mean")


@dataclass
class LiftConfig:
    """Options of :func:`lift`.

    Attributes:
        fusion: ``"consensus"`` (paper: top-k views agreeing with the consensus class) or ``"mean"``.
        top_views: k, views kept per point by consensus fusion.
        depth_tolerance: relative depth tolerance of the occlusion test.
        border: pixels ignored along every colour-image edge.
        fill_unseen: give unseen points the feature of their nearest seen point.
        temperature: softmax temperature on the consensus scores (logits).
        batch_size: frames per ``encoder.encode_batch`` call.
    """

    fusion: str = "consensus"
    top_views: int = 3
    depth_tolerance: float = 0.05
    border: int = 10
    fill_unseen: bool = True
    temperature: float = 1.0
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ConfigError(f"lift fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.top_views < 1:
            raise ConfigError(f"lift top_views must be >= 1, got {self.top_views}")
        if not self.depth_tolerance > 0:
            raise ConfigError(f"lift depth_tolerance must be > 0, got {self.depth_tolerance}")
        if self.border < 0:
            raise ConfigError(f"lift border must be >= 0, got {self.border}")
        if not self.temperature > 0:
            raise ConfigError(f"lift temperature must be > 0, got {self.temperature}")
        if self.batch_size < 1:
            raise ConfigError(f"lift batch_size must be >= 1, got {self.batch_size}")


@dataclass
class LiftedFeatures:
    """Result of :func:`lift`.

    Attributes:
        features: (N, D) float32 fused features (filled from the nearest seen point where unseen).
        seen: (N,) bool, True where at least one frame saw the point.
        view_count: (N,) int32 number of frames that saw the point.
        frames_used: frames that contributed at least one point-view.
        skipped_frames: {reason: count} of frames skipped (bad pose, missing features...).
        point_views: total number of (point, frame) observations.
    """

    features: np.ndarray
    seen: np.ndarray
    view_count: np.ndarray
    frames_used: int
    skipped_frames: dict[str, int] = field(default_factory=dict)
    point_views: int = 0


@dataclass
class _View:
    """One frame's observations: visible point indices (M,) int64, colour pixel coords (M,) float64."""

    index: int
    points: np.ndarray
    u: np.ndarray
    v: np.ndarray


def frame_view(points: np.ndarray, frame, config: LiftConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible points of one frame: indices (M,) int64 and colour-pixel coordinates u, v (M,) float64.

    Raises FrameError for a bad pose (reason ``bad_pose``) or a depth image of the wrong size.
    """
    src = frame.source or f"frame {frame.frame_id}"
    check_pose(frame.camera_to_world, src)
    depth = np.asarray(frame.depth())
    if depth.ndim != 2 or tuple(depth.shape) != tuple(frame.depth_size):
        raise FrameError(f"{src}: depth image is {depth.shape}, expected {tuple(frame.depth_size)}", reason="bad_depth")
    cam = camera_points(points, np.linalg.inv(np.asarray(frame.camera_to_world, dtype=np.float64)))
    proj = project_camera(cam, frame.K_color)
    dproj = project_camera(cam, frame.K_depth)
    ok = visible_mask(proj, tuple(frame.color_size), config.border, depth, dproj, config.depth_tolerance)
    idx = np.flatnonzero(ok)
    return idx, proj.u[idx], proj.v[idx]


class _FrameStream:
    """Iterates (view, feature samples) over frames in encoder batches, counting bad frames once."""

    def __init__(self, points: np.ndarray, frames: Sequence, encoder: Encoder, config: LiftConfig) -> None:
        self.points, self.frames, self.encoder, self.config = points, frames, encoder, config
        self.failed: dict[int, str] = {}
        self.dim: int | None = None

    def _fail(self, i: int, exc: FrameError) -> None:
        if i not in self.failed:
            log.warning("skipping frame %s: %s", self.frames[i].frame_id, exc)
        self.failed[i] = exc.reason

    def _encode(self, batch: list[int]) -> list[FeatureMap | None]:
        frames = [self.frames[i] for i in batch]
        try:
            return list(self.encoder.encode_batch(frames))
        except FrameError:
            if len(batch) == 1:
                raise
        out: list[FeatureMap | None] = []
        for i, f in zip(batch, frames):  # isolate the bad frame(s) of the batch
            try:
                out.append(self.encoder.encode(f))
            except FrameError as exc:
                self._fail(i, exc)
                out.append(None)
        return out

    def views(self, order: Sequence[int], desc: str) -> Iterator[tuple[_View, np.ndarray]]:
        """Yield (view, feats (M, D) float32) for every frame index in ``order`` that still works."""
        pending: list[tuple[_View, int]] = []
        bar = tqdm(total=len(order), desc=desc, unit="frame", disable=None, leave=False)
        try:
            for pos, i in enumerate(order):
                if i not in self.failed:
                    try:
                        idx, u, v = frame_view(self.points, self.frames[i], self.config)
                        if len(idx):
                            pending.append((_View(i, idx, u, v), i))
                    except FrameError as exc:
                        self._fail(i, exc)
                if len(pending) >= self.config.batch_size or (pos == len(order) - 1 and pending):
                    yield from self._sample(pending)
                    bar.update(len(pending))
                    pending = []
        finally:
            bar.close()

    def _sample(self, pending: list[tuple[_View, int]]) -> Iterator[tuple[_View, np.ndarray]]:
        try:
            maps = self._encode([i for _, i in pending])
        except FrameError as exc:
            self._fail(pending[0][1], exc)
            return
        for (view, i), fmap in zip(pending, maps):
            if fmap is None:
                continue
            self._check_dim(fmap, i)
            hw = tuple(self.frames[i].color_size)
            # +0.5: FeatureMap.sample takes pixel-edge coordinates (pixel i spans [i, i+1)).
            feats, valid = fmap.sample(view.u + 0.5, view.v + 0.5, hw)
            if not valid.all():
                view = _View(i, view.points[valid], view.u[valid], view.v[valid])
                feats = feats[valid]
            if len(view.points):
                yield view, feats

    def _check_dim(self, fmap: FeatureMap, i: int) -> None:
        if self.dim is None:
            self.dim = fmap.dim
        elif fmap.dim != self.dim:
            f = self.frames[i]
            raise InputError(
                f"{f.source or 'frame ' + f.frame_id}: 2D feature dimension {fmap.dim} differs from "
                f"the {self.dim} of earlier frames"
            )


def _as_text(text, dim: int | None) -> np.ndarray:
    arr = text.embeddings if isinstance(text, TextEmbeddings) else np.asarray(text)
    if arr.ndim != 2 or not np.all(np.isfinite(arr)):
        raise InputError(f"text embeddings must be a finite (C, D) array, got shape {arr.shape}")
    arr = arr.astype(np.float32)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


def lift(
    points: np.ndarray,
    frames: Sequence,
    encoder: Encoder,
    config: LiftConfig | None = None,
    text: np.ndarray | TextEmbeddings | None = None,
    scene_name: str = "scene",
) -> LiftedFeatures:
    """Lift 2D features of posed RGB-D ``frames`` onto (N, 3) world ``points``.

    Args:
        points: (N, 3) float world coordinates.
        frames: :class:`~geopurify.io.scene.Frame` sequence (pose, intrinsics, lazy depth).
        encoder: gives each frame's :class:`FeatureMap` (``encode_batch``).
        config: fusion options.
        text: (C, D) class embeddings (rows are unit-normalised here); consensus fusion needs them
            and falls back to ``mean`` without them.
        scene_name: named in errors.
    Returns:
        :class:`LiftedFeatures` with (N, D) float32 features.
    Raises:
        InputError: when every frame fails, or no point is seen by any frame.
    """
    config = config or LiftConfig()
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise InputError(f"{scene_name}: points must be a finite (N, 3) array, got shape {points.shape}")
    if not len(frames):
        raise InputError(f"{scene_name}: no camera frames to lift 2D features from")
    fusion = config.fusion
    if fusion == "consensus" and text is None:
        log.info("consensus fusion needs text embeddings; none given, using mean fusion")
        fusion = "mean"
    N = len(points)
    stream = _FrameStream(points, frames, encoder, config)
    order = list(range(len(frames)))
    count = np.zeros(N, dtype=np.int32)
    used: set[int] = set()

    if fusion == "mean":
        acc: np.ndarray | None = None
        for view, feats in stream.views(order, "lift (mean)"):
            if acc is None:
                acc = np.zeros((N, feats.shape[1]), dtype=np.float32)
            acc[view.points] += feats  # indices are unique within one frame
            count[view.points] += 1
            used.add(view.index)
        _check_any(stream, acc is not None and count.any(), frames, scene_name)
        seen = count > 0
        acc[seen] /= count[seen, None]
        features = acc
    else:
        features, seen = _consensus(stream, order, text, config, count, used, frames, scene_name)

    if config.fill_unseen and not seen.all():
        idx, _ = knn(points[seen], points[~seen], 1)
        features[~seen] = features[np.flatnonzero(seen)[idx[:, 0]]]
    skipped = dict(Counter(stream.failed.values()))
    log.info(
        "lifted %d frames onto %d points (%d seen, %d point-views); skipped %s",
        len(used),
        N,
        int(seen.sum()),
        int(count.sum()),
        skipped or "none",
    )
    return LiftedFeatures(
        features=features,
        seen=seen,
        view_count=count,
        frames_used=len(used),
        skipped_frames=skipped,
        point_views=int(count.sum(dtype=np.int64)),
    )


def _check_any(stream: _FrameStream, ok: bool, frames: Sequence, scene_name: str) -> None:
    if ok:
        return
    if len(stream.failed) == len(frames):
        reasons = dict(Counter(stream.failed.values()))
        raise InputError(f"{scene_name}: all {len(frames)} frames failed ({reasons}); nothing to lift")
    raise InputError(f"{scene_name}: no point is seen by any of the {len(frames)} frames (check poses/depth)")


def _consensus(
    stream: _FrameStream,
    order: list[int],
    text,
    config: LiftConfig,
    count: np.ndarray,
    used: set[int],
    frames: Sequence,
    scene_name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Passes 1-3 of consensus fusion; fills ``count`` and ``used``; returns (features, seen)."""
    N, k = len(count), config.top_views
    T = None
    logit_sum: np.ndarray | None = None
    for view, feats in stream.views(order, "lift 1/3 (consensus class)"):
        if T is None:
            T = _as_text(text, feats.shape[1])
            if T.shape[1] != feats.shape[1]:
                raise InputError(
                    f"{scene_name}: text embeddings have dimension {T.shape[1]} but 2D features {feats.shape[1]}"
                )
            logit_sum = np.zeros((N, len(T)), dtype=np.float64)
        logit_sum[view.points] += feats @ T.T
        count[view.points] += 1
    _check_any(stream, logit_sum is not None and count.any(), frames, scene_name)
    seen = count > 0
    cls = np.argmax(logit_sum, axis=1)
    del logit_sum

    # Pass 2: top-k views per point by their logit for the consensus class.
    best = np.full((N, k), -np.inf, dtype=np.float64)
    best_frame = np.full((N, k), -1, dtype=np.int32)
    best_uv = np.zeros((N, k, 2), dtype=np.float32)
    for view, feats in stream.views(order, "lift 2/3 (top views)"):
        p = view.points
        score = np.einsum("md,md->m", feats, T[cls[p]]).astype(np.float64)
        slot = np.argmin(best[p], axis=1)
        better = score > best[p, slot]  # strict: on ties the earlier frame stays
        rows, s = p[better], slot[better]
        best[rows, s] = score[better]
        best_frame[rows, s] = view.index
        best_uv[rows, s, 0] = view.u[better]
        best_uv[rows, s, 1] = view.v[better]

    with np.errstate(invalid="ignore"):
        w = np.exp((best - best.max(axis=1, keepdims=True)) / config.temperature)
    w[~np.isfinite(w)] = 0.0
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)

    # Pass 3: gather the kept views' features, frame by frame.
    flat = best_frame.ravel()
    sort = np.argsort(flat, kind="stable")
    sorted_frames = flat[sort]
    needed = np.unique(sorted_frames[sorted_frames >= 0])
    features: np.ndarray | None = None
    bar = tqdm(total=len(needed), desc="lift 3/3 (gather)", unit="frame", disable=None, leave=False)
    for start in range(0, len(needed), config.batch_size):
        batch = [int(i) for i in needed[start : start + config.batch_size]]
        try:
            maps = stream._encode(batch)
        except FrameError as exc:
            stream._fail(batch[0], exc)
            maps = [None]
        for fi, fmap in zip(batch, maps):
            lo, hi = np.searchsorted(sorted_frames, [fi, fi + 1])
            cells = sort[lo:hi]
            rows, slots = cells // k, cells % k
            if fmap is None:  # frame became unreadable: drop its weight
                w[rows, slots] = 0.0
                continue
            stream._check_dim(fmap, fi)
            uv = best_uv[rows, slots].astype(np.float64)
            feats, _ = fmap.sample(uv[:, 0] + 0.5, uv[:, 1] + 0.5, tuple(frames[fi].color_size))
            if features is None:
                features = np.zeros((N, feats.shape[1]), dtype=np.float32)
            # a point references a frame at most once, so rows are unique here
            features[rows] += w[rows, slots, None].astype(np.float32) * feats
            used.add(fi)
        bar.update(len(batch))
    bar.close()
    _check_any(stream, features is not None, frames, scene_name)
    return features, seen
