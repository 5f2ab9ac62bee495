"""Label sets and raw-label mappings (ScanNet-20/200, NYU40, Matterport 21/40/80/160)."""

from __future__ import annotations

from .mapping import (
    LabelTable,
    categories_to_index,
    matterport_category_map,
    matterport_to_index,
    nyu40_to_scannet20,
    raw_to_index,
    read_labels_tsv,
    scannet_category_map,
)
from .sets import (
    DEFAULT_LABEL_SET,
    LABEL_SETS,
    LabelSet,
    get_label_set,
    matterport_aliases,
    nyu40_palette,
    palette,
)

__all__ = [
    "DEFAULT_LABEL_SET",
    "LABEL_SETS",
    "LabelSet",
    "LabelTable",
    "categories_to_index",
    "get_label_set",
    "matterport_aliases",
    "matterport_category_map",
    "matterport_to_index",
    "nyu40_palette",
    "nyu40_to_scannet20",
    "palette",
    "raw_to_index",
    "read_labels_tsv",
    "scannet_category_map",
]
