"""ScanNet's export layout: a mesh plus color/, depth/, pose/, intrinsic/ and optional features_2d/.

::

    scene0000_00/
      scene0000_00_vh_clean_2.ply          mesh or cloud with vertex colours (the points to label)
      scene0000_00_vh_clean_2.labels.ply   optional GT, NYU40 ids in vertex property ``label``
      color/<id>.jpg|png   depth/<id>.png (uint16 mm)   pose/<id>.txt (4x4 camera-to-world)
      intrinsic/intrinsic_color.txt  intrinsic/intrinsic_depth.txt   (4x4 or 3x3)
      features_2d/<id>.npz  text_embeddings.npz   (precomputed 2D VLM output)

Without a mesh (color/, depth/, pose/ and intrinsic/ only) the cloud to label is fused from depth,
as for the other RGB-D layouts. Frame ids (``<id>``) are the pose files' stems.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError
from .frames import FrameCandidate, assemble_frames, depth_file_loader, native_scale, natural_key
from .images import intrinsics_3x3, read_matrix
from .ply import find_mesh, read_ply
from .registry import READERS, Reader, ReadOptions
from .rgbd import geometry_for
from .scene import Frame, Scene

log = logging.getLogger(__name__)


def find_labels(folder: Path) -> Path | None:
    hits = sorted(folder.glob("*_vh_clean_2.labels.ply")) or sorted(folder.glob("*.labels.ply"))
    return hits[0] if hits else None


def read_gt_labels(path: Path, num_points: int) -> np.ndarray:
    """(N,) int64 raw label ids from a ``*.labels.ply`` (vertex property ``label``)."""
    gt = read_ply(path)
    if "label" not in gt.properties:
        raise InputError(f"{path}: labels PLY has no vertex property 'label'")
    labels = gt.properties["label"].astype(np.int64)
    if len(labels) != num_points:
        raise InputError(f"{path}: {len(labels)} labels for a mesh of {num_points} vertices")
    return labels


def read_gt_instances(path: Path, num_points: int) -> np.ndarray | None:
    """(N,) int64 GT object instance ids from a ``*.labels.ply`` (vertex property ``instance``,
    negative = none, kept as -1), or None when it has no such property."""
    gt = read_ply(path)
    if "instance" not in gt.properties:
        return None
    ids = gt.properties["instance"].astype(np.int64)
    if len(ids) != num_points:
        raise InputError(f"{path}: {len(ids)} instance ids for a mesh of {num_points} vertices")
    return np.where(ids < 0, -1, ids)


@READERS.register("scannet")
class ScanNetExportReader(Reader):
    name = "scannet"
    feature_ids = "the pose files' stems: pose/<id>.txt -> features_2d/<id>.npz"

    @staticmethod
    def _has_frames(path: Path) -> bool:
        return all((path / d).is_dir() for d in ("color", "depth", "pose")) and (
            path / "intrinsic" / "intrinsic_color.txt"
        ).is_file()

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (find_mesh(path) is not None or self._has_frames(path))

    def read(self, path: Path, options: ReadOptions) -> Scene:
        if not path.is_dir():
            raise InputError(f"{path}: expected a scene folder in ScanNet export layout")
        mesh_path = find_mesh(path)
        if mesh_path is None:
            if not self._has_frames(path):
                raise InputError(
                    f"{path}: no mesh ({path.name}_vh_clean_2.ply or {path.name}.ply) and no frames to fuse a "
                    "cloud from (color/, depth/, pose/, intrinsic/intrinsic_color.txt)"
                )
            scene = Scene(name=path.name, points=np.zeros((0, 3), np.float32), colors=np.zeros((0, 3), np.float32),
                          root=path)
            scene.frames = self._frames(path, scene, options)
            geometry_for(scene, None, options, z_up=True)
            scene.meta.update(layout="scannet", depth_scale=native_scale(options, 1000.0))
            return scene
        ply = read_ply(mesh_path)
        if ply.colors is None:
            raise InputError(f"{mesh_path}: vertices have no colour (red/green/blue properties)")
        scene = Scene(
            name=path.name,
            points=ply.points,
            colors=ply.colors,
            normals=ply.vertex_normals(),
            faces=ply.faces,
            root=path,
        )
        labels_path = find_labels(path)
        if labels_path is not None:
            scene.labels = read_gt_labels(labels_path, scene.num_points)
            scene.label_set = "nyu40"
            inst = read_gt_instances(labels_path, scene.num_points)
            if inst is not None:
                scene.meta["instance"] = inst  # GT instances for instance AP
        scene.frames = self._frames(path, scene, options)
        scene.meta.update(mesh=str(mesh_path), layout="scannet", depth_scale=native_scale(options, 1000.0))
        return scene

    def _frames(self, path: Path, scene: Scene, options: ReadOptions) -> list[Frame]:
        color_dir, depth_dir, pose_dir = path / "color", path / "depth", path / "pose"
        if not pose_dir.is_dir():
            return []
        try:
            K_color = intrinsics_3x3(read_matrix(path / "intrinsic" / "intrinsic_color.txt"))
            K_depth_file = path / "intrinsic" / "intrinsic_depth.txt"
            K_depth = intrinsics_3x3(read_matrix(K_depth_file)) if K_depth_file.is_file() else K_color
        except (OSError, ValueError) as exc:
            raise InputError(f"{path / 'intrinsic'}: cannot read intrinsics ({exc})") from None
        ids = sorted((p.stem for p in pose_dir.glob("*.txt")), key=natural_key)
        depth_loader = depth_file_loader(native_scale(options, 1000.0))

        def candidate(i: int) -> FrameCandidate:
            fid = ids[i]
            color = next((color_dir / f"{fid}{ext}" for ext in (".jpg", ".png", ".jpeg")
                          if (color_dir / f"{fid}{ext}").is_file()), color_dir / f"{fid}.jpg")
            return FrameCandidate(fid, pose_dir / f"{fid}.txt", color=color, depth=depth_dir / f"{fid}.png",
                                  K_color=K_color, K_depth=K_depth, depth_loader=depth_loader)

        return assemble_frames(scene, len(ids), options, candidate)
