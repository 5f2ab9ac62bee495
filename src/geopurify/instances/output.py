"""``instances.json`` and ``instances.ply`` of a segment output folder.

The folder is read and written through :mod:`geopurify.outputs` (the output folder as one type):
:func:`instances_from_output` reads it with ``read_output``, groups, then under the folder's lock
writes both files atomically with an ``OutputWriter``; ``instances.json``'s own format is here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..outputs import (
    INSTANCES_FILE,
    INSTANCES_PLY,
    OutputWriter,
    SegmentOutput,
    clear_instances,
    locked,
    read_output,
)
from .boxes import Box
from .config import InstanceConfig
from .group import Instance, InstanceSet, find_instances

log = logging.getLogger(__name__)

JSON_FILE, PLY_FILE = INSTANCES_FILE, INSTANCES_PLY
FORMAT = "geopurify.instances/1"


def write_instances(out_dir: str | Path, result: InstanceSet, points: np.ndarray,
                    config: InstanceConfig | None = None) -> Path:  # fmt: skip
    """Write ``instances.json`` (every instance with its points and boxes) and ``instances.ply``.

    The PLY holds the points coloured by instance with vertex properties ``instance`` (int, -1 none) and
    ``label`` (class index, -1 none). The files of an earlier run and what was made from them (its scores,
    ``query --objects`` rankings) are removed first (:func:`~geopurify.outputs.clear_instances`) and the
    JSON is written last, so a folder never holds old objects beside new ones. Returns the JSON path.
    """
    from ..viz.ply import instance_colors, write_ply

    w = OutputWriter(Path(out_dir))
    removed = clear_instances(w.out_dir)
    if removed:
        log.info("%s: removed files of an earlier instances run: %s", w.out_dir, ", ".join(removed))
    pi = result.point_instance()
    lab = np.full(len(pi), -1, np.int32)
    for inst in result.instances:
        lab[inst.points] = inst.label
    write_ply(w.path(PLY_FILE), np.asarray(points, np.float32), instance_colors(pi),
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
    w.json(JSON_FILE, doc)
    return w.out_dir / JSON_FILE


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


def instances_from_output(out: str | Path | SegmentOutput, config: InstanceConfig | None = None) -> InstanceSet:
    """Group the points of a complete ``segment`` output folder into instances and write the two files.

    Uses ``features.npy`` (purified features) when present, else the labels in ``labels.txt``
    (one-hot features: grouping by class and geometry only). ``out``: the folder, or what
    :func:`geopurify.outputs.read_output` read from it. The folder's lock is held while the two files
    are written (not while grouping, so readers do not see the folder as busy meanwhile).
    """
    cfg = config or InstanceConfig()
    res = out if isinstance(out, SegmentOutput) else read_output(out)  # refuses an incomplete output
    names = res.names
    if res.features is not None:
        feats, text = res.features, res.text_embeddings().embeddings
    else:
        if res.labels.size and res.labels.min() < 0:
            raise InputError(f"{res.path / 'labels.txt'}: class indices outside 0..{len(names) - 1}")
        log.info("%s: no features.npy; grouping by labels.txt and geometry", res.path)
        feats = np.eye(len(names), dtype=np.float32)[res.labels]
        text = np.eye(len(names), dtype=np.float32)
    result = find_instances(res.points, feats, text, names, cfg, colors=res.colors.astype(np.float32) / 255.0)
    with locked(res.path):
        write_instances(res.path, result, res.points, cfg)
    return result
