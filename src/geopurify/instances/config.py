"""Options of the instance stage, written once here; the CLI and ``instances.json`` derive from them."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..utils.fields import check_field_types

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
        split_width: metres; a grouped component is cut where, seen from above, it is only a bridge
            narrower than about twice this between two object-sized bodies (see
            :mod:`geopurify.instances.split`); 0 = no cuts (``features`` only).
        split_min_area: square metres of floor-plane footprint each body must keep after the erosion.
        split_balance: the smallest body must keep at least this share of the largest's footprint
            (repeated objects of one kind are cut apart; a large and a small side stay one object).
        min_points: smallest instance, in points (ScanNet's evaluation ignores regions under 100).
        temperature: softmax temperature over the class cosines; an instance's confidence is the
            mean probability of its class over its voxels, times the size term below.
        size_prior: square metres; the confidence is multiplied by ``A / (A + size_prior)``, ``A`` the
            instance's surface (voxels x voxel area): a fragment, whose class is as sure as its whole
            object's, ranks below the whole (AP ranks by confidence). 0 = class probability alone.
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
    feature_weight: float = 0.1
    merge_cosine: float = 0.9
    split_width: float = 0.1
    split_min_area: float = 0.05
    split_balance: float = 0.5
    min_points: int = 100
    temperature: float = 0.05
    size_prior: float = 0.25
    stuff: list[str] = field(default_factory=lambda: ["wall", "floor", "ceiling"])
    stuff_planes: list[str] = field(default_factory=lambda: ["floor"])
    plane_band: float = 0.05

    def __post_init__(self) -> None:
        check_field_types(self)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad option."""
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"instances: unknown grouping {self.grouping!r}; choose one of {', '.join(GROUPINGS)}")
        for name in ("voxel_size", "max_edge", "temperature", "plane_band"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"instances: {name} must be a positive number, got {v!r}")
        for name in ("fh_c", "color_weight", "feature_weight", "size_prior", "split_width", "split_min_area",
                     "split_balance"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"instances: {name} must be >= 0, got {v!r}")
        for name in ("neighbours", "min_superpoint", "min_points"):
            v = getattr(self, name)
            if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1):
                raise ConfigError(f"instances: {name} must be a positive integer, got {v!r}")
        if self.split_balance > 1:
            raise ConfigError(f"instances: split_balance must be in [0, 1], got {self.split_balance!r}")
        if not (isinstance(self.merge_cosine, int | float) and -1.0 <= self.merge_cosine <= 1.0):
            raise ConfigError(f"instances: merge_cosine must be in [-1, 1], got {self.merge_cosine!r}")
        if not isinstance(self.stuff, list | tuple) or not all(isinstance(s, str) for s in self.stuff):
            raise ConfigError(f"instances: stuff must be a list of class names, got {self.stuff!r}")
        if not isinstance(self.stuff_planes, list | tuple) or any(p not in PLANES for p in self.stuff_planes):
            raise ConfigError(
                f"instances: stuff_planes must be a list of {', '.join(PLANES)}, got {self.stuff_planes!r}"
            )
