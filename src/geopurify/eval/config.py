"""The options of ``geopurify eval`` and ``geopurify select``: each default written once, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..io.registry import ReadOptions
from ..labels.sets import DEFAULT_LABEL_SET, get_label_set
from ..outputs import OutputOptions
from ..utils.fields import check_field_types


@dataclass
class EvalConfig(OutputOptions):
    """``geopurify eval``: scores of segment outputs against the ground truth of their scenes.

    Attributes:
        protocol: paper: 19 classes, otherfurniture ignored; openscene: all 20 with 'other'; geopurify: every
            class under its own name.
        label_set: label set of the scores (scannet20, scannet200, nyu40, matterport21, ...).
    """

    protocol: str = "paper"
    label_set: str = DEFAULT_LABEL_SET
    read: ReadOptions = field(default_factory=ReadOptions)

    def __post_init__(self) -> None:
        check_field_types(self)
        from .metrics import PROTOCOLS

        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown evaluation protocol {self.protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
        get_label_set(self.label_set)  # refuses an unknown name with the accepted list

    def check_for_instances(self) -> None:
        """``eval --instances``: ``protocol`` shapes only the semantic scores, so another than the default
        is refused (ConfigError) rather than ignored; instance AP is over the label set's thing classes."""
        if self.protocol != EvalConfig.protocol:
            raise ConfigError(f"--protocol {self.protocol} applies to the semantic scores; instance AP is over the "
                              "label set's thing classes (ScanNet's instance benchmark): leave it out with --instances")


@dataclass
class SelectConfig:
    """``geopurify select``: the paper's data-efficient training subset of a dataset.

    Attributes:
        n: scenes to pick.
        gamma: weight of the normalised class count against the normalised entropy (rare classes).
        seed: k-means seed.
        label_set: label set of the class histograms.
    """

    n: int = 20
    gamma: float = 1.0
    seed: int = 0
    label_set: str = DEFAULT_LABEL_SET

    def __post_init__(self) -> None:
        check_field_types(self)
        if int(self.n) != self.n or self.n < 1:
            raise ConfigError(f"select: --n must be >= 1, got {self.n}")
        if not (0 <= self.gamma < float("inf")):
            raise ConfigError(f"select: --gamma must be a finite number >= 0, got {self.gamma}")
        get_label_set(self.label_set)
