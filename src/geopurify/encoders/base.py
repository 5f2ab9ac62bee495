"""The 2D side: per-frame feature maps and text embeddings in the same space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..registry import Registry
from ..utils.rows import unit_rows_np


@dataclass
class FeatureMap:
    """A 2D VLM's output for one colour frame: dense or per-mask.

    Exactly one form is set:
        dense: (h, w, D) float16/float32 per-pixel embeddings, or
        segments: (h, w) int32 mask ids (-1 = no mask) with embeddings: (S, D).
    The map covers the whole colour image; (h, w) may differ from the image size.
    """

    dense: np.ndarray | None = None
    segments: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.dense.shape[-1] if self.dense is not None else self.embeddings.shape[-1])

    @property
    def hw(self) -> tuple[int, int]:
        arr = self.dense if self.dense is not None else self.segments
        return int(arr.shape[0]), int(arr.shape[1])

    def sample(self, u: np.ndarray, v: np.ndarray, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Features at colour-image pixel coordinates (nearest neighbour).

        Args:
            u, v: (M,) float pixel coordinates in the colour image (x, y).
            image_hw: (H, W) of the colour image the coordinates refer to.
        Returns:
            feats: (M, D) float32, and valid: (M,) bool (False where no mask covers the pixel).
        """
        h, w = self.hw
        H, W = image_hw
        x = np.clip(np.floor(u * (w / W)).astype(np.int64), 0, w - 1)
        y = np.clip(np.floor(v * (h / H)).astype(np.int64), 0, h - 1)
        if self.dense is not None:
            return self.dense[y, x].astype(np.float32), np.ones(len(x), dtype=bool)
        seg = self.segments[y, x].astype(np.int64)
        valid = seg >= 0
        out = np.zeros((len(x), self.embeddings.shape[1]), dtype=np.float32)
        out[valid] = self.embeddings[seg[valid]]
        return out, valid


@dataclass
class TextEmbeddings:
    """Class names and their embeddings. names: C strings; embeddings: (C, D) float32, unit rows."""

    names: list[str]
    embeddings: np.ndarray

    def normalized(self) -> np.ndarray:
        return unit_rows_np(self.embeddings.astype(np.float32))


class Encoder(ABC):
    """A frozen 2D VLM: images -> :class:`FeatureMap`, text -> embeddings in the same space."""

    name: str = "encoder"
    #: whether :func:`~geopurify.encoders.build_encoder` may wrap it in the on-disk feature cache
    cacheable: bool = True

    @abstractmethod
    def encode(self, frame) -> FeatureMap:
        """Feature map of one :class:`~geopurify.io.scene.Frame`'s colour image."""

    def encode_batch(self, frames: list) -> list[FeatureMap]:
        """Feature maps of several frames; neural encoders override this to batch the model calls."""
        return [self.encode(f) for f in frames]

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """(C, D) float32 unit embeddings of the prompts."""
        raise NotImplementedError(f"encoder {self.name!r} has no text tower; pass a text-embedding file")

    def cache_key(self) -> str:
        """A string that changes whenever the features would (model, weights, options)."""
        return self.name


ENCODERS: Registry[Encoder] = Registry("encoder", "geopurify.encoders")
