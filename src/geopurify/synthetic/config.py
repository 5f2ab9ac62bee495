"""Configuration of the synthetic room generator and the class tables it uses."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import ConfigError
from ..labels import get_label_set

# The 20 ScanNet benchmark classes, in benchmark order, and their NYU40 ids (from geopurify.labels).
_SCANNET20 = get_label_set("scannet20")
SCANNET20_NAMES: tuple[str, ...] = tuple(_SCANNET20.names)
SCANNET20_NYU40: tuple[int, ...] = tuple(int(i) for i in _SCANNET20.ids)

WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
PICTURE, COUNTER, DESK, CURTAIN, FRIDGE, SHOWER_CURTAIN, TOILET, SINK, BATHTUB = 11, 12, 14, 16, 24, 28, 33, 34, 36
OTHERFURNITURE, OTHERPROP, CEILING = 39, 40, 22

# What a VLM plausibly reads an object as instead (NYU40 ids); first entry is the most likely.
CONFUSIONS: dict[int, tuple[int, ...]] = {
    WALL: (DOOR, PICTURE, CURTAIN),
    FLOOR: (OTHERFURNITURE, TABLE),
    CABINET: (OTHERFURNITURE, COUNTER, BOOKSHELF),
    BED: (SOFA, OTHERFURNITURE),
    CHAIR: (SOFA, OTHERFURNITURE),
    SOFA: (CHAIR, BED),
    TABLE: (DESK, COUNTER),
    DOOR: (WALL, CABINET),
    WINDOW: (CURTAIN, PICTURE),
    BOOKSHELF: (CABINET, OTHERFURNITURE),
    PICTURE: (WINDOW, WALL),
    COUNTER: (CABINET, TABLE),
    DESK: (TABLE, CABINET),
    CURTAIN: (WINDOW, SHOWER_CURTAIN),
    FRIDGE: (CABINET, DOOR),
    SHOWER_CURTAIN: (CURTAIN, WALL),
    TOILET: (SINK, BATHTUB),
    SINK: (COUNTER, TOILET),
    BATHTUB: (SINK, FLOOR),
    OTHERFURNITURE: (CABINET, TABLE),
    OTHERPROP: (OTHERFURNITURE, TABLE),
    CEILING: (WALL, OTHERFURNITURE),
}

# Semantic groups for the simulated text tower: members of a group get nearby text embeddings.
TEXT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("table", "desk", "counter"),
    ("cabinet", "otherfurniture", "counter", "bookshelf", "refrigerator"),
    ("chair", "sofa", "bed"),
    ("wall", "door", "window", "picture", "curtain", "shower curtain"),
    ("curtain", "shower curtain", "window"),
    ("toilet", "sink", "bathtub"),
    ("floor",),
)


@dataclass
class SyntheticConfig:
    """Everything that shapes a synthetic scene. All lengths in metres, image sizes as (H, W).

    Geometry and capture:
        seed: RNG seed of the layout, cameras, noise and VLM errors (same seed -> same files).
        target_points: about how many mesh vertices to write (70k default; 1M-3M for benchmarks).
        room_size: (min, max) of the room's side lengths; height is ``room_height``.
        ceiling: also build a ceiling (off by default so top-down pictures see inside).
        furniture_scale: multiplies how many optional items (cabinets, chairs, small objects) appear.
        n_frames: posed RGB-D frames to render; ``frame_id_step`` spaces their ids like ScanNet exports.
        color_hw, depth_hw, feature_hw: colour, depth and simulated-VLM mask resolutions.
        fov_deg: horizontal field of view of both cameras.
        depth_noise: relative std of depth noise; depth_hole_prob: fraction of depth pixels dropped
            (in clumps); max_depth: depth beyond it reads 0 (invalid).
    Simulated VLM (each strength 0 disables the error):
        feature_dim: embedding size D.
        confusion_prob: per object, chance the VLM reads the whole object as a confusable class in
            every view (not fixable by averaging or geometry).
        blob_count: number of world-fixed 3D blobs read as the wrong class from every view, scaled by
            the room's floor area / 20 m^2; blob_radius: (min, max) radius.
        bleed_px: masks of nearer objects spill this many feature pixels over what lies behind them.
        miss_small_prob: per small object, chance it is missed and merged into its support's mask.
        overseg_cell: large surfaces are cut into masks along a world grid of this size (0 = off).
        embed_noise: std (relative to the unit text embedding) of per-mask embedding noise.
        frame_flip_prob: per mask and frame, chance it reads as a confusable class in that view only.
    """

    seed: int = 0
    target_points: int = 70_000
    room_size: tuple[float, float] = (5.0, 7.0)
    room_height: float = 2.6
    ceiling: bool = False
    furniture_scale: float = 1.0
    n_frames: int = 60
    frame_id_step: int = 10
    color_hw: tuple[int, int] = (240, 320)
    depth_hw: tuple[int, int] = (192, 256)
    feature_hw: tuple[int, int] = (120, 160)
    fov_deg: float = 62.0
    depth_noise: float = 0.004
    depth_hole_prob: float = 0.02
    max_depth: float = 8.0
    jpeg_quality: int = 92
    feature_dim: int = 64
    text_seed: int = 1234
    confusion_prob: float = 0.1
    blob_count: int = 12
    blob_radius: tuple[float, float] = (0.15, 0.5)
    bleed_px: int = 3
    miss_small_prob: float = 0.5
    overseg_cell: float = 1.5
    embed_noise: float = 1.0
    frame_flip_prob: float = 0.08

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"SyntheticConfig.{name}: {why} (got {getattr(self, name)!r})")

        if self.target_points < 1000:
            raise bad("target_points", "must be >= 1000")
        lo, hi = self.room_size
        if not (2.5 <= lo <= hi <= 30.0):
            raise bad("room_size", "need 2.5 <= min <= max <= 30")
        if not (2.0 <= self.room_height <= 6.0):
            raise bad("room_height", "must be in [2, 6]")
        if self.n_frames < 0:
            raise bad("n_frames", "must be >= 0")
        for name in ("color_hw", "depth_hw", "feature_hw"):
            h, w = getattr(self, name)
            if h < 8 or w < 8:
                raise bad(name, "each side must be >= 8 pixels")
        if not (20.0 <= self.fov_deg <= 120.0):
            raise bad("fov_deg", "must be in [20, 120]")
        if self.feature_dim < 8:
            raise bad("feature_dim", "must be >= 8")
        for name in ("confusion_prob", "miss_small_prob", "frame_flip_prob", "depth_hole_prob"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                raise bad(name, "must be a probability in [0, 1]")
        for name in ("depth_noise", "embed_noise", "overseg_cell", "furniture_scale"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        if self.blob_count < 0 or self.bleed_px < 0:
            raise bad("blob_count" if self.blob_count < 0 else "bleed_px", "must be >= 0")
        if not (0 < self.blob_radius[0] <= self.blob_radius[1]):
            raise bad("blob_radius", "need 0 < min <= max")

    def without_errors(self) -> SyntheticConfig:
        """A copy whose simulated VLM makes no mistakes (for tests and upper bounds)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(
            confusion_prob=0.0, blob_count=0, bleed_px=0, miss_small_prob=0.0,
            overseg_cell=0.0, embed_noise=0.0, frame_flip_prob=0.0,
        )  # fmt: skip
        return SyntheticConfig(**kw)
