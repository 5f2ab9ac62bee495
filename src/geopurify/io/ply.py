"""PLY reading with validation (plyfile), shared by the mesh and point-cloud readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass
class PlyData:
    """Vertices and optional faces of a PLY.

    points (N,3) float32; colors (N,3) float32 in [0,1] or None; normals (N,3) float32 or None;
    faces (F,3) int64 or None; properties: every other vertex property by name, (N,) arrays;
    face_properties: every other face property by name (e.g. Matterport's ``category_id``), (F,) arrays.
    """

    points: np.ndarray
    colors: np.ndarray | None
    normals: np.ndarray | None
    faces: np.ndarray | None
    properties: dict[str, np.ndarray]
    face_properties: dict[str, np.ndarray] = field(default_factory=dict)

    def vertex_normals(self) -> np.ndarray:
        """(N, 3) float32 normals: the file's when finite and non-zero, else from faces, else estimated."""
        n = self.normals
        if n is not None and np.isfinite(n).all() and (np.linalg.norm(n, axis=1) > 0.5).all():
            return n
        if self.faces is not None and len(self.faces):
            from ..geometry import mesh_normals

            return mesh_normals(self.points, self.faces)
        from ..geometry import estimate_normals  # scipy: loaded when needed

        return estimate_normals(self.points)


def find_mesh(folder: Path) -> Path | None:
    """A scene folder's mesh: ``<name>_vh_clean_2.ply``, else ``<name>.ply``, else its only non-label PLY."""
    name = folder.name
    for cand in (folder / f"{name}_vh_clean_2.ply", folder / f"{name}.ply"):
        if cand.is_file():
            return cand
    plys = [p for p in folder.glob("*.ply") if ".labels." not in p.name and "segs" not in p.name]
    return plys[0] if len(plys) == 1 else None


def read_ply(path: str | Path, require_points: bool = True) -> PlyData:
    """Read and validate a PLY file. Raises InputError (one line, naming the file) on any problem."""
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
        points = np.stack([np.asarray(v[c], dtype=np.float32) for c in ("x", "y", "z")], axis=1)
        colors = None
        for trip in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
            if all(c in names for c in trip):
                raw = np.stack([np.asarray(v[c]) for c in trip], axis=1)
                scale = 255.0 if np.issubdtype(raw.dtype, np.integer) or raw.max(initial=0) > 1.0 else 1.0
                colors = (raw.astype(np.float32) / scale).clip(0, 1)
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
            col = fdata[key]
            try:
                faces = (col if col.dtype != object else np.stack(col)).astype(np.int64)
            except ValueError as exc:
                raise InputError(f"{path}: faces are not all triangles") from exc
            if faces.ndim != 2 or faces.shape[1] != 3:
                raise InputError(f"{path}: faces are not triangles")
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
    return PlyData(points, colors, normals, faces, props, face_props)
