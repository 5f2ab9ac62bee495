"""The Student Affinity Network: a flat residual submanifold sparse-conv net.

Why flat (no U-Net): the student only has to produce embeddings whose cosine ranks the K=96 nearest
voxels (a ~10 cm neighbourhood at 2 cm voxels) for purification. ``blocks`` residual blocks of two 3x3x3
convolutions reach ``4 * blocks + 1`` voxels (34 cm with 4 blocks), which covers that neighbourhood, with
no strided/transposed convolutions to get wrong and a single kernel map shared by every layer.
LayerNorm (per voxel) rather than BatchNorm keeps a rank's result independent of the other ranks' scenes,
so DDP training equals single-process training.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..utils import linalg
from .sparse_conv import KernelMap, SubMConv3d, build_kernel_map

FORMAT_VERSION = 1


@dataclass
class StudentConfig:
    """Architecture of :class:`AffinityNet` (stored as JSON in every checkpoint).

    Attributes:
        in_dim: input channels (lifted feature dim D + 6 for RGB and normal).
        width: channels of the sparse convolutions.
        out_dim: embedding size (unit rows).
        blocks: residual blocks (two 3x3x3 submanifold convs each).
        format_version: checkpoint format.
    """

    in_dim: int
    width: int = 64
    out_dim: int = 128
    blocks: int = 4
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("in_dim", "width", "out_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"StudentConfig.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.blocks) < 0:
            raise ConfigError(f"StudentConfig.blocks must be >= 0, got {self.blocks}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> StudentConfig:
        """Build from a dict, rejecting unknown keys and newer format versions (ConfigError)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown student config keys: {sorted(unknown)}")
        version = int(d.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ConfigError(f"student checkpoint format {version} is newer than supported ({FORMAT_VERSION})")
        return cls(**d)


class _ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.conv1 = SubMConv3d(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.conv2 = SubMConv3d(width, width)

    def forward(self, x: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        # in place where autograd allows it (LayerNorm's backward needs its input, not its output; the
        # convolution saves its input, not its output): each fresh (V, width) tensor costs page faults
        h = self.conv1(F.relu(self.norm1(x), inplace=True), kmap)
        h = self.conv2(F.relu(self.norm2(h), inplace=True), kmap)
        return h.add_(x)


class AffinityNet(nn.Module):
    """Maps per-voxel [lifted feature | RGB | normal] to unit embeddings for affinities.

    ``forward(coords (V, 3) int, feats (V, in_dim) float, kmap=None) -> (V, out_dim)`` unit rows.
    Pass ``kmap`` (from :func:`build_kernel_map`) to reuse a neighbour map across calls.
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        self.source: Path | None = None  # the file :func:`geopurify.student.load` read it from, for messages
        self.stem = nn.Linear(config.in_dim, config.width)
        self.blocks = nn.ModuleList(_ResBlock(config.width) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.out_dim)

    def forward(self, coords: torch.Tensor, feats: torch.Tensor, kmap: KernelMap | None = None) -> torch.Tensor:
        if feats.ndim != 2 or feats.shape[1] != self.config.in_dim:
            raise ValueError(f"feats must be (V, {self.config.in_dim}), got {tuple(feats.shape)}")
        if coords.shape[0] != feats.shape[0]:
            raise ValueError(f"{coords.shape[0]} coords but {feats.shape[0]} feature rows")
        if kmap is None:
            kmap = build_kernel_map(coords.to(feats.device))
        # linalg.linear = F.linear, through oneDNN's faster float32 product when autograd is off
        x = linalg.linear(feats, self.stem.weight, self.stem.bias)
        for block in self.blocks:
            x = block(x, kmap)
        return linalg.unit_rows(linalg.linear(F.relu(self.norm(x), inplace=True), self.head.weight, self.head.bias))

    @torch.no_grad()
    def embed(self, coords: np.ndarray, feats: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
        """Inference helper: numpy (V, 3) int coords and (V, in_dim) feats -> (V, out_dim) float32."""
        was_training = self.training
        self.eval()
        try:
            c = torch.as_tensor(np.asarray(coords), device=device)
            f = torch.as_tensor(np.asarray(feats, dtype=np.float32), device=device)
            return self.to(device)(c, f).cpu().numpy().astype(np.float32)
        finally:
            self.train(was_training)


def student_inputs(lifted: np.ndarray, colors: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Student input per voxel: [unit lifted feature | 2*RGB-1 | normal].

    Args:
        lifted: (V, D) lifted 2D features (any scale; rows are L2-normalised, zero rows stay zero).
        colors: (V, 3) RGB in [0, 1] (mapped to [-1, 1]).
        normals: (V, 3) unit normals.

    Returns:
        (V, D + 6) float32.
    """
    lifted = np.asarray(lifted, dtype=np.float32)
    colors = np.asarray(colors, dtype=np.float32)
    normals = np.asarray(normals, dtype=np.float32)
    if lifted.ndim != 2 or colors.shape != (lifted.shape[0], 3) or normals.shape != (lifted.shape[0], 3):
        raise ValueError(
            f"student_inputs: shapes lifted {lifted.shape}, colors {colors.shape}, normals {normals.shape}"
            " do not match (V, D), (V, 3), (V, 3)"
        )
    # One preallocated output and an einsum norm: np.linalg.norm's (V, D) temporary, the concatenate
    # and a final astype copy were ~1 s of a 66k-voxel, 512-d segment (three passes over 136 MB).
    d = lifted.shape[1]
    out = np.empty((lifted.shape[0], d + 6), dtype=np.float32)
    norm = np.sqrt(np.einsum("ij,ij->i", lifted, lifted))
    np.divide(lifted, np.maximum(norm, 1e-12)[:, None], out=out[:, :d])
    out[:, d : d + 3] = colors * 2.0 - 1.0
    out[:, d + 3 :] = normals
    return out
