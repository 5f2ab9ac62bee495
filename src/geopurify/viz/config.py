"""The options of ``geopurify render`` and ``geopurify view``: each default written once, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..labels.sets import DEFAULT_LABEL_SET, get_label_set
from ..outputs import OutputOptions
from ..utils.fields import check_field_types

VIEWS = ("top", "persp", "both")
COLORS = ("labels", "rgb")


@dataclass
class RenderConfig(OutputOptions):
    """``geopurify render``: PNG pictures of a segment output.

    Attributes:
        view: which pictures: top (orthographic, from above), persp (perspective) or both.
        color: labels (render_<view>.png) or the points' own RGB (render_rgb_<view>.png).
        label_set: label set of the ground truth (with --gt).
    """

    view: str = "both"
    color: str = "labels"
    label_set: str = DEFAULT_LABEL_SET

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.view not in VIEWS:
            raise ConfigError(f"render: --view {self.view!r}; choose one of: {', '.join(VIEWS)}")
        if self.color not in COLORS:
            raise ConfigError(f"render: --color {self.color!r}; choose one of: {', '.join(COLORS)}")
        get_label_set(self.label_set)


@dataclass
class ViewConfig:
    """``geopurify view``: the interactive web viewer.

    Attributes:
        port: port of the web page.
        host: address to serve on (localhost only by default; 0.0.0.0 shares it deliberately).
    """

    port: int = 8080
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        check_field_types(self)
        if int(self.port) != self.port or not 0 < self.port < 65536:
            raise ConfigError(f"view: --port must be in 1..65535, got {self.port}")
