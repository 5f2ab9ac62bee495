"""The options of ``geopurify query``: each default written once, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..outputs import OutputOptions
from ..utils.fields import check_field_types


@dataclass
class QueryConfig(OutputOptions):
    """``geopurify query``: per-point similarity of a segment output's features to text phrases.

    Attributes:
        text: text embeddings .npz that holds the phrases (default: the output's text_embeddings.npz).
        encoder: encode phrases with this encoder's text tower (default: the run's encoder when it has one).
        weights: local weights of the encoder (file or folder).
        threshold: mask: the points with similarity >= this.
        top: mask: the N most similar points.
        objects: rank the instances of instances.json instead (run `geopurify instances OUT` first).
    """

    text: str | None = None
    encoder: str | None = None
    weights: str | None = None
    threshold: float | None = None
    top: int | None = None
    objects: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.threshold is not None and self.top is not None:
            raise ConfigError("query: --threshold and --top exclude each other; give one")
        if self.top is not None and (int(self.top) != self.top or self.top < 1):
            raise ConfigError(f"query: --top must be >= 1, got {self.top}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ConfigError(f"query: --threshold must be a finite number, got {self.threshold}")
