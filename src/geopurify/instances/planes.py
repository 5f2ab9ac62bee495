"""The room's bounding planes (floor, walls) found from geometry alone, so they are stuff before grouping.

Smoothed (purified) features carry an object's class a few centimetres onto the floor or wall it stands
on or against; grouping by class alone then lets a chair swallow the floor around its legs. The planes
that bound the room are found without labels or features:

* floor: the lowest height, among the voxels whose normal is near vertical, that holds at least
  ``floor_support`` of them (a histogram over height), refined by a least-squares plane through those
  voxels (a scan tilted by up to ``max_tilt`` degrees stays level with it), kept when at most
  ``wall_behind`` of the scan lies more than ``behind_margin`` below it (a scan without a floor: the
  lowest level surface of a table has its legs below it);
* walls: RANSAC over the voxels with a near-horizontal normal (a hypothesis is one voxel's position and
  normal); a plane counts as a wall when its inliers cover at least ``wall_area`` square metres and
  almost nothing of the scan lies behind it (at most ``wall_behind`` of the voxels further than
  ``behind_margin``): it bounds the room. A cabinet front or a table side has the rest of its object,
  and the room, behind it.

A voxel is on a plane when it lies within ``band`` of it with its normal within ``angle`` degrees of the
plane's; the floor then grows from its plane over the voxel graph (:func:`grow_floor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


@dataclass
class Plane:
    """``normal . x = offset`` with a unit ``normal (3,)``; ``kind`` is ``"floor"`` or ``"wall"``; ``voxels``
    on it; ``area`` in square metres."""

    kind: str
    normal: np.ndarray
    offset: float
    voxels: int
    area: float


@dataclass
class PlaneOptions:
    """Settings of :func:`room_planes` (validated by :class:`geopurify.instances.InstanceConfig`)."""

    band: float = 0.05
    angle: float = 25.0
    floor_support: float = 0.05
    max_tilt: float = 5.0
    wall_area: float = 1.5
    wall_behind: float = 0.02
    behind_margin: float = 0.15
    max_walls: int = 8
    hypotheses: int = 256
    seed: int = 0


def _fit_plane(xyz: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane of (M, 3) points: unit normal (3,) and offset."""
    c = xyz.mean(axis=0)
    # the normal is the scatter matrix's least eigenvector: (3, 3) for any M, also M < 3. The full SVD of
    # the (M, 3) points built an (M, M) U: 33 s and 3 GB for a real room's 20k floor voxels, and a
    # MemoryError for a large flat's floor
    a = (xyz - c).astype(np.float64)
    _, vecs = np.linalg.eigh(a.T @ a)
    n = vecs[:, 0]
    return n, float(n @ c)


def find_floor(centers: np.ndarray, normals: np.ndarray, voxel_size: float, opt: PlaneOptions) -> Plane | None:
    """The floor plane of voxel ``centers (V, 3)`` with unit ``normals (V, 3)`` (z up), or None."""
    cos = np.cos(np.radians(opt.angle))
    flat = np.flatnonzero(np.abs(normals[:, 2]) >= cos)
    if len(flat) < 3:
        return None
    z = centers[flat, 2]
    lo, hi = float(z.min()), float(z.max())
    bins = np.arange(lo, hi + 2 * opt.band, opt.band)
    if len(bins) < 2:
        bins = np.array([lo, lo + opt.band])
    hist, edges = np.histogram(z, bins=bins)
    full = np.flatnonzero(hist >= opt.floor_support * len(flat))
    if not len(full):
        return None
    b = full[0]
    near = flat[(z >= edges[b] - opt.band) & (z <= edges[b + 1] + opt.band)]
    n, d = _fit_plane(centers[near])
    if abs(n[2]) < np.cos(np.radians(opt.max_tilt)):  # the fit tilted away (a narrow strip): keep it level
        n, d = np.array([0.0, 0.0, 1.0]), float(np.median(centers[near, 2]))
    if n[2] < 0:
        n, d = -n, -d
    # a floor bounds the scan from below (a scan of a table alone has legs under its lowest level surface)
    if (centers @ n - d < -opt.behind_margin).mean() > opt.wall_behind:
        return None
    return Plane("floor", n.astype(np.float32), d, len(near), len(near) * voxel_size**2)


def find_walls(centers: np.ndarray, normals: np.ndarray, voxel_size: float, opt: PlaneOptions,
               exclude: np.ndarray | None = None) -> list[Plane]:  # fmt: skip
    """Vertical planes that bound the room (see the module doc), largest first."""
    rng = np.random.default_rng(opt.seed)
    cos = np.cos(np.radians(opt.angle))
    cand = np.abs(normals[:, 2]) <= np.sin(np.radians(opt.angle))
    if exclude is not None:
        cand &= ~exclude
    free = np.flatnonzero(cand)
    walls: list[Plane] = []
    # every voxel decides "behind" (a sample keeps the check cheap; fractions are what count)
    probe = centers[rng.choice(len(centers), min(len(centers), 20000), replace=False)].astype(np.float64)
    need = int(np.ceil(opt.wall_area / voxel_size**2))
    for _ in range(opt.max_walls):
        if len(free) < need:
            break
        sub = free[rng.choice(len(free), min(len(free), 20000), replace=False)]
        hyp = free[rng.choice(len(free), min(len(free), opt.hypotheses), replace=False)]
        hn = normals[hyp].astype(np.float64)
        hn[:, 2] = 0.0  # walls are vertical
        hn /= np.maximum(np.linalg.norm(hn, axis=1, keepdims=True), _EPS)
        hd = np.einsum("ij,ij->i", hn, centers[hyp].astype(np.float64))
        dist = np.abs(centers[sub].astype(np.float64) @ hn.T - hd)  # (S, H)
        align = np.abs(normals[sub].astype(np.float64) @ hn.T) >= cos
        score = ((dist <= opt.band) & align).sum(axis=0)
        best = int(np.argmax(score))
        if score[best] * len(free) / len(sub) < need:
            break
        n, d = hn[best], hd[best]
        on = free[(np.abs(centers[free] @ n - d) <= opt.band) & (np.abs(normals[free] @ n) >= cos)]
        n, d = _fit_plane(centers[on])
        n[2] = 0.0
        n /= max(np.linalg.norm(n), _EPS)
        d = float(n @ centers[on].mean(axis=0))
        sd = probe @ n - d
        behind = min((sd > opt.behind_margin).mean(), (sd < -opt.behind_margin).mean())
        on = free[(np.abs(centers[free] @ n - d) <= opt.band) & (np.abs(normals[free] @ n) >= cos)]
        free = np.setdiff1d(free, on, assume_unique=True)  # tried once: a plane that bounds nothing is not re-tried
        if behind <= opt.wall_behind and len(on) >= need:
            walls.append(Plane("wall", n.astype(np.float32), d, len(on), len(on) * voxel_size**2))
    return walls


def plane_voxels(centers: np.ndarray, normals: np.ndarray, planes: list[Plane], opt: PlaneOptions) -> np.ndarray:
    """(V,) bool: voxels on any of ``planes`` (see the module doc)."""
    cos = np.cos(np.radians(opt.angle))
    out = np.zeros(len(centers), bool)
    for p in planes:
        dist = np.abs(centers @ p.normal - p.offset)
        out |= (dist <= opt.band) & (np.abs(normals @ p.normal) >= cos)
    return out


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """(n,) int64 connected-component labels of ``n`` nodes joined by ``pairs (P, 2)``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1].astype(np.int64)


def grow_floor(centers: np.ndarray, normals: np.ndarray, edges: np.ndarray, seed: np.ndarray,
               opt: PlaneOptions) -> np.ndarray:  # fmt: skip
    """(V,) bool: the floor grown from ``seed (V,) bool`` over graph ``edges (E, 2)`` through voxels with a
    near-vertical normal and edges that climb at most ``angle`` degrees (a warped or drifting floor stays one
    surface; chair legs and cabinet sides, with horizontal normals, stop it), plus its rim: the voxels one
    edge away within ``band / 2`` of a floor voxel's height."""
    v = len(centers)
    cos = np.cos(np.radians(opt.angle))
    flat = np.abs(normals[:, 2]) >= cos
    a, b = edges[:, 0], edges[:, 1]
    d = centers[b] - centers[a]
    climb = np.abs(d[:, 2]) <= np.tan(np.radians(opt.angle)) * np.linalg.norm(d[:, :2], axis=1)
    keep = flat[a] & flat[b] & climb
    comp = components(v, edges[keep])
    floor = np.isin(comp, np.unique(comp[seed & flat])) & flat
    # the rim: voxels at an object's foot hold floor points too (mixed normals); one step, at floor height
    rim = floor[a] != floor[b]
    low = np.abs(d[:, 2]) <= opt.band / 2
    out = floor.copy()
    out[a[rim & low & ~floor[a]]] = True
    out[b[rim & low & ~floor[b]]] = True
    return out


def room_planes(centers: np.ndarray, normals: np.ndarray, voxel_size: float, opt: PlaneOptions,
                walls: bool = True, floor: bool = True,
                edges: np.ndarray | None = None) -> tuple[list[Plane], np.ndarray]:  # fmt: skip
    """The floor and the bounding walls of a scan (each if asked), and the (V,) bool mask of voxels on them.

    With the voxel graph's ``edges (E, 2)``, the floor is grown from its plane (:func:`grow_floor`)."""
    f = find_floor(centers, normals, voxel_size, opt) if floor else None
    planes = [f] if f is not None else []
    mask = plane_voxels(centers, normals, planes, opt)
    if f is not None and edges is not None and len(edges):
        mask |= grow_floor(centers, normals, edges, mask, opt)
    if walls:
        w = find_walls(centers, normals, voxel_size, opt, exclude=mask)
        planes += w
        mask |= plane_voxels(centers, normals, w, opt)
    return planes, mask
