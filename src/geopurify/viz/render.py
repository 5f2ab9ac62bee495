"""Headless CPU renders of a labelled point cloud to PNG (top-down map or perspective view).

How it draws: a numpy z-buffer point splatter. Points are projected (orthographic looking down -z
for ``"top"``, an OpenCV pinhole camera orbiting the scene for ``"persp"``), each point is splatted
as a small disc of pixels, and per pixel the nearest point wins (``np.minimum.at`` on a depth
buffer, then a second pass keeps the points whose depth equals the buffer). A cheap
eye-dome-style edge term (depth minus the mean of its neighbours, so flat or sloping surfaces stay
unshaded and only depth steps darken) makes shapes readable without normals. Titles and the legend
are composited with Pillow. The work is O(N x splat area) in memory-bounded passes, one offset of
the disc at a time.

Choice of backend (tried on the 2-core, no-GPU development machine):

* matplotlib ``scatter``: no occlusion between points (draw order, not depth, decides what is on
  top), and 2.9 s for a plain 1M-point 2D scatter to PNG here (measured), before any 3D projection;
  rejected.
* Open3D offscreen (``OffscreenRenderer``): not installed here (only the import was tried); it needs
  a multi-hundred-MB wheel plus Debian ``libusb-1.0-0`` and an EGL/OSMesa GL stack a headless
  machine may lack (not checked); rejected as a dependency for a PNG.
* pyrender + OSMesa: not tried; needs system OSMesa and PyOpenGL, same objection.
* numpy z-buffer splatter + Pillow text (this module): correct occlusion, no new dependency, and a
  1M-point scene renders in 0.4-0.9 s here (see ``tests/viz/test_render.py``); chosen.

Top-down views cut away everything above a height (default: 75 % of the way from the floor to the
top of the scan) so ceilings and wall tops do not hide the floor plan; the perspective view uses the
same cut, like a dollhouse view.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputError
from ..utils.atomic import atomic_path

log = logging.getLogger(__name__)

__all__ = ["Panel", "render_png", "render_panels", "rasterize", "Raster", "class_legend", "UNLABELLED"]

View = Literal["top", "persp"]
Cut = float | Literal["auto"] | None
BACKGROUND = (255, 255, 255)
#: colour of points without a class (unlabelled, or a GT class the prediction lacks); the viewer's too
UNLABELLED = (40, 40, 40)
UNLABELLED_NAME = "unlabelled"


@dataclass
class Panel:
    """One picture in a side-by-side figure: a title and a colour per point, (N, 3) uint8."""

    title: str
    colors: np.ndarray


@dataclass
class Raster:
    """Which point is visible in each pixel.

    index: (H, W) int64 point index, -1 where no point is visible.
    depth: (H, W) float32 distance along the view direction in scene units (inf where empty).
    scale: scene units per pixel near the scene centre (for the shading threshold).
    """

    index: np.ndarray
    depth: np.ndarray
    scale: float


def _check_points(points: np.ndarray, colors: np.ndarray | None, where: str) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise InputError(f"{where}: points must be a non-empty (N, 3) array, got {points.shape}")
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != points.shape or colors.dtype != np.uint8:
            raise InputError(f"{where}: colors must be ({len(points)}, 3) uint8, got {colors.shape} {colors.dtype}")
    return points.astype(np.float32, copy=False)


def _cut_mask(points: np.ndarray, cut: Cut) -> np.ndarray:
    """(N,) bool: points at or below the cut height (``"auto"``: 75 % from floor to top, robustly)."""
    if cut is None:
        return np.ones(len(points), dtype=bool)
    z = points[:, 2]
    if cut == "auto":
        floor, top = np.percentile(z, [1.0, 99.0])
        height = float(top - floor)
        if height <= 1e-6:
            return np.ones(len(points), dtype=bool)
        cut = float(floor + 0.75 * height)
    return z <= float(cut)


def _project_top(points: np.ndarray, size: tuple[int, int], margin: int):
    """Orthographic projection looking down -z: x to the right, y up in the image."""
    W, H = size
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    span = np.maximum(hi - lo, 1e-6)
    ppu = min((W - 2 * margin) / span[0], (H - 2 * margin) / span[1])  # pixels per scene unit
    off = np.array([W, H]) / 2 - (lo + hi) / 2 * ppu * np.array([1, -1])
    u = points[:, 0] * ppu + off[0]
    v = -points[:, 1] * ppu + off[1]
    depth = points[:, 2].max() - points[:, 2]
    return u, v, depth, 1.0 / ppu


def _project_persp(points: np.ndarray, size: tuple[int, int], azimuth: float, elevation: float, fov: float,
                   margin: int = 0):
    """Pinhole camera (OpenCV axes) looking at the bounding-box centre from above at an angle.

    The camera stands where the bounding sphere fits the view; the image is then zoomed and shifted
    (focal length and principal point, which changes no occlusion) so that the projected points span
    the picture less ``margin`` pixels, as the top view does: a box seen from a corner covers far less
    than its sphere.
    """
    W, H = size
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)
    half = math.radians(fov) / 2
    dist = radius / math.sin(half) * 1.02
    az, el = math.radians(azimuth), math.radians(elevation)
    direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    eye = centre + dist * direction
    fwd = -direction
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd]).astype(np.float32)  # world -> camera rotation, rows = camera axes
    cam = (points - eye.astype(np.float32)) @ R.T
    f = min(W, H) / 2 / math.tan(half)
    z = cam[:, 2]
    ok = z > 1e-3 * dist
    zs = np.where(ok, z, np.inf)
    x, y = cam[:, 0] / zs, cam[:, 1] / zs  # normalised image coordinates
    if ok.any():
        lo_x, hi_x, lo_y, hi_y = x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max()
        fit = min((W - 2 * margin) / max(float(hi_x - lo_x), 1e-9), (H - 2 * margin) / max(float(hi_y - lo_y), 1e-9))
        f = max(f, fit)  # never zoom out past the sphere's fit
        cx, cy = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
    else:
        cx = cy = 0.0
    u = f * (x - cx) + W / 2
    v = f * (y - cy) + H / 2
    return u, v, zs, dist / f


def _disc(radius: int) -> np.ndarray:
    """(S, 2) integer pixel offsets of a filled disc."""
    r = np.arange(-radius, radius + 1)
    dx, dy = np.meshgrid(r, r)
    keep = dx**2 + dy**2 <= radius**2 + radius  # a little rounder than the strict disc
    return np.stack([dx[keep], dy[keep]], axis=1)


def _auto_radius(u: np.ndarray, v: np.ndarray, size: tuple[int, int]) -> int:
    """Splat radius so surfaces look closed: about 0.7 x the typical on-screen point spacing.

    The spacing comes from the median number of points per occupied 8x8-pixel cell, which ignores
    the few cells where walls seen edge-on pile up thousands of points.
    """
    W, H = size
    cell = 8
    cu, cv = np.floor(u / cell).astype(np.int64), np.floor(v / cell).astype(np.int64)
    inside = (cu >= 0) & (cv >= 0) & (cu <= W // cell) & (cv <= H // cell)
    if not inside.any():
        return 1
    _, counts = np.unique(cu[inside] * (H // cell + 1) + cv[inside], return_counts=True)
    spacing = cell / math.sqrt(float(np.median(counts)))
    return int(np.clip(round(0.7 * spacing + 0.4), 1, 8))


def rasterize(
    points: np.ndarray,
    view: View = "top",
    size: tuple[int, int] = (1200, 900),
    cut: Cut = "auto",
    point_radius: int | None = None,
    azimuth: float = -60.0,
    elevation: float = 40.0,
    fov: float = 50.0,
) -> Raster:
    """Z-buffer the points into an image of ``size`` = (W, H) pixels.

    Args:
        points: (N, 3) float, z up.
        view: ``"top"`` (orthographic, looking down -z) or ``"persp"`` (pinhole orbiting the scene at
            ``azimuth`` / ``elevation`` degrees, vertical field of view ``fov``).
        cut: drop points above this z (``"auto"``: 75 % of floor-to-top; ``None``: keep all).
        point_radius: splat radius in pixels; default from the on-screen point density.
    Returns:
        :class:`Raster` with the visible point per pixel (nearest wins).
    """
    points = _check_points(points, None, "render")
    W, H = int(size[0]), int(size[1])
    if W < 16 or H < 16:
        raise InputError(f"render: image size must be at least 16x16, got {size}")
    keep = np.flatnonzero(_cut_mask(points, cut))
    pts = points[keep]
    if view == "top":
        u, v, depth, scale = _project_top(pts, (W, H), margin=max(4, min(W, H) // 40))
    elif view == "persp":
        u, v, depth, scale = _project_persp(pts, (W, H), azimuth, elevation, fov, margin=max(4, min(W, H) // 40))
    else:
        raise InputError(f"render: view must be 'top' or 'persp', got {view!r}")
    front = np.isfinite(depth)
    keep, u, v, depth = keep[front], u[front], v[front], depth[front].astype(np.float32)
    radius = point_radius if point_radius is not None else _auto_radius(u, v, (W, H))
    ui, vi = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)

    zbuf = np.full(H * W, np.inf, dtype=np.float32)
    offsets = _disc(int(radius))
    # Pass 1: nearest depth per pixel; pass 2: the points that reach it. One disc offset at a time
    # keeps memory at O(N) instead of O(N x disc area).
    for dx, dy in offsets:
        x, y = ui + dx, vi + dy
        ok = (x >= 0) & (x < W) & (y >= 0) & (y < H)
        np.minimum.at(zbuf, y[ok] * W + x[ok], depth[ok])
    index = np.full(H * W, -1, dtype=np.int64)
    for dx, dy in offsets:
        x, y = ui + dx, vi + dy
        ok = (x >= 0) & (x < W) & (y >= 0) & (y < H)
        pix = y[ok] * W + x[ok]
        win = depth[ok] == zbuf[pix]
        index[pix[win]] = keep[ok][win]
    log.debug("rasterized %d of %d points, radius %d px", len(keep), len(points), radius)
    return Raster(index=index.reshape(H, W), depth=zbuf.reshape(H, W), scale=float(scale))


def _edge_shade(raster: Raster, strength: float = 0.5) -> np.ndarray:
    """(H, W) float32 in [0.35, 1]: darken pixels that lie behind a nearer neighbour (depth steps).

    Uses depth minus the mean of its two neighbours 2 px away along x and along y, so a plane at any
    slope gives zero and only silhouettes and creases are darkened. Empty neighbours do not darken.
    """
    d = raster.depth.astype(np.float32)
    pad = np.pad(d, 2, mode="edge")
    filled = np.where(np.isfinite(pad), pad, np.nan)
    c = filled[2:-2, 2:-2]
    resp = np.zeros_like(d)
    for a, b in (((slice(2, -2), slice(0, -4)), (slice(2, -2), slice(4, None))),
                 ((slice(0, -4), slice(2, -2)), (slice(4, None), slice(2, -2)))):  # fmt: skip
        na, nb = filled[a], filled[b]
        na = np.where(np.isnan(na), c, na)
        nb = np.where(np.isnan(nb), c, nb)
        step = c - 0.5 * (na + nb)
        resp += np.nan_to_num(np.maximum(step, 0.0))
    # A step of ~6 pixel footprints halves the brightness.
    shade = 1.0 / (1.0 + strength * resp / max(raster.scale * 3.0, 1e-9))
    return np.clip(shade, 0.35, 1.0).astype(np.float32)


def _colorize(raster: Raster, colors: np.ndarray, shade: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8 image: the visible point's colour (shaded), background elsewhere."""
    img = np.empty(raster.index.shape + (3,), dtype=np.uint8)
    img[:] = BACKGROUND
    hit = raster.index >= 0
    col = colors[raster.index[hit]].astype(np.float32)
    if shade is not None:
        col *= shade[hit][:, None]
    img[hit] = np.clip(np.round(col), 0, 255).astype(np.uint8)
    return img


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font only
        return ImageFont.load_default()


def _legend_image(legend: list[tuple[str, tuple[int, int, int]]], height: int, font_px: int):
    """A Pillow image with one swatch + name per legend entry, in as many columns as needed."""
    from PIL import Image, ImageDraw

    font = _font(font_px)
    row = int(font_px * 1.6)
    sw = int(font_px * 1.1)
    pad = font_px
    per_col = max(1, (height - 2 * pad) // row)
    ncol = max(1, math.ceil(len(legend) / per_col))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((probe.textlength(str(name), font=font) for name, _ in legend), default=0)
    col_w = int(sw + pad // 2 + text_w + pad)
    img = Image.new("RGB", (ncol * col_w + pad, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for i, (name, rgb) in enumerate(legend):
        c, r = divmod(i, per_col)
        x, y = pad // 2 + c * col_w, pad + r * row
        rgb = tuple(int(v) for v in rgb)
        draw.rectangle([x, y, x + sw - 1, y + sw - 1], fill=rgb)  # exact colour, no outline
        draw.text((x + sw + pad // 2, y + sw / 2), str(name), fill=(20, 20, 20), font=font, anchor="lm")
    return img


@dataclass
class ColorBar:
    """A vertical colour bar for a heat map: ``vmin``..``vmax`` mapped as :func:`~.ply.heatmap_colors` does."""

    vmin: float
    vmax: float
    label: str = "cosine similarity"


def _colorbar_image(bar: ColorBar, height: int, font_px: int):
    """A Pillow image: the viridis ramp (high at the top) with the range's ends, middle and label."""
    from PIL import Image, ImageDraw

    from .ply import heatmap_colors

    font = _font(font_px)
    pad = font_px
    bar_w, bar_h = int(font_px * 1.4), max(10, height - 4 * pad)
    ticks = [bar.vmax, (bar.vmin + bar.vmax) / 2, bar.vmin]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(probe.textlength(f"{t:.3f}", font=font) for t in ticks)
    label_w = probe.textlength(bar.label, font=font)  # the label above the bar is wider than the ticks
    img = Image.new("RGB", (int(pad + max(bar_w + pad // 2 + text_w, label_w) + pad), height), BACKGROUND)
    ramp = heatmap_colors(np.linspace(1.0, 0.0, bar_h), 0.0, 1.0)  # top row = highest score
    img.paste(Image.fromarray(np.repeat(ramp[:, None, :], bar_w, axis=1)), (pad, 2 * pad))
    draw = ImageDraw.Draw(img)
    draw.text((pad, pad), bar.label, fill=(20, 20, 20), font=font, anchor="lm")
    for k, t in enumerate(ticks):
        y = 2 * pad + round(k * (bar_h - 1) / 2)
        draw.line([pad + bar_w, y, pad + bar_w + pad // 3, y], fill=(20, 20, 20))
        draw.text((pad + bar_w + pad // 2, y), f"{t:.3f}", fill=(20, 20, 20), font=font, anchor="lm")
    return img


def _compose(panels: list[tuple[str | None, np.ndarray]], legend, font_px: int, colorbar: ColorBar | None = None):
    """Side-by-side panels with titles above and one legend (or colour bar) on the right -> Pillow image."""
    from PIL import Image, ImageDraw

    H, W = panels[0][1].shape[:2]
    title_h = int(font_px * 2.0) if any(t for t, _ in panels) else 0
    legend_img = _legend_image(legend, H + title_h, font_px) if legend else None
    if colorbar is not None:
        legend_img = _colorbar_image(colorbar, H + title_h, font_px)
    total_w = W * len(panels) + (legend_img.width if legend_img is not None else 0)
    out = Image.new("RGB", (total_w, H + title_h), BACKGROUND)
    draw = ImageDraw.Draw(out)
    font = _font(int(font_px * 1.2))
    for i, (title, img) in enumerate(panels):
        out.paste(Image.fromarray(img), (i * W, title_h))
        if title:
            draw.text((i * W + W / 2, title_h / 2), title, fill=(0, 0, 0), font=font, anchor="mm")
    if legend_img is not None:
        out.paste(legend_img, (W * len(panels), 0))
    return out


def _save_png(path: str | os.PathLike, image) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=False, compress_level=3)
    return path


def _legend_list(legend) -> list[tuple[str, tuple[int, int, int]]] | None:
    if not legend:
        return None
    return [(str(name), tuple(int(c) for c in np.asarray(rgb).reshape(3))) for name, rgb in legend]


def class_legend(names: list[str], table: np.ndarray, *labelings: np.ndarray,
                 unlabelled: tuple[int, int, int] | None = UNLABELLED) -> list[tuple[str, tuple[int, int, int]]]:
    """Legend entries for every class drawn in any of the panels, in class order.

    Args:
        names: C class names; table: (C, 3) uint8 their colours.
        labelings: one (N,) int array of class indices per panel (negative or >= C: no class).
        unlabelled: colour of the points without a class; an ``"unlabelled"`` entry is added when any
            panel has such points (None: never).
    Returns:
        ``[(name, (r, g, b)), ...]`` for :func:`render_panels`.
    """
    table = np.asarray(table, np.uint8).reshape(-1, 3)
    present = np.zeros(len(names), bool)
    missing = False
    for lab in labelings:
        lab = np.asarray(lab).reshape(-1)
        ok = (lab >= 0) & (lab < len(names))
        present[np.unique(lab[ok])] = True
        missing |= bool((~ok).any())
    out = [(str(names[i]), tuple(int(c) for c in table[i])) for i in np.flatnonzero(present)]
    if missing and unlabelled is not None:
        out.append((UNLABELLED_NAME, tuple(int(c) for c in unlabelled)))
    return out


def render_png(
    path: str | os.PathLike,
    points: np.ndarray,
    colors: np.ndarray,
    legend: list[tuple[str, tuple[int, int, int]]] | None = None,
    view: View = "top",
    title: str | None = None,
    size: tuple[int, int] = (1200, 900),
    cut: Cut = "auto",
    point_radius: int | None = None,
    shade: bool = True,
    colorbar: ColorBar | None = None,
) -> Path:
    """Render a coloured point cloud to a PNG (atomic write).

    Args:
        path: output ``.png``.
        points: (N, 3) float positions, z up.
        colors: (N, 3) uint8 colour per point (e.g. ``label_colors(labels, palette(C))``).
        legend: optional ``[(name, (r, g, b)), ...]`` drawn as swatches right of the image.
        view: ``"top"`` or ``"persp"`` (see :func:`rasterize`).
        title: optional caption above the image.
        size: (W, H) of the point-cloud area in pixels (the legend and title add to it).
        cut: height cut, see :func:`rasterize`.
        point_radius: splat radius in pixels (default: from point density).
        shade: darken depth steps so shapes read in a flat-coloured image.
        colorbar: draw a heat map's colour bar (its score range) on the right instead of a legend.
    Returns:
        The written path.
    """
    return render_panels(
        path, [Panel(title or "", colors)], points, legend, view, size=size, cut=cut,
        point_radius=point_radius, shade=shade, colorbar=colorbar,
    )  # fmt: skip


def render_panels(
    path: str | os.PathLike,
    panels: list[Panel],
    points: np.ndarray,
    legend: list[tuple[str, tuple[int, int, int]]] | None = None,
    view: View = "top",
    size: tuple[int, int] = (900, 700),
    cut: Cut = "auto",
    point_radius: int | None = None,
    shade: bool = True,
    colorbar: ColorBar | None = None,
) -> Path:
    """Render the same points with several colourings side by side (e.g. GT | raw | purified).

    The z-buffer is computed once and reused for every panel, so each extra panel costs only a
    colour lookup. ``size`` is per panel; one legend is drawn at the right.
    """
    if not panels:
        raise InputError(f"{path}: render_panels needs at least one panel")
    points = _check_points(points, None, str(path))
    for p in panels:
        _check_points(points, p.colors, f"{path} (panel {p.title!r})")
    raster = rasterize(points, view=view, size=size, cut=cut, point_radius=point_radius)
    shading = _edge_shade(raster) if shade else None
    images = [(p.title or None, _colorize(raster, np.asarray(p.colors), shading)) for p in panels]
    font_px = max(12, min(size) // 40)
    return _save_png(path, _compose(images, _legend_list(legend), font_px, colorbar))
