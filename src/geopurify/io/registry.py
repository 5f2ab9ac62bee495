"""The reader registry and :func:`read_scene`, which picks a reader by looking at the path."""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError
from ..registry import Registry
from ..utils.fields import check_field_types
from .scene import Scene

log = logging.getLogger(__name__)


@dataclass
class ReadOptions:
    """Options every reader understands.

    Attributes:
        frame_skip: keep every n-th frame (the paper uses 20 on ScanNet).
        depth_scale: depth units per metre in depth PNGs; None (unset) = the layout's own (1000 = millimetres
            for ScanNet, 7-Scenes and the YAML's default, 5000 for TUM, 4000 for Matterport, the header's
            for ``.sens``). A value given always wins, even one equal to a layout's default.
        max_frames: keep at most this many frames (evenly spaced), None = all.
        fuse_voxel_size: voxel size (m) of the cloud built from depth when a capture has no mesh.
        layout: a reader name, or "auto" to detect.
        labels_tsv: ScanNet's ``scannetv2-labels.combined.tsv`` (for ScanNet200 ids from aggregations).
        reader_options: keyword options of the chosen reader's constructor (e.g. TUM ``camera``).
        before_fusion: called with the scene (frames read, no points yet) before a cloud is fused from
            depth, so cheap checks can refuse a scene before that expensive step.
        level: rotate a cloud fused from depth, with its cameras, so that z is up when the capture's world
            is not (7-Scenes' is y down); up from the cameras refined on horizontal surfaces; a world within
            30 degrees of z up is left as it is. Off: keep the capture's own frame.
    """

    frame_skip: int = 1
    depth_scale: float | None = None
    max_frames: int | None = None
    fuse_voxel_size: float = 0.02
    layout: str = "auto"
    labels_tsv: str | None = None
    reader_options: dict = field(default_factory=dict)
    before_fusion: Callable[[Scene], None] | None = None
    level: bool = True

    def __post_init__(self) -> None:
        check_field_types(self)
        if int(self.frame_skip) != self.frame_skip or self.frame_skip < 1:
            raise ConfigError(f"frame_skip must be a positive integer, got {self.frame_skip!r}")
        if self.depth_scale is not None and not (0 < self.depth_scale < float("inf")):
            raise ConfigError(f"depth_scale must be a positive number or None, got {self.depth_scale!r}")
        if self.max_frames is not None and (int(self.max_frames) != self.max_frames or self.max_frames < 1):
            raise ConfigError(f"max_frames must be None or a positive integer, got {self.max_frames!r}")
        if not (0 < self.fuse_voxel_size < float("inf")):
            raise ConfigError(f"fuse_voxel_size must be a positive number, got {self.fuse_voxel_size!r}")
        if not isinstance(self.reader_options, dict):
            raise ConfigError(f"reader_options must be a dict, got {type(self.reader_options).__name__}")


class Reader(ABC):
    """One data layout. ``detect`` must be cheap (look at names, not contents)."""

    name = "reader"
    #: file suffixes this reader claims (a file of none of any reader's is refused naming them all)
    suffixes: tuple[str, ...] = ()

    @abstractmethod
    def detect(self, path: Path) -> bool: ...

    @abstractmethod
    def read(self, path: Path, options: ReadOptions) -> Scene: ...


READERS: Registry[Reader] = Registry("dataset layout", "geopurify.readers")

# Detection order: specific layouts before generic ones.
_DETECT_ORDER = ["sens", "matterport", "tum", "7scenes", "generic", "pointcept", "scannet", "pointcloud"]


def _build(name: str, options: ReadOptions, check: bool = True) -> Reader:
    """Construct a reader with its ``reader_options`` (unknown keys refused, the registry's one rule,
    when ``check``) and ``labels_tsv`` when its constructor takes it."""
    factory = READERS.get(name)
    if check:
        READERS.check_options(name, options.reader_options)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {k: v for k, v in options.reader_options.items() if k in params}
    if options.labels_tsv and "labels_tsv" in params:
        kwargs.setdefault("labels_tsv", options.labels_tsv)
    return factory(**kwargs)


def read_scene(path: str | Path, options: ReadOptions | None = None) -> Scene:
    """Read a scene from any supported layout.

    A point cloud without usable normals comes back with ``normals`` None; :meth:`Scene.ensure_normals`
    estimates them (every command that needs normals does).

    Raises:
        InputError: the path does not exist or no reader recognises it.
    """
    options = options or ReadOptions()
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if options.layout != "auto":
        return _build(options.layout, options).read(path, options)
    names = [n for n in _DETECT_ORDER if n in READERS] + [n for n in READERS.names() if n not in _DETECT_ORDER]
    for name in names:
        reader = _build(name, options, check=False)  # candidates get the options they take
        if reader.detect(path):
            log.debug("reading %s as %s", path, name)
            READERS.check_options(name, options.reader_options)
            return reader.read(path, options)
    if path.is_file():  # a file no reader claims: say which files are read, not only the layout names
        known = list(dict.fromkeys(x for n in names for x in getattr(READERS.get(n), "suffixes", ())))
        raise InputError(
            f"{path}: geopurify does not read {path.suffix or 'extensionless'!s} files; files read: "
            f"{', '.join(known)} (see the README's Readers)"
        )
    raise InputError(
        f"{path}: no reader recognises this layout (known: {', '.join(READERS.names())}); "
        "see the README's input contract or pass --layout"
    )
