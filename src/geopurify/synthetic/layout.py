"""Procedural indoor rooms built from axis-aligned boxes.

A room is a floor, four walls (an optional ceiling) and furniture groups (a desk and its chair, a
counter with its base cabinet and sink...) placed with rejection sampling on a 2D occupancy map.
Each group is built in a local frame (footprint ``[0, w] x [0, d]``, back at ``y = 0``, front
towards ``+y``) and turned by a multiple of 90 degrees, so every box stays axis-aligned; that is
what lets :mod:`.render` ray-cast with a plain slab test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from . import config as C
from .config import SyntheticConfig

log = logging.getLogger(__name__)

# Base materials (linear-ish RGB in [0, 1]); classes share materials so colour alone is ambiguous.
MATERIALS: dict[str, tuple[float, float, float]] = {
    "wood_light": (0.74, 0.58, 0.40),
    "wood_dark": (0.42, 0.29, 0.19),
    "white": (0.90, 0.89, 0.86),
    "beige": (0.82, 0.76, 0.64),
    "grey": (0.56, 0.57, 0.59),
    "dark": (0.22, 0.22, 0.24),
    "blue": (0.30, 0.38, 0.58),
    "red": (0.62, 0.26, 0.23),
    "green": (0.36, 0.52, 0.37),
    "steel": (0.72, 0.74, 0.77),
    "glass": (0.62, 0.74, 0.82),
}
CLASS_MATERIALS: dict[int, tuple[str, ...]] = {
    C.WALL: ("white", "beige", "grey"),
    C.FLOOR: ("wood_light", "wood_dark", "grey", "beige"),
    C.CABINET: ("wood_light", "white", "wood_dark", "grey"),
    C.BED: ("white", "blue", "beige", "red"),
    C.CHAIR: ("wood_dark", "dark", "red", "wood_light", "blue"),
    C.SOFA: ("grey", "blue", "red", "beige", "green"),
    C.TABLE: ("wood_light", "wood_dark", "white"),
    C.DOOR: ("wood_light", "white", "wood_dark"),
    C.WINDOW: ("glass",),
    C.BOOKSHELF: ("wood_dark", "wood_light", "white"),
    C.PICTURE: ("red", "blue", "green", "dark", "beige"),
    C.COUNTER: ("grey", "white", "dark", "beige"),
    C.DESK: ("wood_light", "wood_dark", "white"),
    C.CURTAIN: ("beige", "blue", "red", "green", "white"),
    C.FRIDGE: ("white", "steel"),
    C.SHOWER_CURTAIN: ("white", "blue"),
    C.TOILET: ("white",),
    C.SINK: ("steel", "white"),
    C.BATHTUB: ("white",),
    C.OTHERFURNITURE: ("wood_light", "wood_dark", "grey", "white", "dark"),
    C.OTHERPROP: ("red", "blue", "green", "dark", "white", "steel"),
    C.CEILING: ("white",),
}

# Chance an object takes a material of any class, and that one of its parts differs from the rest.
ANY_MATERIAL_PROB = 0.4
PART_MATERIAL_PROB = 0.25

Box = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass
class Layout:
    """A room as boxes grouped into labelled instances.

    Attributes:
        lo, hi: (B, 3) float64 box corners, metres (z up, floor at z = 0).
        box_instance: (B,) int32 instance of each box.
        box_color: (B, 3) float32 albedo in [0, 1].
        instance_label: (I,) int32 NYU40 id per instance.
        instance_support: (I,) int32 instance it stands on (-1 for none / structure).
        instance_small: (I,) bool small objects (candidates for "missed" VLM errors).
        room: (3,) float64 room size (x, y, height); the inside is [0, x] x [0, y] x [0, height].
    """

    lo: np.ndarray
    hi: np.ndarray
    box_instance: np.ndarray
    box_color: np.ndarray
    instance_label: np.ndarray
    instance_support: np.ndarray
    instance_small: np.ndarray
    room: np.ndarray

    @property
    def num_boxes(self) -> int:
        return int(self.lo.shape[0])

    @property
    def num_instances(self) -> int:
        return int(self.instance_label.shape[0])

    @property
    def box_label(self) -> np.ndarray:
        """(B,) int32 NYU40 id of each box."""
        return self.instance_label[self.box_instance]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_arrays(cls, arrays) -> Layout:
        return cls(**{k: np.asarray(arrays[k]) for k in cls.__dataclass_fields__})


@dataclass
class _Part:
    label: int
    boxes: list[Box]
    material: str | None = None
    small: bool = False
    support: int | None = None  # index of another part in the same group it stands on


@dataclass
class _Occ:
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1
    height: float  # how tall the thing standing there is
    max_h: float = -1.0  # reservations: items up to this height may overlap (-1: nothing may)


@dataclass
class _Builder:
    rng: np.random.Generator
    room: tuple[float, float, float]
    boxes: list[Box] = field(default_factory=list)
    box_instance: list[int] = field(default_factory=list)
    box_color: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    support: list[int] = field(default_factory=list)
    small: list[bool] = field(default_factory=list)
    occ: list[_Occ] = field(default_factory=list)
    wall_spans: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    tops: list[tuple[int, Box]] = field(default_factory=list)  # (instance, top box) for small objects
    failed: list[int] = field(default_factory=list)  # labels of groups that found no room
    mixed_materials: bool = True  # materials shared across classes and per part (off: the legacy rooms)

    # -- instances -------------------------------------------------------------------------------
    def color(self, label: int, material: str | None = None) -> np.ndarray:
        # Often a material any class may have, so that colour alone does not give the class away.
        mixed = self.mixed_materials and self.rng.random() < ANY_MATERIAL_PROB
        pool = tuple(MATERIALS) if mixed else CLASS_MATERIALS[label]
        name = material or str(self.rng.choice(pool))
        base = np.asarray(MATERIALS[name], dtype=np.float32)
        return np.clip(base + self.rng.normal(0.0, 0.04, 3).astype(np.float32), 0.03, 0.97)

    def add(self, label: int, boxes: list[Box], material: str | None = None, support: int = -1,
            small: bool = False) -> int:  # fmt: skip
        inst = len(self.labels)
        self.labels.append(label)
        self.support.append(support)
        self.small.append(small)
        col = self.color(label, material)
        for b in boxes:
            self.boxes.append(b)
            self.box_instance.append(inst)
            # Parts of one object differ slightly (legs a bit darker than a top), like real scans, and
            # some parts are another material altogether (a metal frame, a cushion).
            other = self.mixed_materials and self.rng.random() < PART_MATERIAL_PROB
            part = self.color(label) if other else col
            self.box_color.append(np.clip(part * self.rng.uniform(0.9, 1.05), 0.02, 0.98))
        return inst

    # -- placement -------------------------------------------------------------------------------
    def free(self, rect: tuple[float, float, float, float], height: float, clearance: float) -> bool:
        x0, y0, x1, y1 = rect
        X, Y, _ = self.room
        if x0 < -1e-6 or y0 < -1e-6 or x1 > X + 1e-6 or y1 > Y + 1e-6:
            return False
        for o in self.occ:
            a0, b0, a1, b1 = o.rect
            overlap = x0 < a1 + clearance and a0 < x1 + clearance and y0 < b1 + clearance and b0 < y1 + clearance
            if overlap and (o.max_h < 0 or height > o.max_h):
                return False
        return True

    def wall_free(self, wall: int, a: float, b: float, z0: float, z1: float) -> bool:
        for w, s0, s1, t0, t1 in self.wall_spans:
            if w == wall and a < s1 + 0.1 and s0 < b + 0.1 and z0 < t1 + 0.05 and t0 < z1 + 0.05:
                return False
        return True

    def wall_length(self, wall: int) -> float:
        X, Y, _ = self.room
        return X if wall in (0, 2) else Y

    def place_group(self, parts: list[_Part], wall: int | None, tries: int = 40,
                    clearance: float = 0.12) -> bool:  # fmt: skip
        """Place a group of parts against ``wall`` (0: y=0, 1: x=X, 2: y=Y, 3: x=0) or free-standing."""
        lo = np.min([b[0] for p in parts for b in p.boxes], axis=0)
        hi = np.max([b[1] for p in parts for b in p.boxes], axis=0)
        w, d, h = hi - lo
        X, Y, _ = self.room
        for k, pos in self._candidates(wall, w, d, tries):
            placed = [[_turn(b, lo, hi, k, pos) for b in p.boxes] for p in parts]
            flo = np.min([b[0] for bs in placed for b in bs], axis=0)
            fhi = np.max([b[1] for bs in placed for b in bs], axis=0)
            rect = (flo[0], flo[1], fhi[0], fhi[1])
            if not self.free(rect, float(fhi[2]), clearance):
                continue
            self.occ.append(_Occ(rect, float(fhi[2])))
            ids: list[int] = []
            for p, bs in zip(parts, placed):
                support = ids[p.support] if p.support is not None else -1
                ids.append(self.add(p.label, bs, p.material, support=support, small=p.small))
                if p.label in (C.TABLE, C.DESK, C.COUNTER, C.CABINET, C.OTHERFURNITURE) and not p.small:
                    top = max(bs, key=lambda b: b[1][2])
                    if top[1][2] < 1.3:
                        self.tops.append((ids[-1], top))
            return True
        log.debug("could not place %s", [p.label for p in parts])
        self.failed.extend(p.label for p in parts)
        return False

    def _candidates(self, wall: int | None, w: float, d: float, tries: int):
        """(turn, footprint min corner) proposals: random spots for free-standing groups; for
        wall-backed ones every 5 cm along the preferred wall, then along the others."""
        X, Y, _ = self.room
        if wall is None:
            for _ in range(tries):
                k = int(self.rng.integers(4))
                wr, dr = (w, d) if k % 2 == 0 else (d, w)
                if wr < X - 1.0 and dr < Y - 1.0:
                    yield k, np.array([self.rng.uniform(0.5, X - 0.5 - wr), self.rng.uniform(0.5, Y - 0.5 - dr)])
            return
        others = [x for x in self.rng.permutation(4).tolist() if x != wall]
        for k in [wall] + others:
            L = self.wall_length(k)
            for a in self.rng.permutation(np.arange(0.05, L - 0.05 - w, 0.05)):
                yield k, np.asarray({0: (a, 0.01), 1: (X - 0.01 - d, a), 2: (a, Y - 0.01 - d), 3: (0.01, a)}[k])

    def wall_box(self, wall: int, a: float, b: float, z0: float, z1: float, depth: float) -> Box:
        """A box on the inside of ``wall`` spanning [a, b] along it and ``depth`` into the room."""
        X, Y, _ = self.room
        if wall == 0:
            return (a, 0.0, z0), (b, depth, z1)
        if wall == 1:
            return (X - depth, a, z0), (X, b, z1)
        if wall == 2:
            return (a, Y - depth, z0), (b, Y, z1)
        return (0.0, a, z0), (depth, b, z1)

    def floor_strip(self, wall: int, a: float, b: float, depth: float) -> tuple[float, float, float, float]:
        (x0, y0, _), (x1, y1, _) = self.wall_box(wall, a, b, 0.0, 0.0, depth)
        return x0, y0, x1, y1

    def finish(self) -> Layout:
        lo = np.array([b[0] for b in self.boxes], dtype=np.float64)
        hi = np.array([b[1] for b in self.boxes], dtype=np.float64)
        return Layout(
            lo=lo,
            hi=hi,
            box_instance=np.array(self.box_instance, dtype=np.int32),
            box_color=np.array(self.box_color, dtype=np.float32),
            instance_label=np.array(self.labels, dtype=np.int32),
            instance_support=np.array(self.support, dtype=np.int32),
            instance_small=np.array(self.small, dtype=bool),
            room=np.array(self.room, dtype=np.float64),
        )


def _turn(box: Box, lo: np.ndarray, hi: np.ndarray, k: int, pos: np.ndarray) -> Box:
    """Rotate a local box by k*90 deg about z (front +y turns to face into the room from wall k)
    and move the group's footprint min corner to ``pos``."""
    b0 = np.asarray(box[0], dtype=np.float64) - [lo[0], lo[1], 0.0]
    b1 = np.asarray(box[1], dtype=np.float64) - [lo[0], lo[1], 0.0]
    w, d = hi[0] - lo[0], hi[1] - lo[1]
    corners = np.array([[b0[0], b0[1]], [b1[0], b1[1]]])
    if k == 0:
        xy = corners
    elif k == 1:  # front faces -x
        xy = np.stack([d - corners[:, 1], corners[:, 0]], axis=1)
    elif k == 2:  # front faces -y
        xy = np.stack([w - corners[:, 0], d - corners[:, 1]], axis=1)
    else:  # front faces +x
        xy = np.stack([corners[:, 1], w - corners[:, 0]], axis=1)
    xy = xy + pos
    mn, mx = xy.min(axis=0), xy.max(axis=0)
    return (float(mn[0]), float(mn[1]), float(b0[2])), (float(mx[0]), float(mx[1]), float(b1[2]))


# ---- furniture in local frames (footprint from (0, 0), back at y = 0, front towards +y) ----------


def _legs(x0: float, y0: float, x1: float, y1: float, z: float, s: float = 0.05) -> list[Box]:
    return [
        ((x0, y0, 0.0), (x0 + s, y0 + s, z)),
        ((x1 - s, y0, 0.0), (x1, y0 + s, z)),
        ((x0, y1 - s, 0.0), (x0 + s, y1, z)),
        ((x1 - s, y1 - s, 0.0), (x1, y1, z)),
    ]


def _table(w: float, d: float, h: float, x: float = 0.0, y: float = 0.0) -> list[Box]:
    top = ((x, y, h - 0.04), (x + w, y + d, h))
    return [top] + _legs(x + 0.03, y + 0.03, x + w - 0.03, y + d - 0.03, h - 0.04)


def _chair(x: float = 0.0, y: float = 0.0, facing_back: bool = False, s: float = 0.46) -> list[Box]:
    """A chair with footprint [x, x+s] x [y, y+s]; its back is at low y (or high y if facing_back)."""
    seat = ((x, y, 0.42), (x + s, y + s, 0.47))
    by0, by1 = (y + s - 0.05, y + s) if facing_back else (y, y + 0.05)
    back = ((x, by0, 0.47), (x + s, by1, 0.9))
    return [seat, back] + _legs(x + 0.02, y + 0.02, x + s - 0.02, y + s - 0.02, 0.42, 0.04)


def _bookshelf(w: float, d: float, h: float, shelves: int) -> list[Box]:
    t = 0.025
    boxes = [((0.0, 0.0, 0.0), (w, 0.02, h)), ((0.0, 0.0, 0.0), (t, d, h)), ((w - t, 0.0, 0.0), (w, d, h))]
    for z in np.linspace(0.0, h - t, shelves + 1):
        boxes.append(((t, 0.02, float(z)), (w - t, d, float(z) + t)))
    return boxes


def _bathtub(w: float, d: float, h: float) -> list[Box]:
    t = 0.07
    return [
        ((0.0, 0.0, 0.0), (w, d, 0.08)),
        ((0.0, 0.0, 0.08), (w, t, h)),
        ((0.0, d - t, 0.08), (w, d, h)),
        ((0.0, t, 0.08), (t, d - t, h)),
        ((w - t, t, 0.08), (w, d - t, h)),
    ]


def build_layout(config: SyntheticConfig, rng: np.random.Generator) -> Layout:
    """A random furnished room; same ``rng`` state -> same room."""
    X = float(rng.uniform(*config.room_size))
    Y = float(rng.uniform(*config.room_size))
    H = float(config.room_height)
    bld = _Builder(rng=rng, room=(X, Y, H), mixed_materials=not config.legacy)
    u = rng.uniform
    scale = config.furniture_scale

    def maybe(p: float) -> bool:
        return bool(rng.random() < min(1.0, p * scale))

    def count(lo: int, hi: int) -> int:
        return int(round(rng.integers(lo, hi + 1) * scale))

    # Structure: floor, four walls (10 cm thick, outside the room), optional ceiling.
    bld.add(C.FLOOR, [((0.0, 0.0, -0.05), (X, Y, 0.0))])
    bld.add(C.WALL, [((-0.1, -0.1, 0.0), (X + 0.1, 0.0, H))])
    bld.add(C.WALL, [((X, -0.1, 0.0), (X + 0.1, Y + 0.1, H))])
    bld.add(C.WALL, [((-0.1, Y, 0.0), (X + 0.1, Y + 0.1, H))])
    bld.add(C.WALL, [((-0.1, -0.1, 0.0), (0.0, Y + 0.1, H))])
    if config.ceiling:
        bld.add(C.CEILING, [((0.0, 0.0, H), (X, Y, H + 0.05))])  # not a ScanNet-20 class: ignored

    # Doors and windows first; they reserve wall spans and floor space.
    for _ in range(1 + int(rng.random() < 0.4)):
        for _try in range(20):
            wall = int(rng.integers(4))
            L, w = bld.wall_length(wall), u(0.8, 1.0)
            a = u(0.1, L - 0.1 - w)
            if bld.wall_free(wall, a, a + w, 0.0, 2.1) and bld.free(bld.floor_strip(wall, a, a + w, 0.9), 1, 0.0):
                bld.add(C.DOOR, [bld.wall_box(wall, a, a + w, 0.0, 2.05, 0.03)])
                bld.wall_spans.append((wall, a - 0.05, a + w + 0.05, 0.0, 2.2))
                bld.occ.append(_Occ(bld.floor_strip(wall, a, a + w, 0.9), 0.0))
                break
    for _ in range(rng.integers(1, 4)):
        for _try in range(20):
            wall = int(rng.integers(4))
            L, w = bld.wall_length(wall), u(0.7, 1.6)
            z0, z1 = u(0.8, 1.0), u(1.9, 2.2)
            a = u(0.3, L - 0.3 - w)
            if bld.wall_free(wall, a - 0.3, a + w + 0.3, z0, z1):
                bld.add(C.WINDOW, [bld.wall_box(wall, a, a + w, z0, z1, 0.02)])
                bld.wall_spans.append((wall, a, a + w, z0, z1))
                bld.occ.append(_Occ(bld.floor_strip(wall, a, a + w, 0.5), 0.0, max_h=z0 - 0.05))
                if rng.random() < 0.7:  # curtains on both sides, hanging in front of the wall
                    zc0 = max(0.3, z0 - u(0.2, 0.5))
                    for c0 in (a - 0.3, a + w):
                        cw = u(0.3, 0.4)
                        b0, b1 = (c0 - (cw - 0.3), c0 + 0.3) if c0 < a else (c0, c0 + cw)
                        bld.add(C.CURTAIN, [bld.wall_box(wall, b0, b1, zc0, z1 + 0.1, 0.09)])
                    bld.wall_spans.append((wall, a - 0.4, a + w + 0.4, zc0, z1 + 0.1))
                    bld.occ.append(_Occ(bld.floor_strip(wall, a - 0.4, a + w + 0.4, 0.3), 0.0, max_h=zc0 - 0.05))
                break

    walls = lambda: int(rng.integers(4))  # noqa: E731

    # Wall-backed furniture.
    if maybe(0.8):
        bw, bl = u(1.2, 1.8), u(1.9, 2.1)
        bed = _Part(C.BED, [((0.0, 0.0, 0.0), (bw, bl, u(0.4, 0.55))), ((0.0, 0.0, 0.0), (bw, 0.08, u(0.9, 1.1)))])
        parts = [bed]
        if maybe(0.7):  # a nightstand beside the bed
            parts.append(_Part(C.OTHERFURNITURE, [((bw + 0.05, 0.0, 0.0), (bw + 0.5, 0.42, 0.55))]))
        bld.place_group(parts, walls())
    if maybe(0.8):
        sw, sd = u(1.6, 2.3), u(0.8, 0.95)
        bld.place_group([_Part(C.SOFA, [
            ((0.0, 0.0, 0.0), (sw, sd, 0.42)),
            ((0.0, 0.0, 0.42), (sw, 0.22, 0.85)),
            ((0.0, 0.22, 0.42), (0.2, sd, 0.62)),
            ((sw - 0.2, 0.22, 0.42), (sw, sd, 0.62)),
        ])], walls())  # fmt: skip
    if maybe(0.8):  # kitchen counter: base cabinet, counter top, sink on top
        cw = u(1.4, 2.4)
        sx = u(0.1, cw - 0.65)
        bld.place_group([
            _Part(C.CABINET, [((0.0, 0.0, 0.0), (cw, 0.58, 0.86))]),
            _Part(C.COUNTER, [((0.0, 0.0, 0.86), (cw, 0.64, 0.9))]),
            _Part(C.SINK, [((sx, 0.12, 0.9), (sx + 0.55, 0.52, 0.96))], support=1),
        ], walls())  # fmt: skip
    if maybe(0.6):
        bld.place_group([_Part(C.TOILET, [
            ((0.0, 0.0, 0.0), (0.42, 0.22, 0.8)),
            ((0.03, 0.22, 0.0), (0.39, 0.7, 0.42)),
        ])], walls())  # fmt: skip
    if maybe(0.6):
        tw, td, th = u(1.5, 1.75), u(0.7, 0.8), u(0.5, 0.6)
        a = u(0.2, 0.6)
        bld.place_group([
            _Part(C.BATHTUB, _bathtub(tw, td, th)),
            _Part(C.SHOWER_CURTAIN, [((0.0, td - 0.04, th + 0.1), (tw * a, td - 0.02, 2.0))]),
        ], walls())  # fmt: skip
    if maybe(0.85):  # desk with its chair pushed in front of it
        dw, dd = u(1.0, 1.5), u(0.55, 0.75)
        desk = _table(dw, dd, u(0.72, 0.76))
        if rng.random() < 0.5:  # a drawer block under one side
            desk.append(((dw - 0.42, 0.05, 0.0), (dw - 0.05, dd - 0.05, 0.68)))
        bld.place_group([
            _Part(C.DESK, desk),
            _Part(C.CHAIR, _chair(x=dw / 2 - 0.23, y=dd + 0.12, facing_back=True)),
        ], walls())  # fmt: skip

    for _ in range(count(1, 3)):
        cw, ch = u(0.6, 1.2), float(rng.choice([u(0.7, 0.9), u(1.6, 2.0)]))
        bld.place_group([_Part(C.CABINET, [((0.0, 0.0, 0.0), (cw, u(0.4, 0.6), ch))])], walls())
    for _ in range(count(1, 2)):
        bw, bh = u(0.7, 1.2), u(1.4, 2.1)
        bld.place_group([_Part(C.BOOKSHELF, _bookshelf(bw, u(0.28, 0.38), bh, int(rng.integers(3, 6))))], walls())
    if maybe(0.7):
        bld.place_group([_Part(C.FRIDGE, [((0.0, 0.0, 0.0), (u(0.6, 0.8), u(0.6, 0.75), u(1.6, 1.9)))])], walls())

    # Free-standing: a table with chairs around it, other furniture, bins.
    if maybe(0.9):
        tw, td = u(1.0, 1.8), u(0.7, 1.0)
        parts = [_Part(C.TABLE, _table(tw, td, u(0.72, 0.76), x=0.6, y=0.6))]
        mat = str(rng.choice(CLASS_MATERIALS[C.CHAIR]))
        spots = [(0.6 + tw / 2 - 0.23, 0.0, False), (0.6 + tw / 2 - 0.23, 0.6 + td + 0.14, True)]
        if tw > 1.3:
            spots = [(0.6 + tw * f - 0.23, y, b) for f in (0.28, 0.72) for (_, y, b) in spots]
        for x, y, back in spots[: max(1, count(2, len(spots)))]:
            parts.append(_Part(C.CHAIR, _chair(x=x, y=y, facing_back=back), material=mat))
        bld.place_group(parts, None, tries=300, clearance=0.25)
    for _ in range(count(1, 2)):
        ow, od, oh = u(0.4, 0.9), u(0.4, 0.7), u(0.35, 0.8)
        bld.place_group([_Part(C.OTHERFURNITURE, [((0.0, 0.0, 0.0), (ow, od, oh))])], None, tries=100, clearance=0.3)
    for _ in range(count(0, 2)):
        s = u(0.22, 0.35)
        bld.place_group([_Part(C.OTHERFURNITURE, [((0.0, 0.0, 0.0), (s, s, u(0.3, 0.5)))], small=True)], None)

    # Small objects on tables, desks, counters, low cabinets (NYU40 "otherprop": ignored by ScanNet-20).
    tops = list(bld.tops)
    for _ in range(count(3, 8) if tops else 0):
        inst, ((x0, y0, _), (x1, y1, z1)) = tops[int(rng.integers(len(tops)))]
        sx, sy, sz = u(0.08, 0.25), u(0.08, 0.25), u(0.05, 0.3)
        if x1 - x0 < sx + 0.1 or y1 - y0 < sy + 0.1:
            continue
        px, py = u(x0 + 0.05, x1 - 0.05 - sx), u(y0 + 0.05, y1 - 0.05 - sy)
        box = ((px, py, z1), (px + sx, py + sy, z1 + sz))
        if not _overlaps_any(box, bld.boxes):
            bld.add(C.OTHERPROP, [box], support=inst, small=True)

    # Pictures where no tall furniture stands in front.
    for _ in range(count(1, 4)):
        for _try in range(60):
            wall = int(rng.integers(4))
            L, w, hgt = bld.wall_length(wall), u(0.4, 1.1), u(0.35, 0.8)
            z0 = u(1.2, 2.2 - hgt)
            a = u(0.1, L - 0.1 - w)
            strip = bld.floor_strip(wall, a, a + w, 0.7)
            if bld.wall_free(wall, a, a + w, z0, z0 + hgt) and bld.free(strip, z0 - 0.05, 0.0):
                bld.add(C.PICTURE, [bld.wall_box(wall, a, a + w, z0, z0 + hgt, 0.025)])
                bld.wall_spans.append((wall, a, a + w, z0, z0 + hgt))
                break
    layout = bld.finish()
    log.debug("layout %.2f x %.2f m: %d instances, %d boxes", X, Y, layout.num_instances, layout.num_boxes)
    return layout


def _overlaps_any(box: Box, boxes: list[Box]) -> bool:
    lo, hi = np.asarray(box[0]), np.asarray(box[1])
    blo, bhi = np.asarray([b[0] for b in boxes]), np.asarray([b[1] for b in boxes])
    return bool(np.any(np.all((lo < bhi - 1e-6) & (blo + 1e-6 < hi), axis=1)))
