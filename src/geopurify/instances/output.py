"""``instances.json`` and ``instances.ply`` of a segment output folder (written atomically)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..utils.atomic import write_json
from .boxes import Box
from .config import InstanceConfig
from .group import Instance, InstanceSet, find_instances

log = logging.getLogger(__name__)

JSON_FILE = "instances.json"
PLY_FILE = "instances.ply"
FORMAT = "geopurify.instances/1"


def write_instances(out_dir: str | Path, result: InstanceSet, points: np.ndarray,
                    config: InstanceConfig | None = None) -> Path:  # fmt: skip
    """Write ``instances.json`` (every instance with its points and boxes) and ``instances.ply``.

    The PLY holds the points coloured by instance with vertex properties ``instance`` (int, -1 none) and
    ``label`` (class index, -1 none). Returns the JSON path.
    """
    from ..viz.ply import instance_colors, write_ply

    out_dir = Path(out_dir)
    pi = result.point_instance()
    lab = np.full(len(pi), -1, np.int32)
    for inst in result.instances:
        lab[inst.points] = inst.label
    write_ply(out_dir / PLY_FILE, np.asarray(points, np.float32), instance_colors(pi),
              extra={"instance": pi, "label": lab})  # fmt: skip
    doc = {
        "format": FORMAT,
        "names": result.names,
        "num_points": result.num_points,
        "config": dataclasses.asdict(config) if config is not None else None,
        "stats": result.stats,
        "instances": [
            {
                "id": inst.id,
                "label": inst.label,
                "name": inst.name,
                "confidence": round(inst.confidence, 6),
                "num_points": int(len(inst.points)),
                "aabb": inst.aabb.to_dict(),
                "obb": inst.obb.to_dict(),
                "points": inst.points.tolist(),
            }
            for inst in result.instances
        ],
    }
    path = out_dir / JSON_FILE
    write_json(path, doc)
    return path


def read_instances(out_dir_or_file: str | Path) -> InstanceSet:
    """Read ``instances.json`` (a folder holding it, or the file) back into an :class:`InstanceSet`."""
    p = Path(out_dir_or_file)
    path = p / JSON_FILE if p.is_dir() else p
    if not path.is_file():
        raise InputError(f"{p}: no {JSON_FILE}; run `geopurify instances {p}` first")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
        n = int(doc["num_points"])
        insts = []
        for d in doc["instances"]:
            pts = np.asarray(d["points"], np.int64)
            if pts.size and (pts.min() < 0 or pts.max() >= n):
                raise ValueError(f"instance {d['id']} has point indices outside 0..{n - 1}")
            insts.append(Instance(int(d["id"]), int(d["label"]), str(d["name"]), float(d["confidence"]), pts,
                                  Box.from_dict(d["aabb"]), Box.from_dict(d["obb"])))  # fmt: skip
        return InstanceSet(list(doc["names"]), insts, n, doc.get("stats") or {})
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable instances file ({exc})") from None


def _load(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read {what} ({exc})") from None


def instances_from_output(out_dir: str | Path, config: InstanceConfig | None = None) -> InstanceSet:
    """Group the points of a ``segment`` output folder into instances and write the two files.

    Uses ``features.npy`` (purified features) when present, else the labels in ``labels.txt``
    (one-hot features: grouping by class and geometry only).
    """
    from ..encoders import load_text_embeddings

    cfg = config or InstanceConfig()
    out = Path(out_dir)
    if not (out / "points.npy").is_file() or not (out / "names.json").is_file():
        raise InputError(f"{out}: not a segment output (points.npy and names.json expected)")
    points = np.asarray(_load(out / "points.npy", "points"), np.float32)
    try:
        names = json.loads((out / "names.json").read_text())
    except ValueError as exc:
        raise InputError(f"{out / 'names.json'}: unreadable ({exc})") from None
    colors = None
    if (out / "colors.npy").is_file():
        colors = np.asarray(_load(out / "colors.npy", "colours"), np.float32) / 255.0
    if (out / "features.npy").is_file():
        feats = _load(out / "features.npy", "features")
        te = load_text_embeddings(out / "text_embeddings.npz")
        text = te.embeddings
        if list(te.names) != list(names):
            raise InputError(f"{out}: text_embeddings.npz and names.json list different classes")
    else:
        if not (out / "labels.txt").is_file():
            raise InputError(f"{out}: neither features.npy nor labels.txt")
        try:
            labels = np.loadtxt(out / "labels.txt", dtype=np.int64, ndmin=1)
        except ValueError as exc:
            raise InputError(f"{out / 'labels.txt'}: unreadable ({exc})") from None
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise InputError(f"{out / 'labels.txt'}: class indices outside 0..{len(names) - 1}")
        log.info("%s: no features.npy; grouping by labels.txt and geometry", out)
        feats = np.eye(len(names), dtype=np.float32)[labels]
        text = np.eye(len(names), dtype=np.float32)
    if len(feats) != len(points):
        raise InputError(f"{out}: {len(feats)} feature rows for {len(points)} points")
    result = find_instances(points, feats, text, names, cfg, colors=colors)
    write_instances(out, result, points, cfg)
    return result
