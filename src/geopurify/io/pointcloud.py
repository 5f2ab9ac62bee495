"""Bare point clouds without frames: PLY, PCD (ascii/binary), LAS/LAZ, NPY and NPZ.

Colour is required (the student network takes RGB). Per-point 2D features and teacher features
may come with the cloud, since there are no frames to lift from:

* NPZ keys: ``coord``/``points``/``xyz`` (N,3), ``color``/``colors``/``rgb`` (N,3) in 0-255 or
  0-1, optional ``normal``/``normals`` (N,3), ``features_2d``/``point_features`` (N,D),
  ``teacher`` (N,T), ``labels`` (N,) with ``label_set`` (a string).
* NPY: (N, 6+) = xyz, rgb [, normal xyz].
* Sibling files next to any cloud: ``<stem>.features_2d.npy`` or ``features_2d.npy``, and
  ``<stem>.teacher.npy`` or ``teacher.npy``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError, load_reason, missing_dependency
from ..geometry import mesh_normals
from .ply import colors01 as _colors01
from .ply import read_ply, unit_normals, usable_normals
from .registry import READERS, Reader, ReadOptions
from .scene import Scene

log = logging.getLogger(__name__)

SUFFIXES = (".ply", ".pcd", ".las", ".laz", ".npy", ".npz")
_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4",
              ("U", 8): "<u8", ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8"}


def read_pcd(path: Path) -> dict[str, np.ndarray]:
    """Parse a PCD v0.7 file (DATA ascii or binary) -> {field: (N,) or (N, COUNT) array}.

    Raises InputError for binary_compressed, malformed headers or truncated data.
    """
    raw = path.read_bytes()
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise InputError(f"{path}: PCD header has no DATA line")
        line = raw[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            break
    try:
        fields = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        types = [t.upper() for t in header["TYPE"]]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
        n = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(
            header.get("HEIGHT", ["1"])[0]
        )
        mode = header["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"{path}: malformed PCD header ({exc})") from None
    if not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise InputError(f"{path}: PCD header FIELDS/SIZE/TYPE/COUNT lengths differ")
    try:
        dtype = np.dtype([(f"{f}_{i}", _PCD_TYPES[(t, s)], (c,)) for i, (f, s, t, c) in
                          enumerate(zip(fields, sizes, types, counts))])
    except KeyError:
        raise InputError(f"{path}: unsupported PCD field type/size in TYPE {types} SIZE {sizes}") from None
    if n == 0:
        raise InputError(f"{path}: point cloud is empty (PCD header says 0 points)")
    if mode == "ascii":
        try:
            table = np.loadtxt(raw[pos:].decode("ascii").splitlines(), dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise InputError(f"{path}: bad ascii PCD data ({exc})") from None
        if table.shape[0] != n or table.shape[1] != sum(counts):
            raise InputError(f"{path}: PCD data is {table.shape}, header says {n} points x {sum(counts)} values")
        out, col = {}, 0
        for f, t, s, c in zip(fields, types, sizes, counts):
            block = table[:, col : col + c]
            col += c
            if f == "rgb" or f == "rgba":  # packed colour written as a float or integer
                block = _ascii_packed(block, t, s)
            out[f] = block[:, 0] if c == 1 else block
        return out
    if mode == "binary":
        need = n * dtype.itemsize
        if len(raw) - pos < need:
            raise InputError(f"{path}: binary PCD is truncated ({len(raw) - pos} of {need} data bytes)")
        rec = np.frombuffer(raw, dtype=dtype, count=n, offset=pos)
        out = {}
        for i, (f, c) in enumerate(zip(fields, counts)):
            a = rec[f"{f}_{i}"]
            if f in ("rgb", "rgba"):
                a = a.view(np.uint32) if a.dtype.itemsize == 4 else a.astype(np.uint32)
            out[f] = a[:, 0] if c == 1 else a
        return out
    raise InputError(f"{path}: PCD DATA {mode!r} is not supported (use ascii or binary)")


def _ascii_packed(block: np.ndarray, t: str, s: int) -> np.ndarray:
    """(N, c) float64 values of an ascii PCD's packed ``rgb``/``rgba`` field -> (N, c) uint32 0xAARRGGBB.

    A ``TYPE F`` field holds the float whose bits are the colour (Open3D prints it, e.g. ``1.0e-38``),
    except that PCL writes it as the uint32 itself (``4286611584``: its ASCII writer does so because
    opaque colours are NaN as floats). Bit patterns print as tiny or NaN floats, integers as whole numbers
    of at least 1, so whole numbers are taken as the integers PCL wrote.
    """
    finite = block[np.isfinite(block)]
    if t != "F" or (finite.size and (finite == np.round(finite)).all() and np.abs(finite).max() >= 1):
        return block.astype(np.uint32)
    return block.astype(_PCD_TYPES[(t, s)]).view(np.uint32)


def _pcd_cloud(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    d = read_pcd(path)
    if not all(k in d for k in "xyz"):
        raise InputError(f"{path}: PCD has no x/y/z fields")
    pts = np.stack([d["x"], d["y"], d["z"]], axis=1).astype(np.float64)  # doubles recentred before float32
    colors = None
    if "rgb" in d or "rgba" in d:
        packed = np.asarray(d.get("rgb", d.get("rgba")), dtype=np.uint32)
        colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.float32) / 255
    elif all(k in d for k in "rgb"):
        colors = _colors01(np.stack([d["r"], d["g"], d["b"]], axis=1), path)
    normals = None
    if all(k in d for k in ("normal_x", "normal_y", "normal_z")):
        normals = np.stack([d["normal_x"], d["normal_y"], d["normal_z"]], axis=1).astype(np.float32)
    return pts, colors, normals


def _las_cloud(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    try:
        import laspy
    except ImportError:
        raise missing_dependency("laspy", "las", "reading LAS/LAZ point clouds") from None
    try:
        las = laspy.read(str(path))
    except Exception as exc:
        msg = str(exc)
        if path.suffix.lower() == ".laz" and ("backend" in msg.lower() or "laz" in msg.lower()):
            raise missing_dependency("lazrs", "las", "reading LAZ point clouds") from None
        raise InputError(f"{path}: cannot read LAS/LAZ ({type(exc).__name__}: {msg[:120]})") from None
    pts = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1)
    # big georeferenced coordinates lose precision in float32: recentre, recorded in scene.meta
    colors = None
    dims = set(las.point_format.dimension_names)
    if {"red", "green", "blue"} <= dims:
        colors = _colors01(np.stack([las.red, las.green, las.blue], axis=1), path)
    return pts, colors, None


def _npy_cloud(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot load .npy ({load_reason(exc)})") from None
    if a.ndim != 2 or a.shape[1] < 3:
        raise InputError(f"{path}: expected an (N, 3) or (N, 6+) array, got {a.shape}")
    colors = _colors01(a[:, 3:6], path) if a.shape[1] >= 6 else None
    normals = a[:, 6:9].astype(np.float32) if a.shape[1] >= 9 else None
    return a[:, :3].astype(np.float64), colors, normals


def _first(z, keys: tuple[str, ...]):
    return next((z[k] for k in keys if k in z), None)


def _check_rows(a: np.ndarray | None, n: int, path: Path, what: str) -> np.ndarray | None:
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] != n:
        raise InputError(f"{path}: {what} has shape {a.shape}, expected ({n}, D)")
    if not np.isfinite(a).all():
        raise InputError(f"{path}: {what} contains NaN or infinite values")
    return a.astype(np.float32)


def _sibling(path: Path, kind: str) -> np.ndarray | None:
    for cand in (path.parent / f"{path.stem}.{kind}.npy", path.parent / f"{kind}.npy"):
        if cand.is_file():
            try:
                return np.load(cand, allow_pickle=False)
            except Exception as exc:
                raise InputError(f"{cand}: cannot load ({load_reason(exc)})") from None
    return None


@READERS.register("pointcloud")
class PointCloudReader(Reader):
    """A single point-cloud file (see the module docstring for formats and optional arrays)."""

    name = "pointcloud"
    suffixes = SUFFIXES

    def detect(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in SUFFIXES

    def read(self, path: Path, options: ReadOptions) -> Scene:
        if not path.is_file():
            raise InputError(f"{path}: point-cloud file not found")
        suffix = path.suffix.lower()
        faces = labels = label_set = feats = teacher = None
        if suffix == ".ply":
            ply = read_ply(path, dtype=np.float64)  # double coordinates recentred below before float32
            pts, colors, normals, faces = ply.points, ply.colors, ply.normals, ply.faces
            if "label" in ply.properties:
                labels = ply.properties["label"].astype(np.int64)
        elif suffix == ".pcd":
            pts, colors, normals = _pcd_cloud(path)
        elif suffix in (".las", ".laz"):
            pts, colors, normals = _las_cloud(path)
        elif suffix == ".npy":
            pts, colors, normals = _npy_cloud(path)
        elif suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    z = dict(z)
            except Exception as exc:
                raise InputError(f"{path}: cannot load .npz ({load_reason(exc)})") from None
            pts = _first(z, ("coord", "points", "xyz"))
            if pts is None:
                raise InputError(f"{path}: no coordinates (keys coord/points/xyz); has {sorted(z)}")
            pts = np.asarray(pts)
            if pts.ndim != 2 or pts.shape[1] != 3:
                raise InputError(f"{path}: coordinates have shape {pts.shape}, expected (N, 3)")
            c = _first(z, ("color", "colors", "rgb"))
            colors = _colors01(c, path) if c is not None else None
            normals = _first(z, ("normal", "normals"))
            feats = _first(z, ("features_2d", "point_features"))
            teacher = z.get("teacher")
            if "labels" in z:
                labels = np.asarray(z["labels"]).astype(np.int64)
                label_set = str(z["label_set"]) if "label_set" in z else None
        else:
            raise InputError(f"{path}: unsupported point-cloud format {suffix!r} (known: {', '.join(SUFFIXES)})")
        pts = np.asarray(pts)
        n = len(pts)
        if n == 0:
            raise InputError(f"{path}: point cloud is empty")
        if not np.isfinite(pts).all():
            bad = int((~np.isfinite(pts).all(axis=1)).sum())
            raise InputError(f"{path}: {bad} points have NaN or infinite coordinates")
        if colors is None:
            raise InputError(f"{path}: point cloud has no colour (geopurify needs RGB per point)")
        if len(colors) != n:
            raise InputError(f"{path}: {len(colors)} colours for {n} points")
        offset = np.zeros(3)
        if np.abs(pts).max() > 1e5:  # georeferenced (UTM) coordinates: recentre before float32
            offset = pts.min(axis=0)
            log.info("%s: recentring by %s to keep float32 precision", path, offset)
        points = (pts - offset).astype(np.float32)
        normals = usable_normals(_check_rows(normals, n, path, "normals"), path)
        if normals is None and faces is not None and len(faces):
            normals = unit_normals(mesh_normals(points, faces))
        # a cloud without usable normals keeps None: estimated by whoever needs them (load_scene for
        # segment/train), so eval and render --gt, which read only the labels, skip the kNN
        feats = _check_rows(feats if feats is not None else _sibling(path, "features_2d"), n, path, "2D features")
        teacher = _check_rows(teacher if teacher is not None else _sibling(path, "teacher"), n, path, "teacher")
        if labels is not None and len(labels) != n:
            raise InputError(f"{path}: {len(labels)} labels for {n} points")
        scene = Scene(
            name=path.stem,
            points=points,
            colors=colors.astype(np.float32),
            normals=None if normals is None else normals.astype(np.float32),
            faces=faces,
            labels=labels,
            label_set=label_set,
            root=path,
            point_features=feats,
            teacher_features=teacher,
            meta={"layout": "pointcloud", "format": suffix.lstrip(".")},
        )
        if offset.any():
            scene.meta["coordinate_offset"] = offset.tolist()
        return scene
