"""Configuration of the synthetic room generator and the class tables it uses."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import ConfigError
from ..labels import get_label_set
from ..utils.fields import check_field_types

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
    Simulated VLM and realism:
        legacy: False (default): materials shared across classes and differing per part, a mesh stitched
            where objects touch, and masks and mistakes made in image space by
            :mod:`geopurify.synthetic.masks` from ``vlm`` (:class:`VLMSimConfig`), as for real scans.
            True: the original rooms (one albedo per object, one mesh piece per box face) and the
            world-blob simulator of :mod:`geopurify.synthetic.vlm`, shaped by the fields below (each
            strength 0 disables an error).
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
    legacy: bool = False
    vlm: VLMSimConfig = field(default_factory=lambda: VLMSimConfig())

    def __post_init__(self) -> None:
        check_field_types(self)
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
        self.vlm.validate()

    def without_errors(self) -> SyntheticConfig:
        """A copy whose simulated VLM makes no mistakes (for tests and upper bounds)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(
            confusion_prob=0.0, blob_count=0, bleed_px=0, miss_small_prob=0.0,
            overseg_cell=0.0, embed_noise=0.0, frame_flip_prob=0.0, vlm=self.vlm.without_errors(),
        )  # fmt: skip
        return SyntheticConfig(**kw)


@dataclass
class VLMSimConfig:
    """The image-space simulated VLM (:mod:`geopurify.synthetic.masks`); each strength 0 disables an error.

    Masks:
        superpixel_px: superpixel spacing in pixels at a 120-row feature image (scaled with the height).
        superpixel_colour: how far (in spacings) colour moves superpixel borders.
        near_bias: per metre of depth difference, how much more a nearer instance counts in a superpixel.
        bleed_px: masks of clearly nearer objects spill this many pixels over what lies behind them.
        merge_prob: per pair of touching masks and view, chance they come out as one mask.
        small_fraction: masks smaller than this fraction of the image are "small";
        miss_small_prob: mean chance per view that a small one is missed (merged into its neighbour).
    Reading:
        confusion_prob: per object (structure: ``structure_confusion_prob``), chance the model is
            persistently wrong about it, reading a similar class in ``confusion_rate`` (min, max) of views.
        flip_prob: per mask and view, chance of a one-view misreading.
    Embeddings (``signal * text[class] + mix * text[runner-up] + gap * common + noise``, normalised):
        signal, mix, gap, noise: weights; noise is the norm of an isotropic Gaussian vector.
    """

    superpixel_px: float = 7.0
    superpixel_colour: float = 0.6
    near_bias: float = 3.0
    bleed_px: int = 2
    merge_prob: float = 0.05
    small_fraction: float = 0.006
    miss_small_prob: float = 0.4
    confusion_prob: float = 0.15
    structure_confusion_prob: float = 0.03
    confusion_rate: tuple[float, float] = (0.5, 1.0)
    flip_prob: float = 0.08
    signal: float = 1.0
    mix: float = 0.35
    gap: float = 1.2
    noise: float = 0.8

    def __post_init__(self) -> None:
        check_field_types(self)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"VLMSimConfig.{name}: {why} (got {getattr(self, name)!r})")

        if not self.superpixel_px >= 1.0:
            raise bad("superpixel_px", "must be >= 1")
        for name in ("merge_prob", "miss_small_prob", "confusion_prob", "structure_confusion_prob", "flip_prob",
                     "small_fraction"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                raise bad(name, "must be in [0, 1]")
        lo, hi = self.confusion_rate
        if not (0.0 <= lo <= hi <= 1.0):
            raise bad("confusion_rate", "need 0 <= min <= max <= 1")
        for name in ("superpixel_colour", "near_bias", "mix", "gap", "noise"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        if self.bleed_px < 0:
            raise bad("bleed_px", "must be >= 0")
        if not self.signal > 0:
            raise bad("signal", "must be > 0")

    def without_errors(self) -> VLMSimConfig:
        """A copy that reads every mask right (superpixel borders and the modality gap remain)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(merge_prob=0.0, miss_small_prob=0.0, confusion_prob=0.0, structure_confusion_prob=0.0,
                  flip_prob=0.0, mix=0.0, noise=0.0, bleed_px=0)  # fmt: skip
        return VLMSimConfig(**kw)


@dataclass
class ScanRenderConfig:
    """``geopurify synth --from-scan``: posed RGB-D views of a labelled scan, plus simulated VLM masks.

    Capture (lengths in metres, sizes (H, W)):
        seed: RNG seed of the camera path, sensor noise and VLM errors (same seed -> same files).
        n_frames: views along the path (a hand-held scan: 40-100).
        frame_id_step: spacing of the frame ids (ScanNet exports keep every 20th frame).
        color_hw, depth_hw, feature_hw: colour, depth and VLM mask resolutions; fov_deg: horizontal FOV.
        eye_height: camera height above the floor; height_jitter: its std along the path.
        pitch_deg: mean downward tilt; pose_jitter_m, pose_jitter_deg: hand shake per view.
        clearance: minimum horizontal distance from the camera to scan points at eye level.
        splat_scale: splat radius in units of the local point spacing (point clouds).
        depth_noise: scale of the Kinect-like axial noise ``0.0012 + 0.0019 (z - 0.4)^2`` m.
        depth_hole_prob: fraction of depth pixels dropped in clumps; edge_dropout: chance a pixel at a
            depth discontinuity reads 0; max_depth: range limit (0 beyond).
        crop: optional (x0, y0, x1, y1) world box; only the points inside are rendered and written.
        feature_dim, text_seed: simulated embedding size and the text tower's seed.
        vlm: the simulated VLM's errors.
    """

    seed: int = 0
    n_frames: int = 80
    frame_id_step: int = 20
    color_hw: tuple[int, int] = (240, 320)
    depth_hw: tuple[int, int] = (192, 256)
    feature_hw: tuple[int, int] = (120, 160)
    fov_deg: float = 60.0
    eye_height: float = 1.5
    height_jitter: float = 0.08
    pitch_deg: float = 25.0
    pose_jitter_m: float = 0.01
    pose_jitter_deg: float = 1.0
    clearance: float = 0.45
    splat_scale: float = 1.0
    depth_noise: float = 1.0
    depth_hole_prob: float = 0.02
    edge_dropout: float = 0.5
    max_depth: float = 6.0
    crop: tuple[float, float, float, float] | None = None
    jpeg_quality: int = 92
    feature_dim: int = 64
    text_seed: int = 1234
    vlm: VLMSimConfig = field(default_factory=VLMSimConfig)

    def __post_init__(self) -> None:
        check_field_types(self)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"ScanRenderConfig.{name}: {why} (got {getattr(self, name)!r})")

        if not (1 <= self.n_frames <= 5000):
            raise bad("n_frames", "must be in [1, 5000]")
        for name in ("color_hw", "depth_hw", "feature_hw"):
            h, w = getattr(self, name)
            if h < 8 or w < 8:
                raise bad(name, "each side must be >= 8 pixels")
        if not (20.0 <= self.fov_deg <= 120.0):
            raise bad("fov_deg", "must be in [20, 120]")
        if not (0.3 <= self.eye_height <= 3.0):
            raise bad("eye_height", "must be in [0.3, 3]")
        for name in ("height_jitter", "pose_jitter_m", "pose_jitter_deg", "clearance", "depth_noise"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        if not self.splat_scale > 0:
            raise bad("splat_scale", "must be > 0")
        for name in ("depth_hole_prob", "edge_dropout"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                raise bad(name, "must be a probability in [0, 1]")
        if not self.max_depth > 0.5:
            raise bad("max_depth", "must be > 0.5")
        if self.crop is not None and not (len(self.crop) == 4 and self.crop[0] < self.crop[2]
                                          and self.crop[1] < self.crop[3]):  # fmt: skip
            raise bad("crop", "need (x0, y0, x1, y1) with x0 < x1 and y0 < y1")
        if self.feature_dim < 8:
            raise bad("feature_dim", "must be >= 8")
        self.vlm.validate()


@dataclass
class SynthConfig:
    """``geopurify synth``: procedural rooms, or the views of one labelled scan (``from_scan``).

    Attributes:
        n: number of rooms (one folder each, seeds seed, seed + 1, ...).
        seed: seed of the first room.
        points: target points per room (default: SyntheticConfig's target_points).
        frames: frames per room (default: SyntheticConfig's / ScanRenderConfig's n_frames).
        from_scan: render posed RGB-D views and simulated VLM masks of this labelled scan instead (one scene).
    """

    n: int = 1
    seed: int = 0
    points: int | None = None
    frames: int | None = None
    from_scan: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("n", "points", "frames"):
            v = getattr(self, name)
            if v is not None and (int(v) != v or v < 1):
                raise ConfigError(f"synth: --{name} must be >= 1, got {v}")
        if int(self.seed) != self.seed or self.seed < 0:  # numpy's generators take no negative seed
            raise ConfigError(f"synth: --seed must be an integer >= 0, got {self.seed}")
        if self.from_scan is not None and (self.n != 1 or self.points is not None):
            raise ConfigError("synth --from-scan writes one scene from the scan's own points: drop --n and --points")
        if self.from_scan is not None:
            self.from_scan = str(self.from_scan)

    def room(self, i: int) -> SyntheticConfig:
        """The procedural config of the ``i``-th room."""
        over = {"target_points": self.points} if self.points is not None else {}
        over.update({"n_frames": self.frames} if self.frames is not None else {})
        return SyntheticConfig(seed=self.seed + i, **over)

    def scan(self) -> ScanRenderConfig:
        """The render config of ``from_scan``."""
        return ScanRenderConfig(seed=self.seed, **({"n_frames": self.frames} if self.frames is not None else {}))
