"""PLY export and the colour helpers every picture shares (class palette, similarity heat map).

The PLY writer is plain numpy: one structured array per element written after the header, binary
little-endian, so a 1M-point cloud is written in well under a second and reads back with ``plyfile``,
MeshLab, CloudCompare and Open3D.
"""

from __future__ import annotations

import colorsys
import logging
import os
import re

import numpy as np

from ..errors import InputError
from ..utils.atomic import atomic_open

log = logging.getLogger(__name__)

__all__ = ["write_ply", "palette", "heatmap_colors", "label_colors", "luminance"]

# numpy dtype -> PLY scalar type name (the names of the original PLY spec, which every reader knows).
_PLY_TYPES: dict[np.dtype, str] = {
    np.dtype("int8"): "char",
    np.dtype("uint8"): "uchar",
    np.dtype("int16"): "short",
    np.dtype("uint16"): "ushort",
    np.dtype("int32"): "int",
    np.dtype("uint32"): "uint",
    np.dtype("float32"): "float",
    np.dtype("float64"): "double",
}
_RESERVED = {"x", "y", "z", "red", "green", "blue"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _ply_dtype(name: str, values: np.ndarray, path: os.PathLike | str) -> np.dtype:
    """The little-endian dtype a per-vertex property is stored as (PLY has no 64-bit ints nor halves)."""
    dt = values.dtype
    if dt == np.bool_:
        return np.dtype("u1")
    if dt == np.float16:
        return np.dtype("<f4")
    if dt.kind in "iu" and dt.itemsize == 8:
        info = np.iinfo(np.int32 if dt.kind == "i" else np.uint32)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise InputError(f"{path}: vertex property {name!r} does not fit in 32 bits (PLY has no int64)")
        return np.dtype("<i4" if dt.kind == "i" else "<u4")
    if dt.newbyteorder("=") in _PLY_TYPES or dt in _PLY_TYPES:
        return dt.newbyteorder("<")
    raise InputError(f"{path}: vertex property {name!r} has dtype {dt}, which PLY cannot store")


def write_ply(
    path: str | os.PathLike,
    points: np.ndarray,
    colors: np.ndarray,
    extra: dict[str, np.ndarray] | None = None,
    faces: np.ndarray | None = None,
) -> None:
    """Write a coloured point cloud (or mesh) as binary little-endian PLY, atomically.

    Args:
        path: output ``.ply`` file.
        points: (N, 3) float positions, stored as float32 ``x y z``.
        colors: (N, 3) uint8 RGB, stored as ``red green blue`` (uchar).
        extra: optional per-vertex properties, name -> (N,) array (e.g. ``label`` int32, ``score``
            float32). bool is stored as uchar, float16 as float, int64 as int (if it fits).
        faces: optional (F, 3) int triangle indices into the points, stored as the usual
            ``list uchar int vertex_indices``.
    Raises:
        InputError: wrong shapes or dtypes, a bad property name, or a face index out of range.
    """
    points = np.asarray(points)
    colors = np.asarray(colors)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"{path}: points must be (N, 3), got {points.shape}")
    n = len(points)
    if colors.shape != (n, 3):
        raise InputError(f"{path}: colors must be ({n}, 3) like the points, got {colors.shape}")
    if colors.dtype != np.uint8:
        raise InputError(f"{path}: colors must be uint8 (0-255), got {colors.dtype}")
    extra = dict(extra or {})

    fields: list[tuple[str, np.dtype]] = [("x", np.dtype("<f4")), ("y", np.dtype("<f4")), ("z", np.dtype("<f4"))]
    fields += [("red", np.dtype("u1")), ("green", np.dtype("u1")), ("blue", np.dtype("u1"))]
    for name, values in extra.items():
        values = np.asarray(values)
        if not _NAME_RE.match(name) or name in _RESERVED:
            raise InputError(f"{path}: bad or reserved vertex property name {name!r}")
        if values.shape != (n,):
            raise InputError(f"{path}: vertex property {name!r} must be ({n},), got {values.shape}")
        extra[name] = values
        fields.append((name, _ply_dtype(name, values, path)))

    vertex = np.empty(n, dtype=np.dtype(fields))
    vertex["x"], vertex["y"], vertex["z"] = points[:, 0], points[:, 1], points[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    for name, values in extra.items():
        vertex[name] = values

    face_rec = None
    if faces is not None:
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
            raise InputError(f"{path}: faces must be (F, 3) integer triangles, got {faces.shape} {faces.dtype}")
        if faces.size and (faces.min() < 0 or faces.max() >= n):
            raise InputError(f"{path}: face index out of range [0, {n})")
        face_rec = np.empty(len(faces), dtype=np.dtype([("n", "u1"), ("v", "<i4", (3,))]))
        face_rec["n"] = 3
        face_rec["v"] = faces

    header = ["ply", "format binary_little_endian 1.0", "comment written by geopurify", f"element vertex {n}"]
    header += [f"property {_PLY_TYPES[dt.newbyteorder('=')]} {name}" for name, dt in fields]
    if face_rec is not None:
        header += [f"element face {len(face_rec)}", "property list uchar int vertex_indices"]
    header.append("end_header")
    with atomic_open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(vertex.tobytes())
        if face_rec is not None:
            f.write(face_rec.tobytes())
    log.debug("wrote %s: %d vertices, %s faces", path, n, 0 if face_rec is None else len(face_rec))


# Twenty hand-ordered, clearly distinct colours (Tableau-like hues, dark row first, then light row),
# so the first classes of any label set get the most separable colours.
_BASE = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
        (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
        (196, 156, 148), (247, 182, 210), (255, 215, 0), (219, 219, 141), (0, 95, 95),
    ],
    dtype=np.uint8,
)  # fmt: skip


def palette(n: int) -> np.ndarray:
    """``n`` distinct class colours, (n, 3) uint8; ``palette(k)`` is a prefix of ``palette(n)`` for k < n.

    The first 20 are a fixed, well separated set; beyond that hues advance by the golden angle with
    alternating saturation/value so neighbours in the list stay distinguishable.
    """
    if n < 0:
        raise ValueError(f"palette size must be >= 0, got {n}")
    if n <= len(_BASE):
        return _BASE[:n].copy()
    extra = []
    for i in range(n - len(_BASE)):
        h = (0.13 + i * 0.618033988749895) % 1.0
        s, v = (0.75, 0.9) if i % 2 == 0 else (0.55, 0.7)
        extra.append([round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)])
    return np.concatenate([_BASE, np.asarray(extra, dtype=np.uint8)])


def _viridis_lut() -> np.ndarray:
    """(256, 3) uint8 viridis lookup table from matplotlib (imported lazily: it is slow to import)."""
    from matplotlib import colormaps

    return np.round(colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def heatmap_colors(scores: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map scores to viridis colours, (N, 3) uint8: low = dark purple, high = bright yellow.

    Viridis is perceptually uniform with monotonically increasing lightness, so a higher score is
    always a brighter colour (also in greyscale and for colour-blind readers).

    Args:
        scores: (N,) float; non-finite entries get the lowest colour.
        vmin, vmax: the score range mapped onto the colormap; default the finite min / max.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    finite = np.isfinite(s)
    if vmin is None:
        vmin = float(s[finite].min()) if finite.any() else 0.0
    if vmax is None:
        vmax = float(s[finite].max()) if finite.any() else 1.0
    span = vmax - vmin if vmax > vmin else 1.0
    t = np.where(finite, (s - vmin) / span, 0.0)
    idx = np.clip(np.round(t * 255), 0, 255).astype(np.int64)
    return _viridis_lut()[idx]


def luminance(colors: np.ndarray) -> np.ndarray:
    """CIE L* lightness of sRGB colours, (N,) float64 in [0, 100] (what "brighter" means to the eye)."""
    c = np.asarray(colors, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(y > 216 / 24389, 116.0 * np.cbrt(y) - 16.0, y * 24389 / 27)


def label_colors(labels: np.ndarray, table: np.ndarray, unlabelled: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Colour per point from class ids, (N, 3) uint8.

    Args:
        labels: (N,) int class indices into ``table``; negative or out-of-range ids are unlabelled.
        table: (C, 3) uint8 class colours (e.g. ``palette(C)``).
        unlabelled: colour of unlabelled points.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    table = np.asarray(table, dtype=np.uint8).reshape(-1, 3)
    ext = np.concatenate([table, np.asarray([unlabelled], dtype=np.uint8)])
    idx = np.where((labels >= 0) & (labels < len(table)), labels, len(table))
    return ext[idx]


def instance_colors(point_instance: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: a distinct colour per instance id (``palette``), grey for -1 (no object)."""
    ids = np.asarray(point_instance).reshape(-1)
    n = int(ids.max()) + 1 if ids.size and ids.max() >= 0 else 0
    return label_colors(ids, palette(n), unlabelled=(90, 90, 90))
