"""Pointcept's preprocessed scene folders (ScanNet / ScanNet200 / S3DIS exports)::

    scene0000_00/
      coord.npy (N,3) float   color.npy (N,3) 0-255   [normal.npy (N,3)]
      [segment20.npy | segment200.npy | segment.npy]  (N,) int class indices, -1 = ignore

Labels are already class *indices*: ``segment20`` -> ``label_set = "scannet20"``, ``segment200`` ->
``"scannet200"``. When both exist the reader's ``label_set`` argument picks one (default
``scannet20``); the other is kept in ``scene.meta["labels_<set>"]`` as an (N,) int64 array.
A bare ``segment.npy`` is kept with ``label_set = "pointcept"``. Optional ``features_2d.npy`` /
``teacher.npy`` (N, D) give per-point features, as for point clouds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, load_reason
from .ply import usable_normals
from .registry import READERS, Reader, ReadOptions
from .scene import Scene

_SEGMENTS = {"scannet20": "segment20.npy", "scannet200": "segment200.npy"}


def _load(path: Path, n: int | None, cols: int | None, what: str) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot load {what} ({load_reason(exc)})") from None
    if n is not None and a.shape[0] != n:
        raise InputError(f"{path}: {a.shape[0]} rows of {what}, expected {n} (one per point)")
    if cols is not None and (a.ndim != 2 or a.shape[1] != cols):
        raise InputError(f"{path}: {what} has shape {a.shape}, expected (N, {cols})")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise InputError(f"{path}: {what} contains NaN or infinite values")
    return a


@READERS.register("pointcept")
class PointceptReader(Reader):
    """Args: label_set: which segmentation to expose as ``scene.labels`` when several exist."""

    name = "pointcept"

    def __init__(self, label_set: str = "scannet20") -> None:
        if label_set not in _SEGMENTS:
            raise ConfigError(f"pointcept label_set must be one of {sorted(_SEGMENTS)}, got {label_set!r}")
        self.label_set = label_set

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / "coord.npy").is_file()

    def read(self, path: Path, options: ReadOptions) -> Scene:
        if not self.detect(path):
            raise InputError(f"{path}: not a Pointcept scene folder (no coord.npy)")
        coord = _load(path / "coord.npy", None, 3, "coordinates")
        n = len(coord)
        if n == 0:
            raise InputError(f"{path / 'coord.npy'}: point cloud is empty")
        if not (path / "color.npy").is_file():
            raise InputError(f"{path}: color.npy missing (geopurify needs RGB per point)")
        color = _load(path / "color.npy", n, 3, "colours").astype(np.float32)
        color = (color / 255.0 if color.max(initial=0) > 1.0 else color).clip(0, 1)
        normals = None
        if (path / "normal.npy").is_file():
            normals = usable_normals(_load(path / "normal.npy", n, 3, "normals"), path / "normal.npy")
        # without usable file normals: None, estimated by whoever needs them (load_scene for segment/train),
        # so eval and render --gt, which read only the labels, skip the kNN (3.2 of 4.0 s on scene0011_00)
        scene = Scene(
            name=path.name,
            points=coord.astype(np.float32),
            colors=color,
            normals=normals,
            root=path,
            meta={"layout": "pointcept"},
        )
        found = {}
        for name, fname in _SEGMENTS.items():
            if (path / fname).is_file():
                seg = _load(path / fname, n, None, "labels").reshape(n).astype(np.int64)
                found[name] = np.where(seg < 0, -1, seg)
        if found:
            chosen = self.label_set if self.label_set in found else next(iter(found))
            scene.labels, scene.label_set = found.pop(chosen), chosen
            for other, seg in found.items():
                scene.meta[f"labels_{other}"] = seg
        elif (path / "segment.npy").is_file():
            seg = _load(path / "segment.npy", n, None, "labels").reshape(n).astype(np.int64)
            scene.labels, scene.label_set = np.where(seg < 0, -1, seg), "pointcept"
        if (path / "instance.npy").is_file():  # GT object instances (-1 = none), for instance AP
            ins = _load(path / "instance.npy", n, None, "instance ids").reshape(n).astype(np.int64)
            scene.meta["instance"] = np.where(ins < 0, -1, ins)
        for attr, fname in (("point_features", "features_2d.npy"), ("teacher_features", "teacher.npy")):
            if (path / fname).is_file():
                a = _load(path / fname, n, None, fname)
                if a.ndim != 2:
                    raise InputError(f"{path / fname}: expected (N, D), got {a.shape}")
                setattr(scene, attr, a.astype(np.float32))
        return scene
