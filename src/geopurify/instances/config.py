"""Options of the instance stage, written once here; the CLI and ``instances.json`` derive from them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError

#: Grouping rules: ``features`` (superpoints cut and merged where purified features and geometry agree)
#: and ``geometry`` (the baseline: connected components of geometric superpoints, classified afterwards).
GROUPINGS = ("features", "geometry")
#: Room planes that :attr:`InstanceConfig.stuff_planes` can name.
PLANES = ("floor", "wall")


@dataclass
class InstanceConfig:
    """How points are grouped into object proposals (see :func:`geopurify.instances.find_instances`).

    Attributes:
        grouping: ``"features"`` or ``"geometry"`` (see :data:`GROUPINGS`).
        voxel_size: metres; grouping works on voxels of this size (points inherit their voxel's instance).
        neighbours: graph neighbours per voxel when the scene has no mesh faces.
        max_edge: longest graph edge, in units of the larger of the voxel size and the scan's median point
            spacing: gaps wider than this separate objects.
        fh_c: Felzenszwalb threshold constant of the superpoints (larger gives bigger superpoints).
        min_superpoint: smallest superpoint, in voxels.
        color_weight: weight of the Lab colour distance (per 100 units) in the superpoint edge weights.
        feature_weight: weight of the feature distance ``1 - cos`` in the edge weights (``features`` only).
        merge_cosine: adjacent superpoints of one class merge when their mean features have at least
            this cosine (``features`` only).
        min_points: smallest instance, in points (ScanNet's evaluation ignores regions under 100).
        temperature: softmax temperature over the class cosines; an instance's confidence is the
            mean probability of its class over its voxels.
        stuff: class names that are never objects (matched after prompt normalisation).
        stuff_planes: room planes found from geometry alone (no labels, no features) whose voxels are
            stuff before grouping, whatever their features say: ``floor`` and/or ``wall`` (see
            :mod:`geopurify.instances.planes`); empty: only the features decide. ``wall`` is off by
            default: windows, doors and pictures lie in the wall's plane and lose points to it.
        plane_band: metres; a voxel within this distance of such a plane (with its normal along the
            plane's) is on it.
    """

    grouping: str = "features"
    voxel_size: float = 0.03
    neighbours: int = 8
    max_edge: float = 2.0
    fh_c: float = 0.05
    min_superpoint: int = 10
    color_weight: float = 0.5
    feature_weight: float = 1.0
    merge_cosine: float = 0.9
    min_points: int = 100
    temperature: float = 0.05
    stuff: list[str] = field(default_factory=lambda: ["wall", "floor", "ceiling"])
    stuff_planes: list[str] = field(default_factory=lambda: ["floor"])
    plane_band: float = 0.05

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad option."""
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"instances: unknown grouping {self.grouping!r}; choose one of {', '.join(GROUPINGS)}")
        for name in ("voxel_size", "max_edge", "temperature", "plane_band"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"instances: {name} must be a positive number, got {v!r}")
        for name in ("fh_c", "color_weight", "feature_weight"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"instances: {name} must be >= 0, got {v!r}")
        for name in ("neighbours", "min_superpoint", "min_points"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ConfigError(f"instances: {name} must be a positive integer, got {v!r}")
        if not (isinstance(self.merge_cosine, int | float) and -1.0 <= self.merge_cosine <= 1.0):
            raise ConfigError(f"instances: merge_cosine must be in [-1, 1], got {self.merge_cosine!r}")
        if isinstance(self.stuff, str) or not all(isinstance(s, str) for s in self.stuff):
            raise ConfigError(f"instances: stuff must be a list of class names, got {self.stuff!r}")
        if isinstance(self.stuff_planes, str) or any(p not in PLANES for p in self.stuff_planes):
            raise ConfigError(
                f"instances: stuff_planes must be a list of {', '.join(PLANES)}, got {self.stuff_planes!r}"
            )
