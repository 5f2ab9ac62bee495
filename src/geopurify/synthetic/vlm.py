"""A simulated per-mask 2D VLM with realistic, view-consistent mistakes.

Errors decided once per scene (:class:`VLMErrors`) repeat in every view, so averaging over views
cannot remove them:

* whole-object class confusions (desk read as table...): geometry cannot fix these either;
* world-fixed 3D blobs on an object's surface read as another class: inside one geometric part,
  so affinity pooling can fix them;
* small objects missed and merged into the mask of what they stand on.

Errors made per frame: masks of nearer objects bleed a few pixels over what lies behind them (and
objects over the floor/wall they touch), large surfaces are over-segmented along a world grid,
each mask's embedding is noisy, and a few masks flip to a confusable class in one view only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import nyu40_to_scannet20
from . import config as C
from .config import SCANNET20_NAMES, TEXT_GROUPS, SyntheticConfig
from .layout import Layout
from .masks import shift_image
from .mesh import Mesh
from .render import Render


@dataclass
class VLMErrors:
    """The scene-level (view-consistent) mistakes of the simulated VLM.

    Attributes:
        perceived: (I,) int32 ScanNet-20-valid NYU40 id the VLM reads each instance as.
        merged_into: (I,) int32 instance whose mask each instance joins (itself unless missed).
        overseg: (I,) bool instances whose masks are cut along a world grid.
        blob_center: (Bb, 3) float32; blob_radius: (Bb,) float32; blob_instance: (Bb,) int32 host
            instance; blob_label: (Bb,) int32 NYU40 id the blob is read as.
    """

    perceived: np.ndarray
    merged_into: np.ndarray
    overseg: np.ndarray
    blob_center: np.ndarray
    blob_radius: np.ndarray
    blob_instance: np.ndarray
    blob_label: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"vlm_{k}": getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_arrays(cls, arrays) -> VLMErrors:
        return cls(**{k: np.asarray(arrays[f"vlm_{k}"]) for k in cls.__dataclass_fields__})


def text_embeddings(dim: int, seed: int = 1234) -> np.ndarray:
    """(20, dim) float32 unit text embeddings of the ScanNet-20 names; classes in a
    :data:`TEXT_GROUPS` group share a component, so e.g. table/desk are closer than table/wall."""
    rng = np.random.default_rng(seed)
    n, g = len(SCANNET20_NAMES), len(TEXT_GROUPS)
    basis = rng.normal(size=(dim, n + g))
    if dim >= n + g:  # orthonormal class and group directions: unrelated classes are orthogonal
        basis = np.linalg.qr(basis)[0]
    basis = (basis / np.linalg.norm(basis, axis=0)).T
    emb = basis[:n].copy()
    for k, members in enumerate(TEXT_GROUPS):
        if len(members) < 2:
            continue
        for name in members:
            emb[SCANNET20_NAMES.index(name)] += basis[n + k]
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def _confuse(label: int, rng: np.random.Generator) -> int:
    options = C.CONFUSIONS[label]
    p = np.array([0.6] + [0.4 / (len(options) - 1)] * (len(options) - 1)) if len(options) > 1 else None
    return int(rng.choice(options, p=p))


def decide_errors(layout: Layout, mesh: Mesh, config: SyntheticConfig, rng: np.random.Generator) -> VLMErrors:
    """Draw the scene-level mistakes (same rng state -> same mistakes)."""
    labels = layout.instance_label
    n = layout.num_instances
    structure = np.isin(labels, [C.WALL, C.FLOOR])
    perceived = labels.copy()
    # Things outside ScanNet-20 (small props, the ceiling) are read as the closest benchmark class.
    benchmark = np.isin(labels, C.SCANNET20_NYU40)
    for i in np.nonzero(~benchmark)[0]:
        perceived[i] = C.CONFUSIONS[int(labels[i])][0]
    confused = (rng.random(n) < config.confusion_prob) & ~structure & benchmark
    for i in np.nonzero(confused)[0]:
        perceived[i] = _confuse(int(labels[i]), rng)

    merged = np.arange(n, dtype=np.int32)
    missed = layout.instance_small & (layout.instance_support >= 0) & (rng.random(n) < config.miss_small_prob)
    merged[missed] = layout.instance_support[missed]
    # Small floor objects (support -1) merge into the floor when missed.
    floor_id = int(np.nonzero(labels == C.FLOOR)[0][0])
    missed_floor = layout.instance_small & (layout.instance_support < 0) & (rng.random(n) < config.miss_small_prob)
    merged[missed_floor] = floor_id

    # Over-segment structure and big objects.
    size = np.zeros(n)
    np.maximum.at(size, layout.box_instance, np.max(layout.hi - layout.lo, axis=1))
    overseg = (structure | (size > 1.2)) if config.overseg_cell > 0 else np.zeros(n, dtype=bool)

    # Blobs: centred on random mesh vertices of non-small instances.
    v_inst = layout.box_instance[mesh.box]
    host_ok = ~layout.instance_small[v_inst]
    area = float(layout.room[0] * layout.room[1])
    nb = int(round(config.blob_count * area / 20.0))
    cand = np.nonzero(host_ok)[0]
    pick = rng.choice(cand, size=nb, replace=False) if nb and len(cand) >= nb else np.zeros(0, dtype=np.int64)
    b_inst = v_inst[pick].astype(np.int32)
    b_label = np.array([_confuse(int(labels[i]), rng) for i in b_inst], dtype=np.int32)
    return VLMErrors(
        perceived=perceived.astype(np.int32),
        merged_into=merged,
        overseg=overseg,
        blob_center=mesh.vertices[pick].astype(np.float32),
        blob_radius=rng.uniform(*config.blob_radius, size=nb).astype(np.float32),
        blob_instance=b_inst,
        blob_label=b_label,
    )


@dataclass
class MaskOutput:
    """One frame's simulated VLM output.

    Attributes:
        segments: (h, w) int32 mask id per pixel, -1 where no mask.
        embeddings: (S, D) float16 unit-ish mask embeddings.
        mask_label: (S,) int32 NYU40 id each mask was generated from (before embedding noise).
    """

    segments: np.ndarray
    embeddings: np.ndarray
    mask_label: np.ndarray


def simulate_masks(layout: Layout, errors: VLMErrors, text: np.ndarray, view: Render, config: SyntheticConfig,
                   rng: np.random.Generator) -> MaskOutput:  # fmt: skip
    """Masks and embeddings for one frame from its render at the feature resolution."""
    box = view.box
    valid = box >= 0
    inst0 = np.where(valid, layout.box_instance[np.maximum(box, 0)], -1)
    inst = np.where(valid, errors.merged_into[np.maximum(inst0, 0)], -1)
    pts = view.points

    # Region key = (instance, blob, grid cell); label = blob label or the instance's perceived class.
    blob = np.full(box.shape, -1, dtype=np.int64)
    for b in range(len(errors.blob_center)):
        inside = (inst0 == errors.blob_instance[b]) & (
            np.sum((pts - errors.blob_center[b]) ** 2, axis=-1) < errors.blob_radius[b] ** 2
        )
        blob[inside] = b
    cell = np.zeros(box.shape, dtype=np.int64)
    if config.overseg_cell > 0:
        cut = valid & errors.overseg[np.maximum(inst, 0)]
        q = np.clip(np.floor(pts / config.overseg_cell).astype(np.int64) + 64, 0, 127)
        cell = np.where(cut, (q[..., 0] * 128 + q[..., 1]) * 128 + q[..., 2] + 1, 0)
        cell &= 0xFFFFFF
    # One int64 key per pixel: instance (bits 40+), blob (bits 24-39), grid cell (bits 0-23).
    key = ((inst.astype(np.int64) + 1) << 40) | ((blob + 1) << 24) | cell
    uniq, region = np.unique(key.ravel(), return_inverse=True)
    region = region.reshape(box.shape).astype(np.int64)
    r_inst, r_blob = (uniq >> 40) - 1, ((uniq >> 24) & 0xFFFF) - 1
    blob_label = np.append(errors.blob_label, -1).astype(np.int32)  # index -1 -> the dummy
    r_label = np.where(r_blob >= 0, blob_label[r_blob], errors.perceived[np.maximum(r_inst, 0)])
    region[~valid] = -1

    # Bleeding: a pixel takes the region of a neighbour within bleed_px that is nearer than it by a
    # margin, or that is an object touching the wall/floor the pixel lies on.
    if config.bleed_px > 0 and len(uniq):
        depth = np.where(valid, view.depth, 1e6).astype(np.float32)
        is_struct = np.isin(r_label, [C.WALL, C.FLOOR])
        px_struct = np.where(valid, is_struct[np.maximum(region, 0)], True)
        best_d = depth.copy()
        best_r = region.copy()
        r = config.bleed_px
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if (dy == 0 and dx == 0) or dy * dy + dx * dx > r * r:
                    continue
                nd, nr = shift_image(depth, dy, dx, 1e6), shift_image(region, dy, dx, -1)
                n_struct = np.where(nr >= 0, is_struct[np.maximum(nr, 0)], True)
                wins = (
                    (nr >= 0)
                    & (nr != region)
                    & ((nd < depth - (0.05 + 0.03 * depth)) | (px_struct & ~n_struct & (nd < depth + 0.3)))
                )
                wins &= nd < best_d
                best_d = np.where(wins, nd, best_d)
                best_r = np.where(wins, nr, best_r)
        region = best_r

    # Keep only regions still on screen; renumber 0..S-1.
    used, seg = np.unique(region[region >= 0], return_inverse=True)
    segments = np.full(box.shape, -1, dtype=np.int32)
    segments[region >= 0] = seg.astype(np.int32)
    labels = r_label[used].astype(np.int32)
    flip = rng.random(len(labels)) < config.frame_flip_prob
    for i in np.nonzero(flip)[0]:
        labels[i] = _confuse(int(labels[i]), rng)
    cls = nyu40_to_scannet20(labels)
    D = text.shape[1]
    emb = text[cls] + config.embed_noise * rng.normal(size=(len(cls), D)) / np.sqrt(D)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return MaskOutput(segments=segments, embeddings=emb.astype(np.float16), mask_label=labels)
