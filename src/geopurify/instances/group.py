"""Group points into object proposals where features and geometry agree.

Data flow (per scene, on voxels of ``config.voxel_size``):

1. a graph over the voxels: mesh edges when there are faces, else the ``neighbours`` nearest voxels,
   cut where an edge is longer than ``max_edge`` voxel sizes (gaps separate objects);
2. the floor (and optionally the walls) found from geometry alone (:mod:`geopurify.instances.planes`):
   edges between them and the rest are cut and their superpoints are stuff whatever the features say;
   Felzenszwalb superpoints on that graph, with edge weights ``1 - |n_i . n_j|`` (normals),
   a Lab colour distance and, for ``grouping="features"``, the feature distance ``1 - cos(f_i, f_j)``;
3. each superpoint is classified by its mean feature; stuff superpoints (wall, floor, ceiling) are dropped;
4. adjacent superpoints merge: ``features``: same class and mean-feature cosine >= ``merge_cosine``;
   ``geometry`` (baseline): always (connected components of the non-stuff superpoints); ``features``
   components joined only by a thin bridge in the floor plane are cut (:mod:`geopurify.instances.split`);
5. components with at least ``min_points`` points are instances, classified by their mean feature over the
   thing classes, with confidence = their voxels' mean softmax probability of that class times a size
   term ``A / (A + size_prior)`` (``A`` their surface in square metres).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..geometry import VoxelGrid, knn, voxelize
from ..geometry.normals import pca_axes
from ..segment.query import normalize_phrase
from ..teachers.geometric import rgb_to_lab
from ..teachers.superpoints import felzenszwalb, segment_mean
from ..utils.rows import unit_rows_np
from .boxes import Box, axis_aligned_box, oriented_box
from .config import InstanceConfig
from .planes import PlaneOptions, components, room_planes
from .split import split_thin

log = logging.getLogger(__name__)



@dataclass
class Instance:
    """One object proposal.

    Attributes:
        id: rank by confidence, 0 = most confident.
        label: class index into the set's ``names``.
        name: class name.
        confidence: in [0, 1].
        points: (M,) int64 ascending point indices.
        aabb: axis-aligned box; obb: upright box of least footprint area.
    """

    id: int
    label: int
    name: str
    confidence: float
    points: np.ndarray
    aabb: Box
    obb: Box


@dataclass
class InstanceSet:
    """All proposals of a scene. ``names``: the C class names; ``stats``: counts and seconds."""

    names: list[str]
    instances: list[Instance]
    num_points: int
    stats: dict = field(default_factory=dict)

    def point_instance(self) -> np.ndarray:
        """(N,) int32 instance id of every point, -1 for none (stuff, or too small)."""
        out = np.full(self.num_points, -1, np.int32)
        for inst in self.instances:
            out[inst.points] = inst.id
        return out

    def __len__(self) -> int:
        return len(self.instances)


def pca_normals(centers: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit normals: the least-spread axis of each voxel's neighbours ``idx (V, k)``."""
    return unit_rows_np(pca_axes(centers, idx))


def voxel_graph(grid: VoxelGrid, faces: np.ndarray | None, neighbours: int, max_edge: float,
                knn_out: list | None = None) -> np.ndarray:  # fmt: skip
    """Undirected voxel edges (E, 2) int64, ``i < j``, unique.

    From mesh ``faces`` (F, 3) point indices when given (plus kNN edges for voxels no face touches),
    else from the ``neighbours`` nearest voxel centres. No edge is longer than ``max_edge`` times the
    larger of the voxel size and the median nearest-neighbour spacing of the voxel centres (so a
    sparsely sampled scan stays connected while gaps between objects still cut). ``knn_out``, a list,
    receives the (V, neighbours + 1) neighbour indices (for normals without a second search).
    """
    v = grid.num_voxels
    c = grid.centers
    if v < 2:
        return np.zeros((0, 2), np.int64)
    idx, dist = knn(c, c, min(neighbours + 1, v))
    if knn_out is not None:
        knn_out.append(idx)
    spacing = float(np.median(dist[:, 1])) if idx.shape[1] > 1 else 0.0
    limit = max_edge * max(grid.voxel_size, spacing)
    parts = []
    covered = np.zeros(v, bool)
    if faces is not None and len(faces):
        f = grid.point_to_voxel[np.asarray(faces, np.int64)]
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        parts.append(e)
        covered[e.ravel()] = True
    need = np.flatnonzero(~covered)
    if len(need):
        src = np.repeat(need, idx.shape[1])
        keep = dist[need].ravel() <= limit
        parts.append(np.stack([src[keep], idx[need].ravel()[keep]], axis=1))
    e = np.sort(np.concatenate(parts).astype(np.int64), axis=1)
    e = e[e[:, 0] != e[:, 1]]
    key = np.unique(e[:, 0] * v + e[:, 1])  # 1-D unique is far faster than unique(axis=0)
    e = np.stack([key // v, key % v], axis=1)
    if faces is not None and len(faces):  # face edges can be long where the mesh bridges a gap
        e = e[np.linalg.norm(c[e[:, 0]] - c[e[:, 1]], axis=1) <= limit]
    return e


def stuff_mask(names: list[str], stuff: list[str]) -> np.ndarray:
    """(C,) bool: which class names are stuff (compared after prompt normalisation)."""
    st = {normalize_phrase(s) for s in stuff}
    return np.array([normalize_phrase(n) in st for n in names], bool)


def find_instances(
    points: np.ndarray,
    features: np.ndarray,
    text: np.ndarray,
    names: list[str],
    config: InstanceConfig | None = None,
    normals: np.ndarray | None = None,
    colors: np.ndarray | None = None,
    faces: np.ndarray | None = None,
) -> InstanceSet:
    """Object proposals of one scene.

    Args:
        points: (N, 3) float coordinates, metres, z up.
        features: (N, D) float per-point features (purified or raw; any scale, float16 is fine).
        text: (C, D) float class text embeddings; ``names``: the C class names.
        config: grouping options (default :class:`InstanceConfig`).
        normals: optional (N, 3) unit normals (else estimated on the voxel centres).
        colors: optional (N, 3) float in [0, 1] (else colour does not weigh in).
        faces: optional (F, 3) int mesh faces over the points.
    """
    cfg = config or InstanceConfig()
    t0 = time.perf_counter()
    points = np.asarray(points)
    n = len(points)
    if points.ndim != 2 or points.shape[1] != 3 or n == 0:
        raise InputError(f"instances: points must be (N, 3) with N > 0, got {points.shape}")
    if features.ndim != 2 or features.shape[0] != n:
        raise InputError(f"instances: {features.shape[0] if features.ndim else 0} feature rows for {n} points")
    text = np.asarray(text, np.float32)
    if text.ndim != 2 or text.shape[1] != features.shape[1] or len(text) != len(names):
        raise InputError(
            f"instances: text embeddings {text.shape} do not match {len(names)} names "
            f"and {features.shape[1]}-d features"
        )
    is_stuff = stuff_mask(names, cfg.stuff)
    if is_stuff.all():
        raise InputError("instances: every class is stuff; nothing can be an object")

    grid = voxelize(points, cfg.voxel_size)
    v = grid.num_voxels
    # mean features per voxel, a block of columns at a time (a float32 copy of (N, D) can be large)
    vf = np.concatenate([grid.reduce(np.asarray(features[:, s : s + 128], np.float32))
                         for s in range(0, features.shape[1], 128)], axis=1)  # fmt: skip
    if not np.isfinite(vf).all():
        raise InputError("instances: features contain NaN or infinite values")
    vf = unit_rows_np(vf)
    tu = unit_rows_np(text)
    nbrs: list = []
    edges = voxel_graph(grid, faces, cfg.neighbours, cfg.max_edge, knn_out=nbrs)
    if normals is not None:
        vn = unit_rows_np(grid.reduce(np.asarray(normals, np.float32)))
    elif nbrs and nbrs[0].shape[1] >= 3:  # PCA over the graph's own neighbours: no second kNN search
        vn = pca_normals(grid.centers, nbrs[0])
    else:
        vn = np.tile(np.float32([0, 0, 1]), (v, 1))
    on_plane = np.zeros(v, bool)
    planes = []
    if cfg.stuff_planes and v >= 3:
        opt = PlaneOptions(band=cfg.plane_band)
        planes, on_plane = room_planes(grid.centers, vn, cfg.voxel_size, opt, walls="wall" in cfg.stuff_planes,
                                       floor="floor" in cfg.stuff_planes, edges=edges)  # fmt: skip
        # no superpoint spans a plane and what stands on it: the plane's voxels group among themselves
        edges = edges[on_plane[edges[:, 0]] == on_plane[edges[:, 1]]]
    a, b = edges[:, 0], edges[:, 1]
    w = 1.0 - np.abs(np.einsum("ij,ij->i", vn[a], vn[b]))
    if colors is not None and cfg.color_weight > 0:
        lab = rgb_to_lab(grid.reduce(np.asarray(colors, np.float32)))
        w = w + cfg.color_weight * np.linalg.norm(lab[a] - lab[b], axis=1) / 100.0
    if cfg.grouping == "features" and cfg.feature_weight > 0:
        w = w + cfg.feature_weight * (1.0 - np.einsum("ij,ij->i", vf[a], vf[b]))
    t_graph = time.perf_counter()
    sp = felzenszwalb(v, edges, w, cfg.fh_c, cfg.min_superpoint)
    t_sp = time.perf_counter()
    n_sp = int(sp.max()) + 1 if v else 0
    counts = grid.counts.astype(np.float64)
    sp_f = unit_rows_np(segment_mean(vf, sp, n_sp, counts).astype(np.float32))
    sp_cls = (sp_f @ tu.T).argmax(axis=1)
    thing = ~is_stuff[sp_cls]
    if on_plane.any():
        thing[np.unique(sp[on_plane])] = False

    # superpoint adjacency, then the merge rule
    sa, sb = sp[a], sp[b]
    cross = sa != sb
    key = np.unique(np.minimum(sa[cross], sb[cross]) * n_sp + np.maximum(sa[cross], sb[cross]))
    pairs = np.stack([key // n_sp, key % n_sp], axis=1)
    ok = thing[pairs[:, 0]] & thing[pairs[:, 1]]
    if cfg.grouping == "features":
        same = sp_cls[pairs[:, 0]] == sp_cls[pairs[:, 1]]
        cos = np.einsum("ij,ij->i", sp_f[pairs[:, 0]], sp_f[pairs[:, 1]])
        ok &= same & (cos >= cfg.merge_cosine)
    pairs = pairs[ok]
    comp = components(n_sp, pairs)
    comp[~thing] = -1
    voxel_comp = comp[sp]
    if cfg.grouping == "features" and cfg.split_width > 0:
        voxel_comp = split_thin(voxel_comp, grid.centers, cfg.voxel_size, cfg.split_width, cfg.split_min_area,
                                cfg.split_balance)  # fmt: skip

    # instances: components big enough, classified over the thing classes
    logits = (vf @ tu.T) / cfg.temperature
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    point_comp = voxel_comp[grid.point_to_voxel]
    ok = point_comp >= 0
    order = np.argsort(point_comp[ok], kind="stable")
    pts_sorted = np.flatnonzero(ok)[order]
    ids, starts, sizes = np.unique(point_comp[ok][order], return_index=True, return_counts=True)
    vox_of = {}
    keep = ids[sizes >= cfg.min_points]
    if len(keep):
        vsel = np.flatnonzero(np.isin(voxel_comp, keep))
        vorder = vsel[np.argsort(voxel_comp[vsel], kind="stable")]
        vids, vstarts = np.unique(voxel_comp[vorder], return_index=True)
        vox_of = dict(zip(vids.tolist(), np.split(vorder, vstarts[1:])))
    thing_idx = np.flatnonzero(~is_stuff)
    found = []
    for cid, s, m in zip(ids.tolist(), starts.tolist(), sizes.tolist()):
        if m < cfg.min_points:
            continue
        vox = vox_of[cid]
        wv = counts[vox]
        mean_f = (vf[vox] * wv[:, None]).sum(axis=0)
        label = int(thing_idx[np.argmax(tu[thing_idx] @ mean_f)])
        conf = float((prob[vox, label] * wv).sum() / wv.sum())
        if cfg.size_prior > 0:
            area = len(vox) * cfg.voxel_size**2
            conf *= area / (area + cfg.size_prior)
        pts = np.sort(pts_sorted[s : s + m])
        xyz = points[pts]
        found.append((conf, label, pts, axis_aligned_box(xyz), oriented_box(xyz)))
    found.sort(key=lambda r: -r[0])
    instances = [Instance(i, lab, names[lab], conf, pts, aabb, obb)
                 for i, (conf, lab, pts, aabb, obb) in enumerate(found)]  # fmt: skip
    t1 = time.perf_counter()
    stats = {
        "voxels": v,
        "edges": int(len(edges)),
        "superpoints": n_sp,
        "thing_superpoints": int(thing.sum()),
        "planes": [{"kind": p.kind, "area_m2": round(p.area, 2)} for p in planes],
        "plane_voxels": int(on_plane.sum()),
        "instances": len(instances),
        "seconds": {"graph": round(t_graph - t0, 4), "superpoints": round(t_sp - t_graph, 4),
                    "group": round(t1 - t_sp, 4), "total": round(t1 - t0, 4)},  # fmt: skip
    }
    log.info("%d instances from %d superpoints (%d voxels) in %.2f s", len(instances), n_sp, v, t1 - t0)
    return InstanceSet(list(names), instances, n, stats)
