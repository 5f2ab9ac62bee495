"""Run configurations: one dataclass per command, saved resolved beside every output."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LiftOptions:
    """How 2D features reach the points (see :mod:`geopurify.lifting`)."""

    encoder: str = "auto"  # "auto": precomputed when features_2d/ exists, else point features
    encoder_options: dict[str, Any] = field(default_factory=dict)
    fusion: str = "consensus"  # "consensus" (paper, top-3 views) | "mean" (OpenScene)
    top_views: int = 3
    depth_tolerance: float = 0.05
    border: int = 10
    text: str | None = None  # text-embedding .npz; default <scene>/text_embeddings.npz
    classes: list[str] | None = None  # class names to encode with the encoder's text tower


@dataclass
class ReadConfig:
    layout: str = "auto"
    frame_skip: int = 1
    max_frames: int | None = None
    depth_scale: float | None = None  # None: the layout's own (ScanNet/YAML 1000, TUM 5000, ...)
    fuse_voxel_size: float = 0.02
    labels_tsv: str | None = None
    reader_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegmentConfig:
    """``geopurify segment``: defaults follow the paper (2 cm voxels, K=96, sharpen 20, T=18)."""

    purify: bool = True
    student: str | None = None
    voxel_size: float = 0.02
    k: int = 96
    sharpen: float = 20.0
    steps: int = 18
    knn: str = "kdtree"  # "kdtree" (exact, mean point positions) | "stencil" (integer grid offsets, as released)
    save_features: bool = True
    device: str = "auto"
    overwrite: bool = False
    memory_limit: str | None = None  # e.g. "4G"; default: what the OS reports available
    lift: LiftOptions = field(default_factory=LiftOptions)
    read: ReadConfig = field(default_factory=ReadConfig)


@dataclass
class TrainRunConfig:
    """``geopurify train``: distillation options are :class:`geopurify.distill.TrainConfig`'s."""

    teacher: str = "geometric"
    teacher_options: dict[str, Any] = field(default_factory=dict)
    voxel_size: float = 0.02
    steps: int | None = None  # None: TrainConfig's default
    width: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    lift: LiftOptions = field(default_factory=LiftOptions)
    read: ReadConfig = field(default_factory=ReadConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)
