"""Distillation settings and the per-scene training data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputError
from ..geometry import VOXEL_SIZE
from ..utils.fields import check_field_types

#: choices of :attr:`TrainConfig.anchor_spread`
ANCHOR_SPREADS = ("uniform", "superpoint")


@dataclass
class TrainConfig:
    """Label-free distillation settings.

    Defaults train two ~50k-voxel scenes in under 10 minutes on 2 CPU cores (see the report /
    ``benchmarks/train.py``); raise ``steps`` and ``width`` on a GPU. With ``crop`` (3 m squares) a step
    costs the crop's share of each room, so two real 165k-voxel ScanNet rooms also train in minutes
    (``benchmarks/ablation.py``).

    Attributes:
        anchors, macro_negatives, micro_negatives, micro_pool, temperature: contrastive sampling and InfoNCE.
        lr, weight_decay: AdamW's learning rate and weight decay.
        warmup: linear warm-up steps before the cosine decay to 0.
        steps: optimisation steps (a rerun into the same ``out_dir`` with more steps continues the run).
        scenes_per_step: scenes each step draws (0 = all of them).
        crop: side, in metres, of the random square (x-y, full height) each scene contributes per step;
            anchors, positives and negatives come from the crop. 0 = the whole scene every step.
        crop_above: scenes of at most this many voxels train whole even with ``crop`` (crops are for
            speed on large rooms; a small room's step is cheap already).
        local_positives: each anchor's positive is its most teacher-similar voxel among its ``micro_pool``
            spatial neighbours (the voxels pooling weighs) instead of in the whole scene (the paper's).
        anchor_spread: how a step's anchors are drawn: ``"uniform"`` over the voxels (the paper's), or
            ``"superpoint"``, each of the teacher's segments equally likely (voxels weighted by one over
            their segment's size), so small objects get anchors too; needs a teacher that cuts segments.
        local_weight: share ``w`` of the local affinity loss in ``(1 - w) * InfoNCE + w * KL``: KL between
            the teacher's and the student's ``softmax(local_sharpen * cos)`` over each anchor's
            ``micro_pool`` spatial neighbours (the weights pooling uses). 0 = InfoNCE only (the paper's).
        local_sharpen: sharpening of those softmaxes (pooling's default sharpen is 20).
        seed: model init and sampling seed.
        width, out_dim, blocks: student architecture.
        voxel_size: metres (recorded; scenes arrive voxelised).
        device: ``auto``, ``cpu`` or ``cuda``.
        checkpoint_every: steps between atomic checkpoints in ``out_dir`` (0 = only at the end).
        log_every: steps between loss log lines.
    """

    anchors: int = 4096
    macro_negatives: int = 48
    micro_negatives: int = 16
    micro_pool: int = 96
    temperature: float = 0.07
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 5
    steps: int = 60
    scenes_per_step: int = 0
    crop: float = 3.0
    crop_above: int = 100_000
    local_positives: bool = False
    anchor_spread: str = "uniform"
    local_weight: float = 0.0
    local_sharpen: float = 20.0
    seed: int = 0
    width: int = 32
    out_dim: int = 128
    blocks: int = 3
    voxel_size: float = VOXEL_SIZE
    device: str = "auto"
    checkpoint_every: int = 20
    log_every: int = 10

    def __post_init__(self) -> None:
        check_field_types(self)
        if int(self.crop_above) < 0:
            raise ConfigError(f"TrainConfig.crop_above must be >= 0, got {self.crop_above}")
        positive = ("anchors", "macro_negatives", "micro_negatives", "micro_pool", "steps", "width", "out_dim")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.micro_negatives > self.micro_pool:
            raise ConfigError(f"TrainConfig.micro_negatives ({self.micro_negatives}) > micro_pool ({self.micro_pool})")
        if not (self.crop >= 0 and np.isfinite(self.crop)):
            raise ConfigError(f"TrainConfig.crop must be a finite number of metres >= 0, got {self.crop}")
        if self.anchor_spread not in ANCHOR_SPREADS:
            raise ConfigError(
                f"TrainConfig.anchor_spread: unknown {self.anchor_spread!r}; choose one of {', '.join(ANCHOR_SPREADS)}"
            )
        if not 0.0 <= self.local_weight <= 1.0 or not 0 < self.local_sharpen < np.inf:
            raise ConfigError(
                f"TrainConfig.local_weight must be in [0, 1] and local_sharpen > 0, got {self.local_weight}, "
                f"{self.local_sharpen}"
            )
        for name in ("temperature", "lr", "voxel_size"):  # inf lr trains a NaN student; inf temperature nothing
            if not 0 < getattr(self, name) < np.inf:
                raise ConfigError(f"TrainConfig.{name} must be a finite number > 0, got {getattr(self, name)}")
        if not 0 <= self.weight_decay < np.inf:
            raise ConfigError(f"TrainConfig.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        for name in ("warmup", "scenes_per_step", "checkpoint_every", "log_every"):  # 0 has a meaning for each
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown train config keys: {sorted(unknown)}")
        return cls(**d)


@dataclass
class TrainScene:
    """One voxelised scene ready for distillation.

    Attributes:
        name: scene name.
        coords: (V, 3) int32 voxel coordinates (non-negative, unique).
        centers: (V, 3) float32 voxel centres, metres.
        inputs: (V, C) float32 student inputs (:func:`geopurify.student.student_inputs`).
        teacher: (V, T) float32 teacher features.
        segments: (V,) int64 segment ids the teacher cut (its superpoints), or None.
    """

    name: str
    coords: np.ndarray
    centers: np.ndarray
    inputs: np.ndarray
    teacher: np.ndarray
    segments: np.ndarray | None = None

    def __post_init__(self) -> None:
        v = len(self.coords)
        for field, arr, width in (
            ("coords", self.coords, 3),
            ("centers", self.centers, 3),
            ("inputs", self.inputs, None),
            ("teacher", self.teacher, None),
        ):
            arr = np.asarray(arr)
            if arr.ndim != 2 or arr.shape[0] != v or (width is not None and arr.shape[1] != width):
                raise InputError(f"scene {self.name}: {field} has shape {arr.shape}, expected ({v}, {width or 'C'})")
        if self.segments is not None and np.asarray(self.segments).shape != (v,):
            shape = np.asarray(self.segments).shape
            raise InputError(f"scene {self.name}: segments have shape {shape}, expected ({v},)")
        if v < 3:
            raise InputError(f"scene {self.name}: only {v} voxels, need at least 3 to distil")
        if not np.isfinite(self.inputs).all() or not np.isfinite(self.teacher).all():
            raise InputError(f"scene {self.name}: inputs or teacher features contain NaN or inf")

    @property
    def num_voxels(self) -> int:
        return int(len(self.coords))
