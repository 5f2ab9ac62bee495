"""Run configurations: one dataclass per command, built from the stages' own configs.

Every default is written once, in the dataclass of the stage that uses it (:class:`ReadOptions` in
io, :class:`LiftConfig` in lifting, :class:`PoolConfig` in pooling, :class:`TrainConfig` in distill);
each validates itself in ``__post_init__``, so a bad value is refused before any work. The CLI's
options are generated from these fields (help from the ``Attributes:`` docstrings), and the resolved
config written to ``run.json`` loads back with :func:`from_dict` / :meth:`SegmentConfig.load`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .distill.config import TrainConfig
from .errors import ConfigError, InputError
from .geometry import VOXEL_SIZE
from .io.registry import ReadOptions
from .lifting.config import LiftConfig
from .pooling.config import PoolConfig
from .utils.fields import check_field_types

C = TypeVar("C")

#: the old name of the read section; the fields are :class:`ReadOptions`'s
ReadConfig = ReadOptions


@dataclass
class LiftOptions(LiftConfig):
    """How 2D features reach the points: :class:`LiftConfig`'s fusion options plus their sources.

    Attributes:
        encoder: 2D encoder (auto: precomputed when features_2d/ exists, else the scene's per-point features).
        encoder_options: keyword options of the encoder (KEY=VALUE), e.g. prompt_ensemble=1.
        text: text-embedding .npz (names, embeddings) of the classes; default <scene>/text_embeddings.npz.
        classes: class names to encode with the encoder's text tower.
    """

    encoder: str = "auto"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.classes is not None:
            if not isinstance(self.classes, str):
                self.classes = list(self.classes)
            if isinstance(self.classes, str) or not all(isinstance(c, str) for c in self.classes):
                raise ConfigError(f"--classes: expected a list of class names, got {self.classes!r}")
            if not self.classes:
                raise ConfigError("--classes: give at least one class name")
            bad = [c for c in self.classes if not str(c).strip()]
            if bad:
                raise ConfigError("--classes: empty class name")
            seen: set[str] = set()
            dup = sorted({c for c in self.classes if c.strip().lower() in seen or seen.add(c.strip().lower())})
            if dup:
                raise ConfigError(f"--classes: duplicate class names: {', '.join(dup)}")
            if self.encoder == "precomputed":
                raise ConfigError(
                    "--classes needs an encoder with a text tower (e.g. --encoder clip --weights PATH); "
                    "precomputed features come with --text FILE.npz or the scene's text_embeddings.npz"
                )


def check_device(name: str) -> None:
    """Refuse a device this torch build cannot use (cheap; torch is imported only for non-auto)."""
    if name == "auto":
        return
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name}: this torch build ({torch.__version__}) sees no CUDA GPU; use --device auto or cpu"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")


def check_memory_limit(text: str | None) -> None:
    from .utils.memory import parse_size

    if text is None:
        return
    try:
        if parse_size(text) <= 0:
            raise ValueError(text)
    except (ValueError, OverflowError):
        raise ConfigError(f"--memory-limit {text!r}: expected a size such as 4G, 512M or 1000000") from None


def check_voxel_size(voxel_size: float) -> None:
    """Refuse a voxel edge that is not a finite number of metres > 0 (inf would make one voxel of any scene)."""
    if not 0 < voxel_size < math.inf:
        raise ConfigError(f"voxel_size must be a finite number of metres > 0, got {voxel_size}")


@dataclass
class SegmentConfig:
    """``geopurify segment``: defaults follow the paper (2 cm voxels, K=96, sharpen 20, T=18).

    Attributes:
        student: trained student (folder or .safetensors); needed unless purify is off.
        purify: purify the lifted features with the student's affinities (off: fusion only).
        voxel_size: voxel edge (m) of the student and the pooling.
        save_features: write features.npy (off: pool only the C class logits, which gives the same labels).
        device: auto (CUDA when present), cpu, cuda or cuda:N.
        overwrite: redo outputs that are already complete (batch mode).
        memory_limit: refuse scenes estimated above this size (e.g. 4G); default what the OS reports available.
    """

    student: str | None = None
    purify: bool = True
    voxel_size: float = VOXEL_SIZE
    save_features: bool = True
    device: str = "auto"
    overwrite: bool = False
    memory_limit: str | None = None
    read: ReadOptions = field(default_factory=ReadOptions)
    lift: LiftOptions = field(default_factory=LiftOptions)
    pool: PoolConfig = field(default_factory=PoolConfig)

    def __post_init__(self) -> None:
        check_field_types(self)
        _sections_from_dicts(self)
        if self.purify and not self.student:
            raise ConfigError("purification needs a trained student: pass --student PATH, or --no-purify")
        if not self.purify and self.student:
            raise ConfigError("--student and --no-purify exclude each other")
        check_voxel_size(self.voxel_size)
        check_device(self.device)
        check_memory_limit(self.memory_limit)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SegmentConfig:
        """The config of a ``run.json`` (or of a JSON file holding just the config)."""
        return from_dict(cls, load_config_dict(path, "segment"))


@dataclass
class InspectConfig:
    """``geopurify inspect``: what ``segment`` would meet in a scene, read and checked without lifting.

    Attributes:
        voxel_size: voxel size (m) for the voxel count.
        encoder: the 2D encoder segment would use (auto: the feature files).
        k: neighbours per voxel of the pooling, for the memory estimate.
    """

    voxel_size: float = VOXEL_SIZE
    encoder: str = LiftOptions.encoder
    k: int = PoolConfig.k
    read: ReadOptions = field(default_factory=ReadOptions)

    def __post_init__(self) -> None:
        check_field_types(self)
        _sections_from_dicts(self)
        check_voxel_size(self.voxel_size)
        if int(self.k) != self.k or self.k < 1:
            raise ConfigError(f"k must be a positive integer, got {self.k}")


@dataclass
class TrainRunConfig:
    """``geopurify train``.

    Attributes:
        teacher: 3D teacher whose feature similarities the student learns (geometric, precomputed, sonata).
        teacher_options: keyword options of the teacher (KEY=VALUE), e.g. variant=superpoint.
    """

    teacher: str = "geometric"
    teacher_options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    lift: LiftOptions = field(default_factory=LiftOptions)
    read: ReadOptions = field(default_factory=ReadOptions)

    def __post_init__(self) -> None:
        check_field_types(self)
        _sections_from_dicts(self)
        check_device(self.train.device)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainRunConfig:
        return from_dict(cls, load_config_dict(path, "train"))


# --------------------------------------------------------------------------- dict <-> config
def updated(cls: type[C], config: C | None, fields: dict[str, Any]) -> C:
    """``config`` (default ``cls()``) with ``fields`` replaced and validated again; unknown fields are
    refused with the accepted list (what the API's ``**fields`` keyword arguments go through)."""
    if config is not None and not isinstance(config, cls):
        raise ConfigError(f"config: expected {cls.__name__} (or its fields as keyword arguments), got "
                          f"{type(config).__name__}: {config!r:.80}")
    base = config if config is not None else cls()
    if not fields:
        return base
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(names)}")
    return dataclasses.replace(base, **fields)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def sections(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that are themselves config dataclasses: name -> class."""
    return dict(_sections(cls))


@functools.cache
def _sections(cls: type) -> tuple[tuple[str, type], ...]:
    # built once per class: each default section is constructed (and validated) only to learn its type
    out = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            v = f.default_factory()
            if dataclasses.is_dataclass(v):
                out.append((f.name, type(v)))
    return tuple(out)


def _sections_from_dicts(cfg: Any) -> None:
    for name, sub in sections(type(cfg)).items():
        v = getattr(cfg, name)
        if isinstance(v, dict):
            setattr(cfg, name, from_dict(sub, v))
        elif not isinstance(v, sub):
            raise ConfigError(f"{type(cfg).__name__}.{name} must be a {sub.__name__}, got {type(v).__name__}")


def from_dict(cls: type[C], d: dict[str, Any], where: str = "") -> C:
    """Build a config dataclass from a (nested) dict; unknown keys are refused with the accepted list."""
    if not isinstance(d, dict):
        raise ConfigError(f"config {where or cls.__name__}: expected an object, got {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ConfigError(
            f"config {where or cls.__name__}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(names)}"
        )
    subs = sections(cls)
    kw = {k: (from_dict(subs[k], v, f"{where or cls.__name__}.{k}") if k in subs else v) for k, v in d.items()}
    try:
        return cls(**kw)
    except TypeError as exc:
        raise ConfigError(f"config {where or cls.__name__}: {exc}") from None


def load_config_dict(path: str | os.PathLike, command: str | None = None) -> dict[str, Any]:
    """The ``config`` object of a run.json (or the whole file when it is a bare config); with ``command``
    (``"segment"``, ``"train"``), the run.json of another command is refused (ConfigError) by name."""
    p = Path(path)
    if p.is_dir():
        p = p / "run.json"
    try:
        d = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise InputError(f"{p}: not JSON ({exc})") from None
    theirs = d.get("command") if isinstance(d, dict) else None
    if command is not None and isinstance(theirs, str) and theirs != command:
        raise ConfigError(f"{p}: the run.json of `geopurify {theirs}`, not of {command}; give a {command} run's")
    if isinstance(d, dict) and "config" in d and isinstance(d["config"], dict):
        return d["config"]
    if not isinstance(d, dict):
        raise InputError(f"{p}: expected a JSON object")
    return d
