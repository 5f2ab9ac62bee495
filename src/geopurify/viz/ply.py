"""The colour helpers every picture shares (class palette, similarity heat map, instance colours).

``write_ply`` is :func:`geopurify.io.ply.write_ply` (the PLY format, read and written, lives in io);
``palette`` is :func:`geopurify.labels.sets.palette` (the one class palette, which label sets use too).
"""

from __future__ import annotations

import numpy as np

from ..io.ply import write_ply
from ..labels.sets import palette

__all__ = ["write_ply", "palette", "heatmap_colors", "label_colors", "luminance", "instance_colors"]

def _viridis_lut() -> np.ndarray:
    """(256, 3) uint8 viridis lookup table from matplotlib (imported lazily: it is slow to import)."""
    from matplotlib import colormaps

    return np.round(colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def heatmap_colors(scores: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map scores to viridis colours, (N, 3) uint8: low = dark purple, high = bright yellow.

    Viridis is perceptually uniform with monotonically increasing lightness, so a higher score is
    always a brighter colour (also in greyscale and for colour-blind readers).

    Args:
        scores: (N,) float; non-finite entries get the lowest colour.
        vmin, vmax: the score range mapped onto the colormap; default the finite min / max.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    finite = np.isfinite(s)
    if vmin is None:
        vmin = float(s[finite].min()) if finite.any() else 0.0
    if vmax is None:
        vmax = float(s[finite].max()) if finite.any() else 1.0
    span = vmax - vmin if vmax > vmin else 1.0
    t = np.where(finite, (s - vmin) / span, 0.0)
    idx = np.clip(np.round(t * 255), 0, 255).astype(np.int64)
    return _viridis_lut()[idx]


def luminance(colors: np.ndarray) -> np.ndarray:
    """CIE L* lightness of sRGB colours, (N,) float64 in [0, 100] (what "brighter" means to the eye)."""
    c = np.asarray(colors, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(y > 216 / 24389, 116.0 * np.cbrt(y) - 16.0, y * 24389 / 27)


def label_colors(labels: np.ndarray, table: np.ndarray, unlabelled: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Colour per point from class ids, (N, 3) uint8.

    Args:
        labels: (N,) int class indices into ``table``; negative or out-of-range ids are unlabelled.
        table: (C, 3) uint8 class colours (e.g. ``palette(C)``).
        unlabelled: colour of unlabelled points.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    table = np.asarray(table, dtype=np.uint8).reshape(-1, 3)
    ext = np.concatenate([table, np.asarray([unlabelled], dtype=np.uint8)])
    idx = np.where((labels >= 0) & (labels < len(table)), labels, len(table))
    return ext[idx]


def instance_colors(point_instance: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: a distinct colour per instance id (``palette``), grey for -1 (no object)."""
    ids = np.asarray(point_instance).reshape(-1)
    n = int(ids.max()) + 1 if ids.size and ids.max() >= 0 else 0
    return label_colors(ids, palette(n), unlabelled=(90, 90, 90))
