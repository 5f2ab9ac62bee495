"""GeoPurify's data-efficient training subset: a few diverse, class-rich scenes.

Algorithm (:func:`select_scenes`):

1. For each scene, from its (C,) class histogram (points per class): ``class_count`` = classes present,
   ``entropy`` = Shannon entropy of the class distribution divided by ``log C`` (in [0, 1]).
2. Keep a scene only if ``class_count >= median`` and ``entropy >= median`` (medians over all scenes):
   scenes below either median are dropped.
3. Cluster the survivors' L1-normalised histograms with k-means (k = n; deterministic numpy k-means++).
4. From each cluster take the scene maximising ``score = entropy + gamma * class_count / C``
   (ties: the alphabetically first name).

If n or fewer scenes survive step 2, all of them are chosen; when fewer than n, the selection is topped up
with the scenes step 2 dropped, best score first (ties: the alphabetically first name), to n or to all the
scenes there are (logged as a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError, InputError
from .config import SelectConfig

logger = logging.getLogger(__name__)

__all__ = ["KMeansResult", "SceneStats", "Selection", "kmeans", "scene_stats", "select_scenes"]


@dataclass
class SceneStats:
    """One scene's row in the selection table.

    Attributes:
        name: scene name.
        class_count: classes with at least one point.
        entropy: class entropy / log C, in [0, 1].
        score: entropy + gamma * class_count / C.
        kept: passed the median filter.
        cluster: k-means cluster of a kept scene, -1 for dropped scenes.
        chosen: selected for training.
    """

    name: str
    class_count: int
    entropy: float
    score: float
    kept: bool = False
    cluster: int = -1
    chosen: bool = False


@dataclass
class Selection:
    """Result of :func:`select_scenes`.

    Attributes:
        chosen: selected scene names, best score first.
        table: one :class:`SceneStats` per input scene, in input order.
        median_class_count: the class-count median of the filter.
        median_entropy: the entropy median of the filter.
        n: number of scenes asked for.
        gamma: weight of the class count in the score.
    """

    chosen: list[str]
    table: list[SceneStats]
    median_class_count: float
    median_entropy: float
    n: int
    gamma: float

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class KMeansResult:
    """k-means output: ``labels`` (S,) int64 in [0, k), ``centers`` (k, D) float64, ``inertia`` float."""

    labels: np.ndarray
    centers: np.ndarray
    inertia: float


def scene_stats(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class count and normalised entropy of each row of ``hist``.

    Args:
        hist: (S, C) non-negative counts.

    Returns:
        ``(class_count (S,) int64, entropy (S,) float64 in [0, 1])``; an all-zero row has count 0, entropy 0.
    """
    hist = np.asarray(hist, dtype=np.float64)
    count = (hist > 0).sum(axis=1).astype(np.int64)
    total = hist.sum(axis=1, keepdims=True)
    p = np.divide(hist, total, out=np.zeros_like(hist), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    C = hist.shape[1]
    entropy = -plogp.sum(axis=1) / np.log(C) if C > 1 else np.zeros(len(hist))
    return count, np.clip(entropy, 0.0, 1.0)


def _sq_dist(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(S, k) squared distances without an (S, k, D) temporary."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_once(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int) -> KMeansResult:
    S = len(x)
    # k-means++ seeding
    idx = [int(rng.integers(S))]
    d2 = _sq_dist(x, x[idx])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total > 0:
            nxt = int(rng.choice(S, p=d2 / total))
        else:  # fewer distinct points than k: any unused point
            unused = np.setdiff1d(np.arange(S), idx)
            nxt = int(rng.choice(unused))
        idx.append(nxt)
        d2 = np.minimum(d2, _sq_dist(x, x[[nxt]])[:, 0])
    centers = x[idx].copy()
    labels = np.full(S, -1, dtype=np.int64)
    for _ in range(max_iter):
        dist = _sq_dist(x, centers)
        new = dist.argmin(axis=1)
        # An empty cluster takes the point farthest from its current centre (keeps k clusters non-empty).
        counts = np.bincount(new, minlength=k)
        for c in np.flatnonzero(counts == 0):
            far = dist[np.arange(S), new]
            far[np.bincount(new, minlength=k)[new] <= 1] = -1.0  # never empty another cluster
            j = int(far.argmax())
            new[j] = c
        if np.array_equal(new, labels):
            break
        labels = new
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, x)
        centers = sums / np.bincount(labels, minlength=k)[:, None]
    inertia = float(_sq_dist(x, centers)[np.arange(S), labels].sum())
    return KMeansResult(labels=labels, centers=centers, inertia=inertia)


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 100) -> KMeansResult:
    """Deterministic k-means (k-means++ seeding, Lloyd iterations); best of ``n_init`` runs by inertia.

    Args:
        x: (S, D) float points, S >= k.
        k: number of clusters (>= 1).
        seed: seed of the random seeding; the same inputs and seed give the same result.

    Returns:
        :class:`KMeansResult`; every cluster is non-empty.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise InputError(f"kmeans: expected a non-empty (S, D) array, got shape {x.shape}")
    if not 1 <= k <= len(x):
        raise ConfigError(f"kmeans: k={k} must be in [1, {len(x)}]")
    rng = np.random.default_rng(seed)
    best: KMeansResult | None = None
    for _ in range(max(1, n_init)):
        res = _kmeans_once(x, k, rng, max_iter)
        if best is None or res.inertia < best.inertia - 1e-12:
            best = res
    assert best is not None
    return best


def select_scenes(
    histograms: Mapping[str, np.ndarray],
    n: int = SelectConfig.n,
    gamma: float = SelectConfig.gamma,
    seed: int = SelectConfig.seed,
) -> Selection:
    """Pick ``n`` diverse, class-rich training scenes (see the module docstring for the algorithm).

    Args:
        histograms: ``{scene name: (C,) non-negative class counts}``; every histogram has the same C.
        n: number of scenes to choose (= number of k-means clusters).
        gamma: weight of the normalised class count against the normalised entropy.
        seed: k-means seed.

    Returns:
        :class:`Selection` with the chosen names (best score first) and a per-scene table.
    """
    if n < 1:
        raise ConfigError(f"select_scenes: n must be >= 1, got {n}")
    if not histograms:
        raise InputError("select_scenes: no scene histograms given")
    names = list(histograms)
    rows = []
    C = None
    for name in names:
        h = np.asarray(histograms[name])
        if h.ndim != 1 or h.size == 0:
            raise InputError(f"select_scenes: histogram of {name!r} must be a non-empty (C,) vector, got {h.shape}")
        if C is None:
            C = h.size
        elif h.size != C:
            raise InputError(f"select_scenes: histogram of {name!r} has {h.size} classes, expected {C}")
        if not np.all(np.isfinite(h)) or (h < 0).any():
            raise InputError(f"select_scenes: histogram of {name!r} has negative or non-finite counts")
        rows.append(h.astype(np.float64))
    hist = np.stack(rows)
    assert C is not None
    count, entropy = scene_stats(hist)
    score = entropy + gamma * count / C
    med_count = float(np.median(count))
    med_entropy = float(np.median(entropy))
    kept = (count >= med_count) & (entropy >= med_entropy)
    if not kept.any():
        logger.warning("select_scenes: no scene passes both medians; clustering all %d scenes", len(names))
        kept[:] = True
    table = [
        SceneStats(name=nm, class_count=int(c), entropy=float(e), score=float(s), kept=bool(k))
        for nm, c, e, s, k in zip(names, count, entropy, score, kept)
    ]
    survivors = np.flatnonzero(kept)
    if len(survivors) <= n:
        labels = np.arange(len(survivors))
    else:
        x = hist[survivors]
        x = x / np.maximum(x.sum(axis=1, keepdims=True), 1e-12)
        labels = kmeans(x, n, seed=seed).labels
    chosen_idx = []
    for c in np.unique(labels):
        members = survivors[labels == c]
        # Best score; ties to the alphabetically first name for determinism.
        best = min(members, key=lambda i: (-score[i], names[i]))
        chosen_idx.append(int(best))
    for i, c in zip(survivors, labels):
        table[i].cluster = int(c)
    for i in chosen_idx:
        table[i].chosen = True
    if len(chosen_idx) < n:  # the filter left fewer than n: top up from the dropped scenes, best score first
        dropped = sorted(np.flatnonzero(~kept), key=lambda i: (-score[i], names[i]))[: n - len(chosen_idx)]
        chosen_idx += [int(i) for i in dropped]
        for i in dropped:
            table[i].chosen = True
        logger.warning(
            "select_scenes: only %d of %d scenes pass the median filter (< n=%d); added the %d best-scored of the "
            "others%s", len(survivors), len(names), n, len(dropped),
            f" (all {len(names)} scenes chosen)" if len(chosen_idx) < n else "",
        )
    chosen_idx.sort(key=lambda i: (-score[i], names[i]))
    chosen = [names[i] for i in chosen_idx]
    logger.info("select_scenes: %d scenes, %d pass the filter, chose %d", len(names), len(survivors), len(chosen))
    return Selection(
        chosen=chosen,
        table=table,
        median_class_count=med_count,
        median_entropy=med_entropy,
        n=n,
        gamma=float(gamma),
    )
