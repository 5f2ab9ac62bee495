"""PLY reading with validation (plyfile), shared by the mesh and point-cloud readers, and writing.

The writer is plain numpy: one structured array per element written after the header, binary
little-endian, so a 1M-point cloud is written in well under a second and reads back with ``plyfile``,
MeshLab, CloudCompare and Open3D.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..utils.atomic import atomic_open

log = logging.getLogger(__name__)


@dataclass
class PlyData:
    """Vertices and optional faces of a PLY.

    points (N,3) float32 (float64 when read so); colors (N,3) float32 in [0,1] or None; normals (N,3)
    float32 or None; faces (F,3) int64 or None; properties: every other vertex property by name, (N,) arrays;
    face_properties: every other face property by name (e.g. Matterport's ``category_id``), (F,) arrays.
    """

    points: np.ndarray
    colors: np.ndarray | None
    normals: np.ndarray | None
    faces: np.ndarray | None
    properties: dict[str, np.ndarray]
    face_properties: dict[str, np.ndarray] = field(default_factory=dict)
    path: str = "PLY"  # the file read, for messages

    def vertex_normals(self) -> np.ndarray:
        """(N, 3) float32 unit normals: the file's (scaled to unit length) when finite and non-zero, else
        from faces, else estimated."""
        n = usable_normals(self.normals, self.path)
        if n is not None:
            return n
        if self.faces is not None and len(self.faces):
            from ..geometry import mesh_normals

            return mesh_normals(self.points, self.faces)
        from ..geometry import estimate_normals  # scipy: loaded when needed

        return estimate_normals(self.points)


def usable_normals(normals: np.ndarray | None, source: str | os.PathLike) -> np.ndarray | None:
    """A file's (N, 3) normals as (N, 3) float32 unit rows, or None when there are none or any row is zero
    or not finite: the reader then computes every normal (from faces or points), and says so once, since
    the file's normals are not used."""
    if normals is None:
        return None
    n = np.asarray(normals)
    # any length but zero is a direction (area-weighted normals of small triangles are far below 1), so
    # only zero, non-finite, or too short or long to scale in float64 is refused
    with np.errstate(over="ignore", invalid="ignore"):
        length = np.linalg.norm(n.astype(np.float64), axis=1)
    bad = ~(np.isfinite(n).all(axis=1) & np.isfinite(length) & (length > 1e-300))
    if bad.any():
        log.warning("%s: %d of %d normals are zero or not finite; the file's normals are not used (they are "
                    "computed from the faces or points instead)", source, int(bad.sum()), len(n))
        return None
    return unit_normals(n)


def unit_normals(normals: np.ndarray) -> np.ndarray:
    """(N, 3) normals -> (N, 3) float32 of unit length. Rows already unit (within 1%) are kept as they
    are, so a file's float32 normals read unchanged; others (a tool that writes unnormalised normals) are
    divided by their length (in float64, so a very short row still comes out unit); zero rows stay zero."""
    src = np.asarray(normals)
    n = src.astype(np.float32)
    length = np.linalg.norm(src.astype(np.float64), axis=1)
    off = np.abs(length - 1) > 1e-2
    if off.any():
        n[off] = (src[off].astype(np.float64) / np.maximum(length[off], 1e-300)[:, None]).astype(np.float32)
    return n


def colors01(raw: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """(N, 3+) colours -> (N, 3) float32 in [0, 1]: 8-bit (integers or floats up to 255), 16-bit (values
    past 255: ``ushort`` PLY properties, LAS) or already 0-1 floats. Raises InputError (naming ``path``)
    for another shape or NaN/infinite values, which would otherwise reach every output's colours."""
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[1] < 3:
        raise InputError(f"{path}: colours must be (N, 3), got {raw.shape}")
    c = raw[:, :3].astype(np.float32)
    if not np.isfinite(c).all():
        bad = int((~np.isfinite(c).all(axis=1)).sum())
        raise InputError(f"{path}: {bad} points have NaN or infinite colours")
    if np.issubdtype(raw.dtype, np.integer) or c.max(initial=0) > 1.0:
        c = c / (65535.0 if c.max(initial=0) > 255 else 255.0)
    return c.clip(0, 1)


def find_mesh(folder: Path) -> Path | None:
    """A scene folder's mesh: ``<name>_vh_clean_2.ply``, else ``<name>.ply``, else its only non-label PLY."""
    name = folder.name
    for cand in (folder / f"{name}_vh_clean_2.ply", folder / f"{name}.ply"):
        if cand.is_file():
            return cand
    plys = [p for p in folder.glob("*.ply") if ".labels." not in p.name and "segs" not in p.name]
    return plys[0] if len(plys) == 1 else None


def triangulate(col: np.ndarray, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """A PLY face list -> ((T, 3) int64 triangles, (T,) int64 index of each triangle's face or None).

    ``col`` is (F, 3) for a triangle mesh, (F, k) or an (F,) object array of index lists for polygons
    (quads from Blender or MeshLab, mixed faces), which are fanned into ``k - 2`` triangles each
    (v0, vi, vi+1); then the face index is returned so per-face properties follow their triangles.
    Raises InputError for a face of fewer than 3 vertices.
    """
    if col.dtype != object:
        lens = np.full(len(col), col.shape[1] if col.ndim == 2 else 0, dtype=np.int64)
        flat = np.asarray(col, dtype=np.int64).reshape(-1)
    else:
        lens = np.fromiter((len(f) for f in col), dtype=np.int64, count=len(col))
        flat = np.concatenate([np.asarray(f, dtype=np.int64) for f in col]) if len(col) else np.zeros(0, np.int64)
    if len(lens) and lens.min() < 3:
        raise InputError(f"{path}: {int((lens < 3).sum())} faces have fewer than 3 vertices")
    if (lens == 3).all():
        return flat.reshape(-1, 3), None
    ntri = lens - 2
    of_face = np.repeat(np.arange(len(lens)), ntri)
    local = np.arange(int(ntri.sum())) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    base = (np.cumsum(lens) - lens)[of_face]
    tris = np.stack([flat[base], flat[base + 1 + local], flat[base + 2 + local]], axis=1)
    log.info("%s: %d polygon faces fanned into %d triangles", path, int((lens > 3).sum()), len(tris))
    return tris, of_face


def read_ply(path: str | Path, require_points: bool = True, dtype: type = np.float32) -> PlyData:
    """Read and validate a PLY file. Raises InputError (one line, naming the file) on any problem.

    ``dtype`` is the dtype of ``points``: float64 keeps a file's double coordinates exact (a georeferenced
    cloud, recentred by the point-cloud reader before it becomes float32)."""
    from plyfile import PlyData as _Ply

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: PLY file not found")
    try:
        try:
            # triangle meshes: fixed-length face lists read as one numpy array (~1000x faster than lists)
            ply = _Ply.read(str(path), known_list_len={"face": {"vertex_indices": 3, "vertex_index": 3}})
        except Exception:
            ply = _Ply.read(str(path))
        if "vertex" not in ply:
            raise InputError(f"{path}: PLY has no vertex element")
        v = ply["vertex"].data
        names = v.dtype.names or ()
        if not all(c in names for c in ("x", "y", "z")):
            raise InputError(f"{path}: PLY vertices lack x/y/z")
        points = np.stack([np.asarray(v[c], dtype=dtype) for c in ("x", "y", "z")], axis=1)
        colors = None
        for trip in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
            if all(c in names for c in trip):
                colors = colors01(np.stack([np.asarray(v[c]) for c in trip], axis=1), path)
                break
        normals = None
        if all(c in names for c in ("nx", "ny", "nz")):
            normals = np.stack([np.asarray(v[c], dtype=np.float32) for c in ("nx", "ny", "nz")], axis=1)
        used = {"x", "y", "z", "red", "green", "blue", "r", "g", "b", "nx", "ny", "nz", "alpha"}
        props = {n: np.asarray(v[n]) for n in names if n not in used}
        faces = None
        face_props: dict[str, np.ndarray] = {}
        if "face" in ply and len(ply["face"].data) > 0:
            fdata = ply["face"].data
            key = "vertex_indices" if "vertex_indices" in fdata.dtype.names else fdata.dtype.names[0]
            face_props = {n: np.asarray(fdata[n]) for n in fdata.dtype.names if n != key}
            faces, of_face = triangulate(fdata[key], path)
            if of_face is not None:  # polygons split into triangles: each keeps its polygon's properties
                face_props = {n: a[of_face] for n, a in face_props.items()}
    except InputError:
        raise
    except Exception as exc:  # plyfile raises many types on truncated/garbage files
        raise InputError(f"{path}: cannot parse PLY ({type(exc).__name__}: {str(exc)[:120]})") from None
    if require_points and len(points) == 0:
        raise InputError(f"{path}: point cloud is empty")
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points).all(axis=1)).sum())
        raise InputError(f"{path}: {bad} vertices have NaN or infinite coordinates")
    if faces is not None and len(faces) and (faces.min() < 0 or faces.max() >= len(points)):
        raise InputError(f"{path}: face indices out of range (vertex count {len(points)})")
    return PlyData(points, colors, normals, faces, props, face_props, str(path))


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
