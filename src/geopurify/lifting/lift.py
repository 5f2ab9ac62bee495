"""Lift per-frame 2D features onto 3D points, fusing the views that see each point.

Memory stays bounded by the output: frames are streamed, nothing of shape (N, views, D) exists.

* ``mean`` (OpenScene): one pass, running sum (N, D) and count (N,).
* ``consensus`` (GeoPurify): pass 1 sums per-view logits ``feature . text`` into (N, C) and picks the
  consensus class ``c*`` per point; pass 2 scores every view by its logit for ``c*`` and keeps the
  ``top_views`` best as (score, frame, u, v) in (N, k) buffers; pass 3 re-reads only the frames those
  buffers reference and adds ``softmax(score / temperature)``-weighted features. Neural encoders are
  wrapped in an on-disk cache, so passes 2 and 3 read feature maps instead of recomputing them.

Speed: each frame's visible set comes from :class:`~.projection.PointProjector` (block and float32
frustum culling, then the exact float64 test on candidates only) and is cached for pass 2 within
``VIEW_CACHE_BYTES``. Features are gathered as rows of the map (a dense map's pixels, or a mask's
embedding) and scattered with ``torch.index_add_``; every number is the one the straightforward
per-frame float64 / numpy computation gives, except one deliberate shortcut: where a frame's feature
table (its masks) has fewer rows than the frame has visible points, consensus passes 1 and 2 take
each point's logits as rows of the table's ``(masks, C)`` logits instead of a ``(points, D)``
product (same consensus class and top views; the weights differ by float rounding). Decoded maps are
kept between the passes (``MAP_CACHE_BYTES``), so each feature file is read once.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..encoders.base import Encoder, FeatureMap, TextEmbeddings
from ..errors import FrameError, InputError
from ..geometry import knn
from ..utils.progress import bar_disable
from ..utils.rows import unit_rows_np
from .config import LiftConfig
from .projection import PointProjector, check_pose

log = logging.getLogger(__name__)
_FRAME_WARNINGS = 5  # skipped frames warned about one by one; the rest at debug level


#: bytes of visible sets (indices, u, v) consensus fusion keeps between its passes; frames beyond
#: the budget are projected (and their depth loaded) again in pass 2
VIEW_CACHE_BYTES = 512 * 2**20
#: bytes of decoded feature maps kept between the passes, so each frame's file is decoded once
#: (per-mask maps are small: a (h, w) id image and (S, D) embeddings)
MAP_CACHE_BYTES = 256 * 2**20
#: points per chunk of the per-view gather / score / scatter work
CHUNK = 8192


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


def frame_view(
    points: np.ndarray, frame, config: LiftConfig, projector: PointProjector | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible points of one frame: indices (M,) int64 and colour-pixel coordinates u, v (M,) float64.

    ``projector``: ``PointProjector(points)``, built once to test many frames (``points`` is then unused).
    Raises FrameError for a bad pose (reason ``bad_pose``) or a depth image of the wrong size.
    """
    src = frame.source or f"frame {frame.frame_id}"
    check_pose(frame.camera_to_world, src)
    depth = np.asarray(frame.depth())
    if depth.ndim != 2 or tuple(depth.shape) != tuple(frame.depth_size):
        raise FrameError(f"{src}: depth image is {depth.shape}, expected {tuple(frame.depth_size)}", reason="bad_depth")
    if projector is None:
        projector = PointProjector(points)
    return projector.visible(
        np.linalg.inv(np.asarray(frame.camera_to_world, dtype=np.float64)),
        frame.K_color,
        tuple(frame.color_size),
        config.border,
        depth,
        frame.K_depth,
        config.depth_tolerance,
    )


def _float32(a: np.ndarray) -> np.ndarray:
    """C-contiguous float32 copy (or ``a`` itself); torch converts float16 ~5x faster than numpy, exactly."""
    if a.dtype == np.float16:
        return torch.from_numpy(np.ascontiguousarray(a)).float().numpy()
    return np.ascontiguousarray(a, dtype=np.float32)


class _Sample:
    """The 2D features of one view's points as float32 ``table[rows]``: rows of a (R, D) table (a dense
    map's pixels, or its masks' embeddings), gathered on demand, a chunk at a time."""

    __slots__ = ("table", "rows", "_src")

    def __init__(self, table: np.ndarray, rows: np.ndarray) -> None:
        self.table, self.rows = table, rows
        self._src: tuple[np.ndarray, bool] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, keep: np.ndarray) -> _Sample:
        return _Sample(self.table, self.rows[keep])

    def feats(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(stop - start, D) float32 features of points ``start:stop``: the values of ``FeatureMap.sample``."""
        if self._src is None:
            if self.table.dtype == np.float32 or 2 * len(self.rows) >= len(self.table):
                self._src = _float32(self.table), False
            else:  # few rows of a big half-precision map: convert only those
                self._src = self.table, True
        src, convert = self._src
        out = np.take(src, self.rows[start:stop], axis=0)
        return _float32(out) if convert else out

    def feats_into(self, out: np.ndarray) -> np.ndarray:
        """:meth:`feats` of every point, written chunk by chunk into ``out[:len(self)]`` (returned)."""
        out = out[: len(self)]
        for s, e in _chunks(len(self)):
            out[s:e] = self.feats(s, e)
        return out


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of ``CHUNK``-sized pieces of ``range(n)``: per-chunk temporaries stay in cache."""
    for start in range(0, n, CHUNK):
        yield start, min(start + CHUNK, n)


def _lookup(fmap: FeatureMap, u: np.ndarray, v: np.ndarray, hw: tuple[int, int]) -> tuple[_Sample, np.ndarray | None]:
    """``fmap.sample(u + 0.5, v + 0.5, hw)`` as (sample, valid); valid is None when every pixel has a feature.

    The +0.5: ``FeatureMap.sample`` takes pixel-edge coordinates (pixel i spans [i, i+1)). Same index
    arithmetic as ``FeatureMap.sample`` (tests/lifting checks the two agree), which stays the fallback
    for feature maps that override it.
    """
    if type(fmap).sample is not FeatureMap.sample:
        feats, valid = fmap.sample(u + 0.5, v + 0.5, hw)
        return _Sample(np.asarray(feats, dtype=np.float32), np.arange(len(feats))), None if valid.all() else valid
    h, w = fmap.hw
    H, W = hw
    x = np.clip(np.floor((u + 0.5) * (w / W)).astype(np.int64), 0, w - 1)
    y = np.clip(np.floor((v + 0.5) * (h / H)).astype(np.int64), 0, h - 1)
    cell = y * w + x
    if fmap.dense is not None:
        return _Sample(fmap.dense.reshape(h * w, -1), cell), None
    seg = np.take(fmap.segments.reshape(-1), cell).astype(np.int64)
    valid = seg >= 0
    return _Sample(fmap.embeddings, seg), None if valid.all() else valid


_OPENBLAS_NAMES = (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"), ("openblas_", ""))


@functools.cache
def _openblas_thread_controls() -> tuple:
    """(get, set) thread-count functions of the OpenBLAS libraries loaded in this process (Linux; else none)."""
    controls = []
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in _OPENBLAS_NAMES:
            get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            set_ = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                get.restype, set_.argtypes, set_.restype = ctypes.c_int, [ctypes.c_int], None
                controls.append((get, set_))
                break
    return tuple(controls)


@contextmanager
def _serial_blas() -> Iterator[None]:
    """Run numpy's OpenBLAS single-threaded inside the block (same results: its threads split rows, not sums).

    After a multi-threaded call OpenBLAS workers keep spinning for a while; on a small machine they
    slow the torch and numpy work between the per-frame products more than the threads speed the
    products (consensus pass 1 measured ~1.6x faster on 2 shared cores).
    """
    controls = _openblas_thread_controls()
    saved = [get() for get, _ in controls]
    for _, set_ in controls:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), n in zip(controls, saved):
            set_(n)


def _add_rows(acc: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """``acc[rows] += values`` for unique int64 ``rows`` (same sums; torch's scatter is ~3x numpy's)."""
    torch.from_numpy(acc).index_add_(0, torch.from_numpy(rows), torch.from_numpy(np.ascontiguousarray(values)))


class _FrameStream:
    """Iterates (view, feature samples) over frames in encoder batches, counting bad frames once.

    Visible sets are kept for later passes up to ``cache_bytes``.
    """

    def __init__(
        self, points: np.ndarray, frames: Sequence, encoder: Encoder, config: LiftConfig, cache_bytes: int = 0
    ) -> None:
        self.points, self.frames, self.encoder, self.config = points, frames, encoder, config
        self.projector = PointProjector(points)
        self.failed: dict[int, str] = {}
        self.dim: int | None = None
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cache_left = cache_bytes
        self._maps: dict[int, FeatureMap] = {}
        self._maps_left = MAP_CACHE_BYTES if cache_bytes else 0
        self._logits: dict[int, np.ndarray] = {}
        self._logits_left = MAP_CACHE_BYTES // 2
        self._buffers: dict[str, np.ndarray] = {}

    def table_logits(self, i: int, sample: _Sample, T: np.ndarray) -> np.ndarray | None:
        """(R, C) float32 logits of frame ``i``'s whole feature table, or None where per-point rows are cheaper.

        A per-mask frame has a few hundred masks for tens of thousands of visible points, so one
        ``table @ T.T`` replaces a (points, D) gather and product; each point's logits are then rows
        of this table (the same dot products, summed in BLAS's order for the table's shape).
        """
        if len(sample.table) > len(sample):
            return None
        hit = self._logits.get(i)
        if hit is None:
            with _serial_blas():
                hit = _float32(sample.table) @ T.T
            if hit.nbytes <= self._logits_left:  # pass 2 reuses it
                self._logits[i] = hit
                self._logits_left -= hit.nbytes
        return hit

    def release_buffers(self) -> None:
        self._buffers.clear()

    def buffer(self, name: str, rows: int, cols: int, dtype) -> np.ndarray:
        """A reusable (rows, cols) scratch array: big temporaries are not mapped (and page-faulted) per frame."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty((max(rows, 1), cols), dtype=dtype)
        return buf[:rows]

    def _fail(self, i: int, exc: FrameError) -> None:
        if i not in self.failed:
            # a few lines a run, not one per frame: a half-encoded folder would print hundreds; the
            # counts by reason are in the summary line and run.json
            shown = len(self.failed)
            if shown == _FRAME_WARNINGS:  # said once, when there is a further one to hold back
                log.warning("further skipped frames are logged with -v only; the summary counts them all")
            level = logging.WARNING if shown < _FRAME_WARNINGS else logging.DEBUG
            log.log(level, "skipping frame %s: %s", self.frames[i].frame_id, exc)
        self.failed[i] = exc.reason

    def _visible(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        out = frame_view(self.points, self.frames[i], self.config, self.projector)
        size = sum(a.nbytes for a in out)
        if size <= self._cache_left:
            self._cache[i] = out
            self._cache_left -= size
        return out

    def _encode(self, batch: list[int]) -> list[FeatureMap | None]:
        if all(i in self._maps for i in batch):
            return [self._maps[i] for i in batch]
        out = self._decode(batch)
        for i, fmap in zip(batch, out):
            if fmap is None or i in self._maps:
                continue
            size = sum(a.nbytes for a in (fmap.dense, fmap.segments, fmap.embeddings) if a is not None)
            if size <= self._maps_left:
                self._maps[i] = fmap
                self._maps_left -= size
        return out

    def _decode(self, batch: list[int]) -> list[FeatureMap | None]:
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

    def views(self, order: Sequence[int], desc: str) -> Iterator[tuple[_View, _Sample]]:
        """Yield (view, its features) for every frame index in ``order`` that still works."""
        pending: list[tuple[_View, int]] = []
        bar = tqdm(total=len(order), desc=desc, unit="frame", disable=bar_disable(), leave=False)
        try:
            for pos, i in enumerate(order):
                if i not in self.failed:
                    try:
                        idx, u, v = self._visible(i)
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

    def _sample(self, pending: list[tuple[_View, int]]) -> Iterator[tuple[_View, _Sample]]:
        try:
            maps = self._encode([i for _, i in pending])
        except FrameError as exc:
            self._fail(pending[0][1], exc)
            return
        for (view, i), fmap in zip(pending, maps):
            if fmap is None:
                continue
            self._check_dim(fmap, i)
            sample, valid = _lookup(fmap, view.u, view.v, tuple(self.frames[i].color_size))
            if valid is not None:
                view = _View(i, view.points[valid], view.u[valid], view.v[valid])
                sample = sample.subset(valid)
            if len(view.points):
                yield view, sample

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
    return unit_rows_np(arr.astype(np.float32))


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
    stream = _FrameStream(points, frames, encoder, config, VIEW_CACHE_BYTES if fusion == "consensus" else 0)
    order = list(range(len(frames)))
    count = np.zeros(N, dtype=np.int32)
    used: set[int] = set()

    if fusion == "mean":
        acc: np.ndarray | None = None
        for view, sample in stream.views(order, "lift (mean)"):
            if acc is None:
                acc = np.zeros((N, sample.table.shape[1]), dtype=np.float32)
            for s, e in _chunks(len(sample)):  # indices are unique within one frame
                _add_rows(acc, view.points[s:e], sample.feats(s, e))
            count[view.points] += 1
            used.add(view.index)
        _check_any(stream, acc is not None and count.any(), frames, scene_name)
        seen = count > 0
        # float32 division by the exact float32 count: the same numbers as acc[seen] / count[seen] in
        # float64 rounded to float32 (double rounding is innocuous for division, 53 >= 2 * 24 + 2)
        np.divide(acc, np.maximum(count, 1).astype(np.float32)[:, None], out=acc)
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
    t0 = time.perf_counter()
    T = None
    logit_sum: np.ndarray | None = None
    for view, sample in stream.views(order, "lift 1/3 (consensus class)"):
        dim = sample.table.shape[1]
        if T is None:
            T = _as_text(text, dim)
            if T.shape[1] != dim:
                raise InputError(f"{scene_name}: text embeddings have dimension {T.shape[1]} but 2D features {dim}")
            logit_sum = np.zeros((N, len(T)), dtype=np.float64)
        table = stream.table_logits(view.index, sample, T)
        if table is not None:  # few masks, many points: rows of the (R, C) table logits
            logits = np.take(table, sample.rows, axis=0, out=stream.buffer("logits", len(sample), len(T), np.float32))
        else:
            feats = sample.feats_into(stream.buffer("feats", len(sample), dim, np.float32))
            with _serial_blas():
                logits = np.matmul(feats, T.T, out=stream.buffer("logits", len(sample), len(T), np.float32))
        for s, e in _chunks(len(sample)):
            _add_rows(logit_sum, view.points[s:e], logits[s:e].astype(np.float64))
        count[view.points] += 1
    _check_any(stream, logit_sum is not None and count.any(), frames, scene_name)
    seen = count > 0
    cls = np.argmax(logit_sum, axis=1)
    del logit_sum
    stream.release_buffers()
    t1 = time.perf_counter()

    # Pass 2: top-k views per point by their logit for the consensus class.
    best = np.full((N, k), -np.inf, dtype=np.float64)
    best_frame = np.full((N, k), -1, dtype=np.int32)
    best_uv = np.zeros((N, k, 2), dtype=np.float32)
    cells_score, cells_frame, cells_uv = best.reshape(-1), best_frame.reshape(-1), best_uv.reshape(-1, 2)
    for view, sample in stream.views(order, "lift 2/3 (top views)"):
        table = stream.table_logits(view.index, sample, T)
        for s, e in _chunks(len(sample)):
            p = view.points[s:e]
            if table is not None:  # the point's logit for its consensus class, from pass 1's table
                score = table[sample.rows[s:e], cls[p]].astype(np.float64)
            else:
                score = np.einsum("md,md->m", sample.feats(s, e), np.take(T, cls[p], axis=0)).astype(np.float64)
            held = np.take(best, p, axis=0)
            low, slot = held[:, 0].copy(), np.zeros(len(p), dtype=np.int64)
            for j in range(1, k):  # argmin over the k slots (first one on ties), column by column
                slot[held[:, j] < low] = j
                np.minimum(low, held[:, j], out=low)
            better = score > low  # strict: on ties the earlier frame stays
            cells = p[better] * k + slot[better]  # flat index of best[p, slot]
            cells_score[cells] = score[better]
            cells_frame[cells] = view.index
            uv = np.empty((len(cells), 2), dtype=np.float32)
            uv[:, 0], uv[:, 1] = view.u[s:e][better], view.v[s:e][better]
            cells_uv[cells] = uv

    stream._logits.clear()
    with np.errstate(invalid="ignore"):
        w = np.exp((best - best.max(axis=1, keepdims=True)) / config.temperature)
    w[~np.isfinite(w)] = 0.0
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)

    t2 = time.perf_counter()
    # Pass 3: gather the kept views' features, frame by frame.
    key = best_frame.reshape(-1) + 1  # frame + 1 per (point, slot) cell; 0: no view
    # cells grouped by frame, ascending within each: numpy radix-sorts 16-bit keys stably
    sort = np.argsort(key.astype(np.uint16) if len(frames) < 2**16 - 1 else key, kind="stable")
    per_frame = np.bincount(key, minlength=len(frames) + 1)
    first = np.cumsum(per_frame) - per_frame  # where each key's cells start in ``sort``
    needed = np.flatnonzero(per_frame[1:])
    features: np.ndarray | None = None
    bar = tqdm(total=len(needed), desc="lift 3/3 (gather)", unit="frame", disable=bar_disable(), leave=False)
    for start in range(0, len(needed), config.batch_size):
        batch = [int(i) for i in needed[start : start + config.batch_size]]
        try:
            maps = stream._encode(batch)
        except FrameError as exc:
            stream._fail(batch[0], exc)
            maps = [None]
        for fi, fmap in zip(batch, maps):
            cells = sort[first[fi + 1] : first[fi + 1] + per_frame[fi + 1]]  # flat (point, slot) indices
            rows = cells // k
            if fmap is None:  # frame became unreadable: drop its weight
                w.reshape(-1)[cells] = 0.0
                continue
            stream._check_dim(fmap, fi)
            uv = np.take(best_uv.reshape(-1, 2), cells, axis=0).astype(np.float64)
            sample, valid = _lookup(fmap, uv[:, 0], uv[:, 1], tuple(frames[fi].color_size))
            if features is None:
                features = np.zeros((N, sample.table.shape[1]), dtype=np.float32)
            for s, e in _chunks(len(rows)):
                feats = sample.feats(s, e)
                if valid is not None:  # FeatureMap.sample gives zeros where no mask covers the pixel
                    feats = np.where(valid[s:e, None], feats, np.float32(0))
                # a point references a frame at most once, so rows are unique here
                weight = np.take(w.reshape(-1), cells[s:e]).astype(np.float32)
                _add_rows(features, rows[s:e], weight[:, None] * feats)
            used.add(fi)
        bar.update(len(batch))
    bar.close()
    _check_any(stream, features is not None, frames, scene_name)
    log.debug("consensus passes took %.2f / %.2f / %.2f s", t1 - t0, t2 - t1, time.perf_counter() - t2)
    return features, seen
