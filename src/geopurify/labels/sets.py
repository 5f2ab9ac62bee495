"""Label sets (class names, raw ids, colours) for ScanNet-20/200, NYU40 and OpenScene's Matterport sets.

The tables live in ``labels/data/label_sets.json`` (package data). Sources: the ScanNet benchmark scripts
(``scannet200_constants.py``, ``scannet200_splits.py``, ``util.py`` colour palette) and OpenScene's
``dataset/label_constants.py``. Two Matterport names are misspelt in OpenScene and in Matterport's
``category_mapping.tsv`` ("refridgerator", "excercise equipment"); the class names here are spelt correctly
(they become text prompts) and :func:`matterport_aliases` keeps the TSV spellings mappable.
"""

from __future__ import annotations

import colorsys
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError

__all__ = [
    "LABEL_SETS",
    "LabelSet",
    "get_label_set",
    "matterport_aliases",
    "nyu40_palette",
    "palette",
]

#: Names :func:`get_label_set` accepts (canonical spelling).
#: the label set that scores, pictures and selections use unless told otherwise
DEFAULT_LABEL_SET = "scannet20"
LABEL_SETS = (
    "scannet20",
    "nyu40",
    "scannet200",
    "matterport21",
    "matterport40",
    "matterport80",
    "matterport160",
)

_ALIASES = {
    "scannet": "scannet20",
    "nyu": "nyu40",
    "matterport": "matterport21",
    "matterport3d": "matterport21",
}


@dataclass(frozen=True)
class LabelSet:
    """A closed vocabulary to evaluate against.

    Attributes:
        name: canonical name, e.g. ``"scannet20"``.
        names: class names in class-index order (index ``i`` is class ``names[i]``); used as text prompts.
        ids: raw dataset id of each class, same order (NYU40 ids for ScanNet-20, ScanNet category ids for
            ScanNet200, OpenScene's 1-based class ids for Matterport-40/80/160).
        colors: (C, 3) uint8 display colour of each class (read-only).
        split: optional ``{"head"|"common"|"tail": [class index, ...]}`` long-tail split (ScanNet200).
    """

    name: str
    names: list[str]
    ids: list[int]
    colors: np.ndarray
    split: dict[str, list[int]] | None = field(default=None)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.ids) or self.colors.shape != (len(self.names), 3):
            raise ConfigError(
                f"label set {self.name!r}: {len(self.names)} names, {len(self.ids)} ids and colours of shape "
                f"{self.colors.shape} do not agree"
            )

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Class index of ``name`` (exact spelling); raises :class:`InputError` if absent."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"label set {self.name!r} has no class named {name!r}") from None

    def to_index(self, raw: np.ndarray | Sequence[int]) -> np.ndarray:
        """Map raw dataset ids to class indices of this set.

        Args:
            raw: (N,) integer raw ids (any shape works; the output has the same shape). Integral floats
                are accepted (PLY files often store labels as float).

        Returns:
            int64 array, same shape as ``raw``: index ``i`` where ``raw == self.ids[i]``, else -1.
        """
        arr = as_int_ids(raw, f"labels for {self.name}")
        ids = np.asarray(self.ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, arr), 0, len(sorted_ids) - 1)
        hit = sorted_ids[pos] == arr
        return np.where(hit, order[pos], -1).astype(np.int64)


def as_int_ids(raw: np.ndarray | Sequence[int], what: str) -> np.ndarray:
    """Raw label ids as int64 (same shape); integral floats accepted, anything else refused (InputError)."""
    arr = np.asarray(raw)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all() or not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{what}: labels must be whole numbers, got non-integer floats")
        return arr.astype(np.int64)
    if arr.size == 0:
        return arr.astype(np.int64)
    raise InputError(f"{what}: labels must be integers, got dtype {arr.dtype}")


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    text = resources.files("geopurify.labels").joinpath("data/label_sets.json").read_text(encoding="utf-8")
    return json.loads(text)


def nyu40_palette() -> np.ndarray:
    """(41, 3) uint8 ScanNet/NYU40 colours indexed by NYU40 id (row 0 = unlabelled, black)."""
    return np.asarray(_tables()["nyu40_palette"], dtype=np.uint8)


# Twenty hand-ordered, clearly distinct colours (Tableau-like hues, dark row first, then light row),
# so the first classes of any label set get the most separable colours.
_BASE = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
        (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
        (196, 156, 148), (247, 182, 210), (255, 215, 0), (219, 219, 141), (0, 95, 95),
    ],
    dtype=np.uint8,
)  # fmt: skip


def palette(n: int) -> np.ndarray:
    """``n`` distinct class colours, (n, 3) uint8; ``palette(k)`` is a prefix of ``palette(n)`` for k < n.

    The one class palette: every picture (``viz``) and the label sets without standard NYU40 colours
    (:attr:`LabelSet.colors`) use it. Distinct for any n up to 2**24 (a user may name a thousand
    classes); colours beyond the first few hundred are close, as any palette of that size must be.

    The first 20 are a fixed, well separated set; beyond that hues advance by the golden angle with
    alternating saturation/value so neighbours in the list stay distinguishable. A colour that rounds
    onto an earlier one is moved to a free one by a fixed stride, which keeps the prefix property.

    >>> palette(3).tolist()
    [[31, 119, 180], [255, 127, 14], [44, 160, 44]]
    >>> len({tuple(c) for c in palette(2000)})
    2000
    """
    if n < 0:
        raise ValueError(f"palette size must be >= 0, got {n}")
    if n > 2**24:
        raise ValueError(f"palette size must be <= 2**24 (the 8-bit RGB colours), got {n}")
    if n <= len(_BASE):
        return _BASE[:n].copy()
    seen = {tuple(int(x) for x in c) for c in _BASE}
    extra = []
    for i in range(n - len(_BASE)):
        h = (0.13 + i * 0.618033988749895) % 1.0
        s, v = (0.75, 0.9) if i % 2 == 0 else (0.55, 0.7)
        rgb = [round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)]
        key = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
        while ((key >> 16) & 255, (key >> 8) & 255, key & 255) in seen:
            key = (key + 0x9E3779) % 2**24  # an odd stride visits every colour, and few probes are needed
        c = ((key >> 16) & 255, (key >> 8) & 255, key & 255)
        seen.add(c)
        extra.append(c)
    return np.concatenate([_BASE, np.asarray(extra, dtype=np.uint8)])


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("_", "").replace("-", "")
    return _ALIASES.get(key, key)


def get_label_set(name: str) -> LabelSet:
    """Build a :class:`LabelSet` by name (case, ``_`` and ``-`` are ignored: ``"ScanNet_20"`` works).

    Accepted: ``scannet20`` (alias ``scannet``), ``nyu40``, ``scannet200``, ``matterport21`` (alias
    ``matterport``), ``matterport40``, ``matterport80``, ``matterport160``. Unknown names raise
    :class:`ConfigError`.
    """
    key = _canonical(name)
    tables = _tables()
    if key not in LABEL_SETS:
        raise ConfigError(f"unknown label set {name!r}; choose one of: {', '.join(LABEL_SETS)}")
    entry = tables[key]
    names = list(entry["names"])
    ids = [int(i) for i in entry["ids"]]
    if entry["palette"] == "nyu40":
        colors = nyu40_palette()[np.asarray(ids)]
    else:
        colors = palette(len(names))
    colors = np.ascontiguousarray(colors, dtype=np.uint8)
    colors.setflags(write=False)
    split = None
    if "split" in entry:
        pos = {n: i for i, n in enumerate(names)}
        split = {part: sorted(pos[n] for n in members) for part, members in entry["split"].items()}
    return LabelSet(name=key, names=names, ids=ids, colors=colors, split=split)


def matterport_aliases() -> dict[str, str]:
    """``{tsv spelling: class name}`` for the Matterport names this package spells differently."""
    return dict(_tables()["matterport_aliases"])
