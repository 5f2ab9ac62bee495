"""Surface sampling of a box layout into a triangle mesh, and the shared surface colour model."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .layout import Layout

log = logging.getLogger(__name__)

_LIGHT = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])
_TEXEL = 0.02  # texture cell size, metres
_TINT_DIRS = np.array([[1.7, 0.4, 0.9], [-0.6, 1.9, 0.5], [0.8, -1.1, 1.6]])  # per channel, rad/m
_TINT_PHASE = np.array([0.3, 2.1, 4.0])
_TINT_AMP = 0.12


@dataclass
class Mesh:
    """Vertices on the visible box surfaces and their triangles.

    Attributes:
        vertices: (N, 3) float32 positions, metres.
        normals: (N, 3) float32 outward unit normals (axis-aligned).
        colors: (N, 3) uint8 RGB.
        box: (N,) int32 box each vertex lies on.
        faces: (F, 3) int32 vertex indices, counter-clockwise seen from outside.
        spacing: grid spacing used, metres.
    """

    vertices: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    box: np.ndarray
    faces: np.ndarray
    spacing: float


def surface_colors(points: np.ndarray, normals: np.ndarray, box: np.ndarray, layout: Layout,
                   tint: bool = True) -> np.ndarray:  # fmt: skip
    """Albedo x texture x fixed Lambertian shading; the mesh and the rendered images both use it.

    Args:
        points: (M, 3) surface points; normals: (M, 3) unit normals; box: (M,) int box ids;
        tint: add the world-fixed coloured light (off for the legacy rooms).
    Returns:
        (M, 3) float32 RGB in [0, 1].
    """
    base = layout.box_color[box].astype(np.float32)
    # Texture noise from a hash of the texel the point lies in (offset along the normal so that
    # points exactly on a face plane never straddle two texels).
    cell = np.floor((points + 0.5 * _TEXEL * normals) / _TEXEL).astype(np.int64)
    h = (cell[:, 0] * 73856093) ^ (cell[:, 1] * 19349663) ^ (cell[:, 2] * 83492791) ^ (box.astype(np.int64) * 97)
    h = ((h * 2654435761) & 0xFFFFFFFF).astype(np.float64) / 2.0**32
    tex = 1.0 + 0.16 * (h - 0.5)
    # Low-frequency variation (stains, lighting fall-off) so colours are not flat per object.
    lf = 1.0 + 0.06 * np.sin(points @ np.array([2.1, 1.3, 0.9]) + box * 0.7)
    shade = 0.78 + 0.22 * (normals @ _LIGHT)
    rgb = base * (tex * lf * shade)[:, None].astype(np.float32)
    if tint:  # world-fixed tinted light and stains that run across object borders
        rgb = rgb * (1.0 + _TINT_AMP * np.sin(points @ _TINT_DIRS.T + _TINT_PHASE)).astype(np.float32)
    return np.clip(rgb, 0.0, 1.0)


def _inside(points: np.ndarray, lo: np.ndarray, hi: np.ndarray, eps: float) -> np.ndarray:
    """(M,) bool: point strictly inside any of the (K, 3) boxes by more than ``eps``."""
    if len(lo) == 0:
        return np.zeros(len(points), dtype=bool)
    out = np.zeros(len(points), dtype=bool)
    for a, b in zip(lo, hi):
        out |= np.all((points > a + eps) & (points < b - eps), axis=1)
    return out


def _faces_of(layout: Layout):
    """Yield (box, axis, sign) for the six faces of every box."""
    for b in range(layout.num_boxes):
        for axis in range(3):
            for sign in (-1, 1):
                yield b, axis, sign


def sample_surfaces(layout: Layout, spacing: float, with_faces: bool = True, tint: bool = True) -> Mesh:
    """Grid-sample every box face at ``spacing`` and keep the visible samples.

    A sample is dropped when it lies inside another box, or when the point 1.5 cm in front of it
    does (a face resting on the floor, against a wall, under a table top) or is outside the room.
    """
    lo, hi = layout.lo, layout.hi
    room = layout.room
    verts, norms, boxes, tris = [], [], [], []
    n_total = 0
    for b, axis, sign in _faces_of(layout):
        u_ax, v_ax = ((axis + 1) % 3, (axis + 2) % 3) if sign > 0 else ((axis + 2) % 3, (axis + 1) % 3)
        Lu, Lv = hi[b, u_ax] - lo[b, u_ax], hi[b, v_ax] - lo[b, v_ax]
        nu, nv = max(1, int(round(Lu / spacing))), max(1, int(round(Lv / spacing)))
        gu = lo[b, u_ax] + (np.arange(nu) + 0.5) * (Lu / nu)
        gv = lo[b, v_ax] + (np.arange(nv) + 0.5) * (Lv / nv)
        P = np.empty((nu, nv, 3))
        P[..., u_ax] = gu[:, None]
        P[..., v_ax] = gv[None, :]
        P[..., axis] = hi[b, axis] if sign > 0 else lo[b, axis]
        P = P.reshape(-1, 3)
        n = np.zeros(3)
        n[axis] = sign
        front = P + 0.015 * n
        # Only boxes near this face can hide it.
        flo, fhi = P.min(axis=0) - 0.02, P.max(axis=0) + 0.02
        near = np.all((lo < fhi) & (hi > flo), axis=1)
        near[b] = False
        keep = ~_inside(P, lo[near], hi[near], 1e-4) & ~_inside(front, lo[near], hi[near], 0.0)
        keep &= np.all((front > [-1e-6, -1e-6, -1e-6]) & (front < [room[0], room[1], room[2]]), axis=1)
        if not keep.any():
            continue
        idx = np.full(nu * nv, -1, dtype=np.int64)
        idx[keep] = n_total + np.arange(int(keep.sum()))
        n_total += int(keep.sum())
        verts.append(P[keep])
        norms.append(np.broadcast_to(n, (int(keep.sum()), 3)))
        boxes.append(np.full(int(keep.sum()), b, dtype=np.int32))
        if with_faces and nu > 1 and nv > 1:
            g = idx.reshape(nu, nv)
            a, bb, c, d = g[:-1, :-1], g[1:, :-1], g[:-1, 1:], g[1:, 1:]
            t = np.concatenate([np.stack([a, bb, c], -1).reshape(-1, 3), np.stack([bb, d, c], -1).reshape(-1, 3)])
            tris.append(t[(t >= 0).all(axis=1)])
    vertices = np.concatenate(verts).astype(np.float32)
    normals = np.concatenate(norms).astype(np.float32)
    box = np.concatenate(boxes)
    faces = np.concatenate(tris).astype(np.int32) if tris else np.zeros((0, 3), dtype=np.int32)
    colors = (surface_colors(vertices.astype(np.float64), normals, box, layout, tint) * 255 + 0.5).astype(np.uint8)
    return Mesh(vertices, normals, colors, box, faces, float(spacing))


def stitch(mesh: Mesh, max_gap: float) -> Mesh:
    """Connect the mesh where surfaces of different boxes meet (as a reconstructed scan's mesh is
    connected where a chair touches the floor): a triangle from each vertex to its two nearest vertices
    on other boxes within ``max_gap``."""
    from scipy.spatial import cKDTree

    v, box = mesh.vertices.astype(np.float64), mesh.box
    # Only vertices within max_gap of another box's bounds can touch it: test box pairs whose
    # expanded bounds overlap, on the first box's vertices only.
    order = np.argsort(box, kind="stable")
    starts = np.searchsorted(box[order], np.arange(int(box.max()) + 2))
    lo = np.full((starts.size - 1, 3), np.inf)
    hi = np.full((starts.size - 1, 3), -np.inf)
    for b in range(starts.size - 1):
        if starts[b + 1] > starts[b]:
            pts = v[order[starts[b] : starts[b + 1]]]
            lo[b], hi[b] = pts.min(0), pts.max(0)
    near = np.zeros(len(v), bool)
    for b in range(starts.size - 1):
        idx = order[starts[b] : starts[b + 1]]
        if len(idx) == 0:
            continue
        others = np.nonzero(np.all((lo - max_gap <= hi[b]) & (hi + max_gap >= lo[b]), axis=1))[0]
        for c in others[others != b]:
            pts = v[idx]
            near[idx] |= np.all((pts >= lo[c] - max_gap) & (pts <= hi[c] + max_gap), axis=1)
    cand = np.nonzero(near)[0]
    if len(cand) == 0:
        return mesh
    # A vertex on another box within max_gap of a candidate is itself a candidate: search among those.
    d, nb = cKDTree(v[cand]).query(v[cand], k=9, distance_upper_bound=max_gap)
    nb = np.where(np.isfinite(d), cand[np.minimum(nb, len(cand) - 1)], -1)
    other = (nb >= 0) & (box[np.maximum(nb, 0)] != box[cand][:, None])
    # first two neighbours on other boxes, per vertex
    rank = np.cumsum(other, axis=1)
    first = np.where(other & (rank == 1), nb, -1).max(axis=1)
    second = np.where(other & (rank == 2), nb, -1).max(axis=1)
    ok = (first >= 0) & (second >= 0)
    i = cand[ok]
    extra = np.column_stack([i, first[ok], second[ok]]).astype(np.int32)
    if len(extra):
        extra = np.unique(np.sort(extra, axis=1), axis=0)
    faces = np.concatenate([mesh.faces, extra]) if len(extra) else mesh.faces
    return Mesh(mesh.vertices, mesh.normals, mesh.colors, mesh.box, faces, mesh.spacing)


def mesh_for_target(layout: Layout, target_points: int, legacy: bool = False) -> Mesh:
    """Choose the spacing so that about ``target_points`` vertices survive, then sample; unless
    ``legacy``, tint the colours and stitch the surfaces of touching boxes together (:func:`stitch`)."""
    coarse = 0.1
    visible_area = len(sample_surfaces(layout, coarse, with_faces=False).vertices) * coarse**2
    spacing = float(np.sqrt(visible_area / target_points))
    mesh = sample_surfaces(layout, spacing, tint=not legacy)
    if not legacy:
        mesh = stitch(mesh, 1.5 * spacing)
    log.debug("mesh: spacing %.4f m -> %d vertices, %d faces", spacing, len(mesh.vertices), len(mesh.faces))
    return mesh
