"""Matterport3D regions with their undistorted RGB-D frames.

Path to read: a region mesh ``<house>/region_segmentations/regionX.ply``, or a folder holding
exactly one ``regionX.ply``. The house folder is the nearest ancestor (up to 3 levels) that holds
``undistorted_camera_parameters/<house>.conf`` (directly or one folder down, as the official zips
unpack to ``<house>/<house>/...``)::

    <house>/
      region_segmentations/regionX.ply        faces carry category_id (index into category_mapping.tsv)
      undistorted_camera_parameters/<house>.conf
      undistorted_color_images/<name>_i<c>_<y>.jpg    undistorted_depth_images/<name>_d<c>_<y>.png
      category_mapping.tsv   (or up to 3 folders above, directly or in metadata/, e.g. v1/metadata/)

Vertex labels are the majority ``category_id`` of the labelled faces around each vertex, mapped
to NYU40 ids through ``category_mapping.tsv`` (``label_set = "nyu40"``; the mpcat40 index, when the
table has it, goes to ``scene.meta["mpcat40"]``). Without the table the raw category indices are
kept (``label_set = "matterport_category"``). Depth PNGs are 1/4000 m. Matterport poses use
OpenGL camera axes (y up, looking down -z); they are converted to OpenCV. Cameras are selected as in
the paper: those whose centre lies in the region's bounding box, or failing that the 100 nearest.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from .frames import FrameCandidate, assemble_frames, depth_file_loader, native_scale, select_frames
from .ply import read_ply
from .registry import READERS, Reader, ReadOptions
from .rgbd import OPENGL_TO_OPENCV
from .scene import Frame, Scene

log = logging.getLogger(__name__)

_REGION = re.compile(r"^region\d+\.ply$")
NEAREST_CAMERAS = 100


def find_region_ply(path: Path) -> Path | None:
    if path.is_file():
        return path if _REGION.match(path.name) else None
    if path.is_dir():
        hits = [p for p in path.glob("region*.ply") if _REGION.match(p.name)]
        return hits[0] if len(hits) == 1 else None
    return None


def find_conf(region_ply: Path) -> Path | None:
    """The house's camera file, searched from the region's folder upwards (3 levels).

    Only a camera file of the region's own house counts: its house folder (``<house>/`` of
    ``<house>/undistorted_camera_parameters/*.conf``) is a folder above the region, or is named like one
    (the ``<house>/<house>/`` of the official zips, unpacked in two places). A folder of houses holds
    other houses' files one folder down; those are passed over (warned about), never read as this one's.
    """
    ancestors = list(region_ply.parents)
    names = {a.name for a in ancestors}
    others: list[Path] = []
    for anc in ancestors[:4]:
        for pattern in ("undistorted_camera_parameters/*.conf", "*/undistorted_camera_parameters/*.conf"):
            for hit in sorted(anc.glob(pattern)):
                house = hit.parent.parent
                if house in ancestors or house.name in names:
                    return hit
                if hit not in others:
                    others.append(hit)
    if others:
        log.warning("%s: passing over %d camera file(s) of other houses (e.g. %s); this region's house has no "
                    "undistorted_camera_parameters/", region_ply, len(others), others[0])
    return None


def parse_conf(path: Path) -> tuple[dict[str, str], list[tuple[str, str, np.ndarray, np.ndarray]]]:
    """Matterport ``.conf`` -> (settings, [(depth name, colour name, K (3,3), camera_to_world (4,4))]).

    Each ``scan`` line uses the most recent ``intrinsics_matrix`` line.
    """
    settings: dict[str, str] = {}
    scans: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    K = None
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if parts[0] == "intrinsics_matrix":
                K = np.asarray(parts[1:10], dtype=np.float64).reshape(3, 3)
            elif parts[0] == "scan":
                if K is None:
                    raise InputError(f"{path}:{lineno}: scan line before any intrinsics_matrix line")
                pose = np.asarray(parts[3:19], dtype=np.float64).reshape(4, 4)
                scans.append((parts[1], parts[2], K, pose))
            elif len(parts) == 2:
                settings[parts[0]] = parts[1]
        except ValueError:
            raise InputError(f"{path}:{lineno}: malformed {parts[0]} line") from None
    return settings, scans


def read_category_mapping(path: Path) -> dict[int, tuple[int, int]]:
    """``category_mapping.tsv`` -> {index: (nyu40id, mpcat40index)}; missing values become 0."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if not rows or "index" not in rows[0]:
        raise InputError(f"{path}: not a Matterport category table (no 'index' column)")

    def num(r, key):
        v = (r.get(key) or "").strip()
        return int(float(v)) if v else 0

    return {int(r["index"]): (num(r, "nyu40id"), num(r, "mpcat40index")) for r in rows if r["index"].strip()}


def find_category_mapping(region_ply: Path, house: Path) -> Path | None:
    """``category_mapping.tsv`` for a region: in the house folder, up to 3 folders above it or the region's
    folder, each directly or in its ``metadata/`` folder (where Matterport's repository keeps it, e.g.
    ``v1/metadata/`` beside ``v1/scans/``); None when there is none."""
    for d in [house, *list(house.parents)[:3], region_ply.parent]:
        for cand in (d / "category_mapping.tsv", d / "metadata" / "category_mapping.tsv"):
            if cand.is_file():
                return cand
    return None


def vote_vertex_labels(faces: np.ndarray, face_labels: np.ndarray, num_vertices: int) -> np.ndarray:
    """(V,) int64 majority label of the faces around each vertex, ignoring label <= 0; 0 if none.

    Ties go to the smaller label.

    >>> vote_vertex_labels(np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1]]), np.array([5, 7, 7]), 5).tolist()
    [7, 5, 5, 7, 0]
    """
    vert = faces.reshape(-1).astype(np.int64)
    lab = np.repeat(face_labels.astype(np.int64), 3)
    keep = lab > 0
    vert, lab = vert[keep], lab[keep]
    out = np.zeros(num_vertices, dtype=np.int64)
    if len(vert) == 0:
        return out
    pairs, counts = np.unique(np.stack([vert, lab], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))  # by vertex, then most votes, then label
    pairs = pairs[order]
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:, 0] != pairs[:-1, 0]
    out[pairs[first, 0]] = pairs[first, 1]
    return out


def select_cameras(centres: np.ndarray, lo: np.ndarray, hi: np.ndarray, nearest: int = NEAREST_CAMERAS) -> np.ndarray:
    """Indices of cameras (centres (C,3)) inside the box [lo, hi], else of the ``nearest`` closest to it."""
    inside = np.nonzero(((centres >= lo) & (centres <= hi)).all(axis=1))[0]
    if len(inside):
        return inside
    gap = np.maximum(lo - centres, 0) + np.maximum(centres - hi, 0)
    dist = np.linalg.norm(gap, axis=1)
    return np.sort(np.argsort(dist, kind="stable")[:nearest])


@READERS.register("matterport")
class MatterportReader(Reader):
    """Matterport3D region reader (see the module docstring for the path to give).

    Args:
        nearest_cameras: how many cameras to take when none has its centre inside the region's box.
    """

    name = "matterport"

    def __init__(self, nearest_cameras: int = NEAREST_CAMERAS) -> None:
        self.nearest_cameras = int(nearest_cameras)

    def detect(self, path: Path) -> bool:
        return find_region_ply(path) is not None

    def read(self, path: Path, options: ReadOptions) -> Scene:
        ply_path = find_region_ply(path)
        if ply_path is None:
            raise InputError(f"{path}: expected a Matterport regionX.ply or a folder holding exactly one")
        mesh = read_ply(ply_path)
        if mesh.colors is None:
            raise InputError(f"{ply_path}: vertices have no colour")
        if mesh.faces is None:
            raise InputError(f"{ply_path}: region mesh has no faces")
        house_conf = find_conf(ply_path)
        house = house_conf.parent.parent if house_conf else ply_path.parent.parent
        scene = Scene(
            name=f"{house.name}_{ply_path.stem}",
            points=mesh.points,
            colors=mesh.colors,
            normals=mesh.vertex_normals(),
            faces=mesh.faces,
            root=ply_path.parent,
            meta={"layout": "matterport", "mesh": str(ply_path)},
        )
        if "category_id" in mesh.face_properties:
            self._labels(scene, ply_path, house, mesh.face_properties["category_id"].astype(np.int64))
        if house_conf is None:
            log.warning("%s: no undistorted_camera_parameters/*.conf found above it; no frames", ply_path)
        else:
            scene.frames = self._frames(scene, house_conf, options)
        return scene

    def _labels(self, scene: Scene, ply_path: Path, house: Path, face_cat: np.ndarray) -> None:
        raw = vote_vertex_labels(scene.faces, face_cat, scene.num_points)
        scene.meta["matterport_category_raw"] = raw  # for the Matterport-40/80/160 label sets at eval time
        tsv = find_category_mapping(ply_path, house)
        if tsv is None:
            log.warning("%s: no category_mapping.tsv found (in the house folder, up to 3 folders above it, or a "
                        "metadata/ folder there); keeping raw Matterport category ids", ply_path)
            scene.labels, scene.label_set = raw, "matterport_category"
            return
        table = read_category_mapping(tsv)
        top = max(max(table, default=0), int(raw.max(initial=0))) + 1
        nyu, mp = np.zeros(top, np.int64), np.zeros(top, np.int64)
        for k, (a, b) in table.items():
            if k >= 0:
                nyu[k], mp[k] = a, b
        scene.labels, scene.label_set = nyu[raw], "nyu40"
        scene.meta["mpcat40"] = mp[raw]
        scene.meta["category_mapping"] = str(tsv)

    def _frames(self, scene: Scene, conf: Path, options: ReadOptions) -> list[Frame]:
        settings, scans = parse_conf(conf)
        if not scans:
            log.warning("%s: no scan lines", conf)
            return []
        root = conf.parent.parent
        color_dir = root / settings.get("color_directory", "undistorted_color_images")
        depth_dir = root / settings.get("depth_directory", "undistorted_depth_images")
        poses = np.stack([s[3] @ OPENGL_TO_OPENCV for s in scans])
        finite = np.isfinite(poses).all(axis=(1, 2))
        centres = np.where(finite[:, None], poses[:, :3, 3], np.inf)
        lo, hi = scene.points.min(axis=0), scene.points.max(axis=0)
        chosen = select_cameras(centres, lo, hi, self.nearest_cameras)  # a non-finite pose: bad_pose below
        scale = native_scale(options, 4000.0)
        loader = depth_file_loader(scale)

        def candidate(j: int) -> FrameCandidate:
            depth_name, color_name, K, _ = scans[chosen[j]]
            return FrameCandidate(Path(color_name).stem, poses[chosen[j]], f"{conf} scan {depth_name}",
                                  color=color_dir / color_name, depth=depth_dir / depth_name, K_color=K,
                                  depth_loader=loader)

        frames = assemble_frames(scene, len(chosen), options, candidate)
        scene.meta.update(cameras_in_house=len(scans), cameras_selected=len(select_frames(len(chosen), options)),
                          depth_scale=scale)
        return frames
