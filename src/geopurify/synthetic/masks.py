"""A simulated per-mask 2D VLM that makes its mistakes in image space, like a real one.

Input is what a camera sees, per pixel: the ground-truth instance and ScanNet-20 class of the
surface, its depth and its colour (from a rendered scan or a procedural room). Output is one frame's
``features_2d`` entry: ``segments`` (h, w) mask ids and ``embeddings`` (S, D).

Every error is decided from the labels and the image, never from this project's geometry features
(normals, superpoints, the student), so the simulator does not favour the method it measures:

* masks are unions of superpixels (a jittered grid, boundaries nudged by colour): each superpixel
  goes whole to the instance that dominates it, so mask borders cut across object borders;
* at depth edges the nearer object wins superpixels it only partly covers, and its mask bleeds a
  few pixels over what lies behind it;
* neighbouring objects are sometimes merged into one mask (a chair and the table it stands at);
* small objects are missed and merged into the mask around them (usually their support);
* similar classes are confused (desk/table, cabinet/counter, curtain/window...): per object, in a
  fraction of the views that see it (a real model is consistently wrong about some objects), plus
  independent per-view flips;
* a modality gap: an image embedding is ``signal * text[class] + mix * text[runner-up] +
  gap * common + noise``, normalised, with one ``common`` direction shared by all masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .config import SCANNET20_NAMES, VLMSimConfig

_IDX = {n: i for i, n in enumerate(SCANNET20_NAMES)}

# What a 2D model plausibly reads a ScanNet-20 class as instead; first entry is the most likely.
SIMILAR: dict[str, tuple[str, ...]] = {
    "wall": ("door", "picture", "curtain", "window"),
    "floor": ("wall", "otherfurniture"),
    "cabinet": ("counter", "otherfurniture", "refrigerator", "bookshelf"),
    "bed": ("sofa", "otherfurniture"),
    "chair": ("sofa", "otherfurniture", "table"),
    "sofa": ("chair", "bed"),
    "table": ("desk", "counter", "otherfurniture"),
    "door": ("wall", "cabinet", "refrigerator"),
    "window": ("curtain", "picture", "door"),
    "bookshelf": ("cabinet", "otherfurniture"),
    "picture": ("window", "wall"),
    "counter": ("cabinet", "table", "desk"),
    "desk": ("table", "counter"),
    "curtain": ("window", "shower curtain"),
    "refrigerator": ("cabinet", "door"),
    "shower curtain": ("curtain", "wall"),
    "toilet": ("sink", "bathtub"),
    "sink": ("counter", "toilet"),
    "bathtub": ("sink", "toilet"),
    "otherfurniture": ("cabinet", "table", "chair"),
}
SIMILAR_IDX: tuple[tuple[int, ...], ...] = tuple(tuple(_IDX[s] for s in SIMILAR[n]) for n in SCANNET20_NAMES)
# Things outside the 20 classes (clutter, ceiling, appliances) are read as one of these.
UNKNOWN_READS: tuple[int, ...] = tuple(_IDX[n] for n in ("otherfurniture", "cabinet", "table", "wall", "picture"))
_STRUCTURE = (_IDX["wall"], _IDX["floor"])


@dataclass
class SceneReading:
    """Per-instance decisions the simulated model keeps for the whole scene.

    Attributes:
        true_class: (I,) int64 ScanNet-20 index of each instance (-1 = outside the 20 classes).
        perceived: (I,) int64 class the model reads the instance as when it is wrong about it.
        wrong_rate: (I,) float64 fraction of views in which it reads ``perceived`` (0 = never).
        miss_rate: (I,) float64 chance per view that the instance, when small in the image, is missed.
    """

    true_class: np.ndarray
    perceived: np.ndarray
    wrong_rate: np.ndarray
    miss_rate: np.ndarray


def _confusable(c: int, rng: np.random.Generator) -> int:
    if c < 0:
        return int(rng.choice(UNKNOWN_READS))
    options = SIMILAR_IDX[c]
    p = np.array([0.6] + [0.4 / (len(options) - 1)] * (len(options) - 1)) if len(options) > 1 else None
    return int(rng.choice(options, p=p))


def decide_reading(true_class: np.ndarray, config: VLMSimConfig, rng: np.random.Generator) -> SceneReading:
    """Draw the per-instance reading of a scene from the instances' true classes (I,) int."""
    true_class = np.asarray(true_class, np.int64)
    n = len(true_class)
    perceived = np.array([_confusable(int(c), rng) for c in true_class], dtype=np.int64)
    structure = np.isin(true_class, _STRUCTURE)
    p = np.where(structure, config.structure_confusion_prob, config.confusion_prob)
    confused = rng.random(n) < p
    wrong = np.where(confused, rng.uniform(*config.confusion_rate, size=n), 0.0)
    wrong[true_class < 0] = 1.0  # outside the vocabulary: always read as something else
    miss = np.clip(config.miss_small_prob * rng.uniform(0.5, 1.5, size=n), 0, 1)
    return SceneReading(true_class, perceived, wrong, miss)


def common_direction(text: np.ndarray, seed: int) -> np.ndarray:
    """(D,) float32 unit direction shared by all image embeddings (the modality gap).

    Mostly orthogonal to the text directions, with a small random projection on them so that the gap
    also biases classes a little, as a real one does.
    """
    rng = np.random.default_rng([seed, 4049])
    D = text.shape[1]
    r = rng.normal(size=D)
    q, _ = np.linalg.qr(text.T.astype(np.float64))  # (D, C) orthonormal basis of the text span
    perp = r - q @ (q.T @ r)
    if np.linalg.norm(perp) < 1e-6:  # text spans everything: no orthogonal room left
        perp = r
    perp /= np.linalg.norm(perp)
    inside = q @ rng.normal(size=q.shape[1])
    inside /= max(np.linalg.norm(inside), 1e-12)
    u = perp + 0.25 * inside
    return (u / np.linalg.norm(u)).astype(np.float32)


def superpixels(rgb: np.ndarray, spacing: float, colour_weight: float, rng: np.random.Generator) -> np.ndarray:
    """(h, w) int64 superpixel ids: nearest seed of a jittered grid in (x, y, colour) space.

    Args:
        rgb: (h, w, 3) float in [0, 1]; spacing: seed spacing in pixels; colour_weight: how far (in
            spacings) a full colour difference moves a boundary.
    """
    h, w = rgb.shape[:2]
    gy, gx = np.meshgrid(np.arange(spacing / 2, h, spacing), np.arange(spacing / 2, w, spacing), indexing="ij")
    sy = np.clip(gy.ravel() + rng.uniform(-0.4, 0.4, gy.size) * spacing, 0, h - 1)
    sx = np.clip(gx.ravel() + rng.uniform(-0.4, 0.4, gx.size) * spacing, 0, w - 1)
    cw = colour_weight * spacing
    seed_col = rgb[sy.astype(int), sx.astype(int)] * cw
    tree = cKDTree(np.column_stack([sy, sx, seed_col]))
    yy, xx = np.mgrid[0:h, 0:w]
    feats = np.column_stack([yy.ravel(), xx.ravel(), rgb.reshape(-1, 3) * cw])
    _, lab = tree.query(feats, k=1)
    return lab.reshape(h, w).astype(np.int64)


def shift_image(a: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """``(H, W)`` image shifted: out[y, x] = a[y + dy, x + dx] (``fill`` outside)."""
    out = np.full_like(a, fill)
    H, W = a.shape
    ys, yd = (slice(dy, H), slice(0, H - dy)) if dy >= 0 else (slice(0, H + dy), slice(-dy, H))
    xs, xd = (slice(dx, W), slice(0, W - dx)) if dx >= 0 else (slice(0, W + dx), slice(-dx, W))
    out[yd, xd] = a[ys, xs]
    return out


def _adjacency(mask: np.ndarray, width: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a, b, count) of different mask ids touching within ``width`` pixels (a < b)."""
    pairs = []
    for dy, dx in ((0, width), (width, 0)):
        m2 = shift_image(mask, dy, dx, -1)
        ok = (mask >= 0) & (m2 >= 0) & (mask != m2)
        a, b = mask[ok], m2[ok]
        pairs.append(np.column_stack([np.minimum(a, b), np.maximum(a, b)]))
    p = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    if len(p) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    u, cnt = np.unique(p, axis=0, return_counts=True)
    return u[:, 0], u[:, 1], cnt


@dataclass
class ViewMasks:
    """One frame's simulated VLM output.

    Attributes:
        segments: (h, w) int32 mask id per pixel, -1 where no mask.
        embeddings: (S, D) float16 mask embeddings (unit rows).
        mask_class: (S,) int64 ScanNet-20 class each mask was read as (before the embedding noise).
        mask_instance: (S,) int64 instance each mask was made for.
    """

    segments: np.ndarray
    embeddings: np.ndarray
    mask_class: np.ndarray
    mask_instance: np.ndarray


def simulate_view(instance: np.ndarray, depth: np.ndarray, rgb: np.ndarray, reading: SceneReading,
                  text: np.ndarray, common: np.ndarray, config: VLMSimConfig,
                  rng: np.random.Generator) -> ViewMasks:  # fmt: skip
    """Masks and embeddings for one frame.

    Args:
        instance: (h, w) int instance index into ``reading`` per pixel, -1 where nothing was seen.
        depth: (h, w) float z-depth (metres; any value where ``instance < 0``).
        rgb: (h, w, 3) float colour in [0, 1] (what the model looks at).
        text: (C, D) unit text embeddings; common: (D,) the modality-gap direction.
    """
    h, w = instance.shape
    valid = instance >= 0
    if not valid.any():
        return ViewMasks(np.full((h, w), -1, np.int32), np.zeros((0, text.shape[1]), np.float16),
                         np.zeros(0, np.int64), np.zeros(0, np.int64))  # fmt: skip
    # 1. Superpixels, each given whole to the instance that dominates it; nearer instances count more.
    sp = superpixels(rgb, config.superpixel_px * h / 120.0, config.superpixel_colour, rng)
    n_sp = int(sp.max()) + 1
    s, i, d = sp[valid], instance[valid], depth[valid]
    key = s * (instance.max() + 1) + i
    ukey, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    dsum = np.bincount(inv, weights=d)
    mean_d = dsum / cnt
    us, ui = ukey // (instance.max() + 1), ukey % (instance.max() + 1)
    near = np.full(n_sp, np.inf)
    np.minimum.at(near, us, mean_d)
    score = cnt * np.exp(-config.near_bias * (mean_d - near[us]))
    best = np.full(n_sp, -1, np.int64)
    order = np.lexsort((score, us))  # last entry per superpixel has the highest score
    last = np.r_[us[order][1:] != us[order][:-1], True]
    best[us[order][last]] = ui[order][last]
    covered = np.bincount(us, weights=cnt, minlength=n_sp) > 0
    mask = np.where(covered[sp], best[sp], -1)

    # 2. Bleeding at depth edges: a pixel takes the mask of a clearly nearer neighbour within bleed_px.
    if config.bleed_px > 0:
        dep = np.where(valid, depth, 1e6).astype(np.float32)
        best_d, best_m = dep.copy(), mask.copy()
        r = config.bleed_px
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if (dy == 0 and dx == 0) or dy * dy + dx * dx > r * r:
                    continue
                nd, nm = shift_image(dep, dy, dx, 1e6), shift_image(mask, dy, dx, -1)
                wins = (nm >= 0) & (nm != mask) & (nd < dep - (0.05 + 0.03 * dep)) & (nd < best_d)
                best_d = np.where(wins, nd, best_d)
                best_m = np.where(wins, nm, best_m)
        mask = best_m

    # 3. Small objects missed: merged into the mask they touch most (usually what they stand on).
    ids, area = np.unique(mask[mask >= 0], return_counts=True)
    small_px = config.small_fraction * h * w
    small = ids[(area < small_px) & (rng.random(len(ids)) < reading.miss_rate[ids])]
    if len(small):
        a, b, cnt = _adjacency(mask)
        remap = np.arange(int(instance.max()) + 1)
        for m in small:
            sel = (a == m) | (b == m)
            if sel.any():
                other = np.where(a[sel] == m, b[sel], a[sel])
                remap[m] = other[np.argmax(cnt[sel])]
        for _ in range(3):  # chains (a small thing on a small thing)
            remap = remap[remap]
        mask = np.where(mask >= 0, remap[np.maximum(mask, 0)], -1)

    # 4. Neighbouring objects merged into one mask (the larger one's reading wins).
    if config.merge_prob > 0:
        a, b, cnt = _adjacency(mask)
        if len(a):
            ids, area = np.unique(mask[mask >= 0], return_counts=True)
            area_of = dict(zip(ids.tolist(), area.tolist()))
            remap = np.arange(int(instance.max()) + 1)
            merge = (rng.random(len(a)) < config.merge_prob) & (cnt >= 4)
            for x, y in zip(a[merge], b[merge]):
                big, smalls = (x, y) if area_of.get(x, 0) >= area_of.get(y, 0) else (y, x)
                if remap[smalls] == smalls and remap[big] == big:
                    remap[smalls] = big
            mask = np.where(mask >= 0, remap[np.maximum(mask, 0)], -1)

    # 5. Read each mask: the instance's class, or its persistent misreading, or a one-view flip.
    inst_ids, seg = np.unique(mask[mask >= 0], return_inverse=True)
    segments = np.full((h, w), -1, np.int32)
    segments[mask >= 0] = seg.astype(np.int32)
    truth = reading.true_class[inst_ids]
    wrong = rng.random(len(inst_ids)) < reading.wrong_rate[inst_ids]
    cls = np.where(wrong, reading.perceived[inst_ids], truth)
    flip = rng.random(len(inst_ids)) < config.flip_prob
    for k in np.nonzero(flip)[0]:
        cls[k] = _confusable(int(cls[k]), rng)
    cls = np.where(cls < 0, [_confusable(-1, rng) for _ in cls], cls)
    runner = np.array([_confusable(int(c), rng) for c in cls], dtype=np.int64)

    D = text.shape[1]
    emb = (
        config.signal * text[cls]
        + config.mix * text[runner]
        + config.gap * common[None, :]
        + config.noise * rng.normal(size=(len(cls), D)) / np.sqrt(D)
    )
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return ViewMasks(segments, emb.astype(np.float16), cls.astype(np.int64), inst_ids.astype(np.int64))


__all__ = [
    "SIMILAR", "SceneReading", "ViewMasks", "common_direction", "decide_reading", "simulate_view", "superpixels",
]  # fmt: skip
