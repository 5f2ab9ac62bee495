"""Cut a grouped component where it is only a thin bridge in the floor plane (two chairs joined by a sill).

Smoothed features make everything between two same-class objects look alike, so two chairs joined by a
thin strip (a skirting board, a sill, a misclassified cable) come out as one component. Seen from above,
an object's body is a blob at least a seat wide while such a bridge is a few centimetres wide. Each
component's voxels are drawn on an x-y grid of the voxel size and eroded by a disk of radius ``width``
(a morphological core); where two or more cores of at least ``min_area`` square metres remain, and the
smallest keeps at least ``balance`` of the largest's area (repeated objects of one kind: chairs in a row;
a counter narrowed by its sink, with a large and a small side, stays whole), the component is cut: a
voxel goes to the core within ``2 * width`` of it (nearest first), what is further from every core (the
bridge) becomes pieces of its own. A component with fewer than two cores (one
object; or something thin everywhere, a door, a window) is left whole.
"""

from __future__ import annotations

import numpy as np


def _disk(radius_cells: int) -> np.ndarray:
    r = np.arange(-radius_cells, radius_cells + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius_cells**2


def split_component(xy: np.ndarray, cell: float, width: float, min_area: float,
                    balance: float) -> np.ndarray | None:  # fmt: skip
    """Pieces of one component from its voxels' ``xy (M, 2)`` positions: (M,) int64 labels 0..P-1, or None
    when it stays whole."""
    from scipy import ndimage

    ij = np.floor((xy - xy.min(axis=0)) / cell).astype(np.int64)
    pad = int(np.ceil(2 * width / cell)) + 1
    ij += pad
    shape = tuple(ij.max(axis=0) + pad + 1)
    occ = np.zeros(shape, bool)
    occ[ij[:, 0], ij[:, 1]] = True
    occ = ndimage.binary_closing(occ, structure=np.ones((3, 3), bool))  # the gaps between scanned rows
    core = ndimage.binary_erosion(occ, structure=_disk(max(1, round(width / cell))))
    lab, n = ndimage.label(core, structure=np.ones((3, 3), bool))
    if n < 2:
        return None
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:] * cell**2
    big = np.flatnonzero(areas >= min_area) + 1
    if len(big) < 2 or areas[big - 1].min() < balance * areas[big - 1].max():
        return None
    keep = np.isin(lab, big)
    dist, (ni, nj) = ndimage.distance_transform_edt(~keep, return_indices=True)
    owner = np.where(dist * cell <= 2 * width, lab[ni, nj], 0)  # 0: the bridge
    rest, nr = ndimage.label(occ & (owner == 0), structure=np.ones((3, 3), bool))
    ids = np.where(owner > 0, owner, rest + lab.max())  # bridge pieces after the cores
    out = ids[ij[:, 0], ij[:, 1]]
    return np.unique(out, return_inverse=True)[1].astype(np.int64)


def split_thin(comp: np.ndarray, centers: np.ndarray, cell: float, width: float, min_area: float,
               balance: float = 0.5) -> np.ndarray:  # fmt: skip
    """Voxel components ``comp (V,)`` int64 (-1 none) after cutting thin bridges; ``centers (V, 3)`` metres,
    z up. Returns (V,) int64 labels (-1 kept)."""
    out = comp.copy()
    ok = comp >= 0
    if not ok.any():
        return out
    order = np.argsort(comp[ok], kind="stable")
    vox = np.flatnonzero(ok)[order]
    _, starts = np.unique(comp[vox], return_index=True)
    nxt = int(comp.max()) + 1
    for members in np.split(vox, starts[1:]):
        if len(members) * cell**2 < 2 * min_area:  # too little surface for two objects
            continue
        parts = split_component(centers[members, :2], cell, width, min_area, balance)
        if parts is None:
            continue
        for p in range(1, int(parts.max()) + 1):  # piece 0 keeps the component's id
            out[members[parts == p]] = nxt
            nxt += 1
    return out
