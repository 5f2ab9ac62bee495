"""Open-vocabulary object instances: superpoints grouped where features and geometry agree.

>>> from geopurify.instances import InstanceConfig, find_instances  # doctest: +SKIP
>>> result = find_instances(points, features, text, names, InstanceConfig())  # doctest: +SKIP

Only the config is imported eagerly, so the CLI can build its options without numpy/scipy.
"""

from __future__ import annotations

import importlib

from .config import GROUPINGS, InstanceConfig

_LAZY = {
    "Box": "boxes", "axis_aligned_box": "boxes", "oriented_box": "boxes",
    "Instance": "group", "InstanceSet": "group", "find_instances": "group", "stuff_mask": "group",
    "voxel_graph": "group",
    "JSON_FILE": "output", "PLY_FILE": "output", "instances_from_output": "output",
    "read_instances": "output", "write_instances": "output",
    "ObjectMatch": "query", "instance_features": "query", "rank_objects": "query",
    "write_object_ranking": "query",
}  # fmt: skip


def __getattr__(name: str):
    if name == "instance_colors":  # the colouring rule is viz's; kept here for callers of instances
        from ..viz.ply import instance_colors

        return instance_colors
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GROUPINGS", "InstanceConfig", "instance_colors", *_LAZY]
