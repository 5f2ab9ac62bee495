"""Options of lifting (torch-free, so the CLI can build its options without loading torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..utils.fields import check_field_types

FUSIONS = ("consensus", "mean")


@dataclass
class LiftConfig:
    """Options of :func:`lift`.

    Attributes:
        fusion: ``"consensus"`` (paper: top-k views agreeing with the consensus class) or ``"mean"``.
        top_views: k, views kept per point by consensus fusion.
        depth_tolerance: relative depth tolerance of the occlusion test.
        border: pixels ignored along every colour-image edge.
        fill_unseen: give unseen points the feature of their nearest seen point.
        temperature: softmax temperature on the consensus scores (logits).
        batch_size: frames per ``encoder.encode_batch`` call.
    """

    fusion: str = "consensus"
    top_views: int = 3
    depth_tolerance: float = 0.05
    border: int = 10
    fill_unseen: bool = True
    temperature: float = 1.0
    batch_size: int = 4

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.fusion not in FUSIONS:
            raise ConfigError(f"lift fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.top_views < 1:
            raise ConfigError(f"lift top_views must be >= 1, got {self.top_views}")
        if not 0 < self.depth_tolerance < math.inf:  # inf * a 0 depth is NaN in the visibility test
            raise ConfigError(f"lift depth_tolerance must be a finite number > 0, got {self.depth_tolerance}")
        if self.border < 0:
            raise ConfigError(f"lift border must be >= 0, got {self.border}")
        if not self.temperature > 0:
            raise ConfigError(f"lift temperature must be > 0, got {self.temperature}")
        if self.batch_size < 1:
            raise ConfigError(f"lift batch_size must be >= 1, got {self.batch_size}")
