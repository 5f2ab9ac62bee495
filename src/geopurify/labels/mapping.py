"""Raw dataset labels -> class indices of a :class:`LabelSet` (``-1`` = ignore).

* NYU40 ids (ScanNet ``*_vh_clean_2.labels.ply``) -> ScanNet-20: :func:`nyu40_to_scannet20`.
* Any raw id listed in ``LabelSet.ids``: :func:`raw_to_index`.
* ScanNet raw category names (``aggregation.json`` labels) through ``scannetv2-labels.combined.tsv``
  (which we cannot ship; the user passes their copy): :func:`read_labels_tsv` + :func:`scannet_category_map`
  + :func:`categories_to_index`.
* Matterport face ``category_id`` through ``category_mapping.tsv``: :func:`matterport_category_map`
  (a lookup table indexed by category id) + :func:`matterport_to_index`. Matterport-21 goes through the
  ``nyu40id`` column (as OpenScene's ``preprocess_3d_matterport.py``); Matterport-40/80/160 through the
  ``nyuClass`` column (OpenScene's K-class sets are the first K distinct ``nyuClass`` names, so matching by
  name reproduces their mapping).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from .sets import LabelSet, as_int_ids, get_label_set, matterport_aliases

__all__ = [
    "LabelTable",
    "categories_to_index",
    "matterport_category_map",
    "matterport_to_index",
    "nyu40_to_scannet20",
    "raw_to_index",
    "read_labels_tsv",
    "scannet_category_map",
]

# Label sets whose raw ids are NYU40 ids.
_NYU40_BASED = ("nyu40", "scannet20", "matterport21")


def _as_label_set(label_set: LabelSet | str) -> LabelSet:
    return label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)


def raw_to_index(label_set: LabelSet | str, raw: np.ndarray | Sequence[int]) -> np.ndarray:
    """Map raw dataset ids to class indices of ``label_set``.

    Args:
        label_set: a :class:`LabelSet` or its name.
        raw: (N,) integer raw ids (any shape works; the output has the same shape). Integral floats are
            accepted (PLY files often store labels as float).

    Returns:
        int64 array, same shape as ``raw``: index ``i`` where ``raw == label_set.ids[i]``, else -1
        (:meth:`LabelSet.to_index`).
    """
    return _as_label_set(label_set).to_index(raw)


def nyu40_to_scannet20(raw: np.ndarray | Sequence[int]) -> np.ndarray:
    """NYU40 ids -> (N,) int64 ScanNet-20 class index; ids outside the 20 benchmark classes (0, 13, 15,
    17-23, 25-27, 29-32, 35, 37, 38, 40, anything else) -> -1.

    >>> nyu40_to_scannet20([1, 39, 13, 24, 0]).tolist()
    [0, 19, -1, 14, -1]
    """
    return raw_to_index(get_label_set("scannet20"), raw)


@dataclass
class LabelTable:
    """A parsed label TSV (``scannetv2-labels.combined.tsv`` or Matterport's ``category_mapping.tsv``).

    Attributes:
        path: the file it came from (for error messages).
        columns: header names in file order.
        rows: one ``{column: text}`` per data row, in file order (short rows padded with "").
    """

    path: str
    columns: list[str]
    rows: list[dict[str, str]]

    def column(self, name: str) -> list[str]:
        """All values of column ``name``; raises :class:`InputError` naming the file if it is missing."""
        if name not in self.columns:
            raise InputError(f"{self.path}: no column {name!r} (columns: {', '.join(self.columns)})")
        return [row[name] for row in self.rows]

    def int_column(self, name: str, missing: int = -1) -> np.ndarray:
        """(R,) int64 values of column ``name``; empty cells -> ``missing``."""
        out = np.full(len(self.rows), missing, dtype=np.int64)
        for i, text in enumerate(self.column(name)):
            text = text.strip()
            if not text:
                continue
            try:
                out[i] = int(float(text))
            except ValueError:
                raise InputError(f"{self.path}: row {i + 2}, column {name!r}: {text!r} is not a number") from None
        return out


def read_labels_tsv(path: str | os.PathLike) -> LabelTable:
    """Parse a tab-separated label table with a header row.

    Raises :class:`InputError` (naming the file) when it is missing, empty, or a row has more cells than
    the header.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: label table not found")
    with open(p, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise InputError(f"{p}: empty label table (no header row)")
        columns = [h.strip() for h in header]
        rows: list[dict[str, str]] = []
        for lineno, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) > len(columns):
                raise InputError(f"{p}: line {lineno} has {len(cells)} cells but the header has {len(columns)}")
            cells = cells + [""] * (len(columns) - len(cells))
            rows.append(dict(zip(columns, cells)))
    return LabelTable(path=str(p), columns=columns, rows=rows)


def scannet_category_map(table: LabelTable, label_set: LabelSet | str = "scannet200") -> dict[str, int]:
    """``{raw_category: class index}`` from ``scannetv2-labels.combined.tsv`` rows (-1 = not in the set).

    ScanNet200 uses the ``id`` column (ScanNet's own category ids, as the benchmark scripts do);
    ``scannet20`` and ``nyu40`` use the ``nyu40id`` column.
    """
    ls = _as_label_set(label_set)
    if ls.name == "scannet200":
        raw = table.int_column("id")
    elif ls.name in ("scannet20", "nyu40"):
        raw = table.int_column("nyu40id")
    else:
        raise ConfigError(f"no ScanNet category mapping for label set {ls.name!r} (use scannet20/nyu40/scannet200)")
    index = raw_to_index(ls, raw)
    return {cat: int(i) for cat, i in zip(table.column("raw_category"), index)}


def categories_to_index(categories: Sequence[str] | np.ndarray, mapping: dict[str, int]) -> np.ndarray:
    """(N,) raw category names -> (N,) int64 class indices through ``mapping``; unknown names -> -1."""
    cats = np.asarray(categories, dtype=object)
    if cats.size == 0:
        return np.zeros(cats.shape, dtype=np.int64)
    uniq, inverse = np.unique(cats.astype(str), return_inverse=True)
    lut = np.array([mapping.get(str(u), -1) for u in uniq], dtype=np.int64)
    return lut[inverse].reshape(cats.shape)


def matterport_category_map(table: LabelTable, label_set: LabelSet | str = "matterport21") -> np.ndarray:
    """Lookup table from Matterport face ``category_id`` to class index of ``label_set``.

    Args:
        table: parsed ``category_mapping.tsv``; category ids come from its ``index`` column (1-based row
            number when the column is absent).
        label_set: ``matterport21``, ``scannet20`` or ``nyu40`` (through ``nyu40id``) or
            ``matterport40/80/160`` (through ``nyuClass`` names; ``void``/``unknown``/empty -> -1).

    Returns:
        (max_category_id + 1,) int64; entry 0 and unmapped categories are -1.
    """
    ls = _as_label_set(label_set)
    if "index" in table.columns:
        cat_ids = table.int_column("index")
    else:
        cat_ids = np.arange(1, len(table.rows) + 1, dtype=np.int64)
    if (cat_ids < 0).any():
        raise InputError(f"{table.path}: column 'index' has empty or negative category ids")
    if ls.name in _NYU40_BASED:
        index = raw_to_index(ls, table.int_column("nyu40id"))
    elif ls.name.startswith("matterport"):
        aliases = matterport_aliases()
        pos = {n: i for i, n in enumerate(ls.names)}
        names = [aliases.get(n.strip(), n.strip()) for n in table.column("nyuClass")]
        index = np.array([pos.get(n, -1) for n in names], dtype=np.int64)
    else:
        raise ConfigError(f"no Matterport category mapping for label set {ls.name!r}")
    lut = np.full(int(cat_ids.max(initial=0)) + 1, -1, dtype=np.int64)
    lut[cat_ids] = index
    lut[0] = -1
    return lut


def matterport_to_index(category_ids: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(N,) Matterport ``category_id`` (``-1`` = unlabelled) -> (N,) int64 class index via ``lut``."""
    ids = as_int_ids(category_ids, "Matterport category ids")
    inside = (ids >= 0) & (ids < len(lut))
    return np.where(inside, lut[np.clip(ids, 0, len(lut) - 1)], -1).astype(np.int64)
