"""PNG renders: content checks on synthetic clouds with known answers, and z-buffer vs a naive loop."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from geopurify.errors import InputError
from geopurify.viz.render import BACKGROUND, Panel, rasterize, render_panels, render_png

RED, BLUE, GREEN = (214, 39, 40), (31, 119, 180), (44, 160, 44)


def _grid(x0, x1, y0, y1, z, step=0.02):
    xs, ys = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step))
    return np.c_[xs.ravel(), ys.ravel(), np.full(xs.size, z)].astype(np.float32)


def _count(img: np.ndarray, rgb, tol: int = 0) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).max(-1) <= tol).sum())


def _two_planes():
    left, right = _grid(-2, 0, -1, 1, 0.0), _grid(0, 2, -1, 1, 0.0)
    pts = np.concatenate([left, right])
    cols = np.concatenate([np.tile(RED, (len(left), 1)), np.tile(BLUE, (len(right), 1))]).astype(np.uint8)
    return pts, cols


def test_top_view_two_planes_in_expected_halves(tmp_path):
    pts, cols = _two_planes()
    path = render_png(tmp_path / "top.png", pts, cols, view="top", size=(400, 200))
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (200, 400, 3)  # no title, no legend: exactly the requested size
    left, right = img[:, :195], img[:, 205:]
    assert _count(left, RED) > 0.8 * left.shape[0] * left.shape[1] * 0.9  # ~95 % of the area is cloud
    assert _count(right, BLUE) > 0.8 * right.shape[0] * right.shape[1] * 0.9
    assert _count(left, BLUE, tol=60) == 0 and _count(right, RED, tol=60) == 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_not_blank_and_legend_colours_appear(tmp_path):
    pts, cols = _two_planes()
    legend = [("left", RED), ("right", BLUE), ("unused class", GREEN)]
    path = render_png(tmp_path / "l.png", pts, cols, legend=legend, view="persp", title="toy", size=(500, 400))
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[0] > 400 and img.shape[1] > 500  # title band and legend added
    non_bg = (img != BACKGROUND).any(-1).mean()
    assert non_bg > 0.1
    legend_area = img[:, 500:]
    for rgb in (RED, BLUE, GREEN):  # each swatch drawn in its exact colour (about 12 x 12 px or more)
        assert _count(legend_area, rgb) >= 100
    assert _count(img[:, :500], GREEN) == 0  # green is only in the legend


def test_top_view_cuts_the_ceiling():
    floor, ceiling = _grid(0, 2, 0, 2, 0.0), _grid(0, 2, 0, 2, 2.5)
    pts = np.concatenate([floor, ceiling])
    is_ceiling = np.r_[np.zeros(len(floor), bool), np.ones(len(ceiling), bool)]
    r_auto = rasterize(pts, "top", (200, 200))  # default cut: 75 % of floor-to-top height
    r_none = rasterize(pts, "top", (200, 200), cut=None)
    seen_auto, seen_none = r_auto.index[r_auto.index >= 0], r_none.index[r_none.index >= 0]
    assert len(seen_auto) > 0.8 * 200 * 200 and not is_ceiling[seen_auto].any()
    assert is_ceiling[seen_none].all()  # without the cut the ceiling (nearest to the eye) hides the floor
    r_low = rasterize(pts, "top", (200, 200), cut=0.5)  # explicit height
    assert not is_ceiling[r_low.index[r_low.index >= 0]].any()


def test_persp_occlusion_independent_of_point_order():
    # Two stacked horizontal squares seen from above: the upper one must hide the lower one.
    low, high = _grid(-1, 1, -1, 1, 0.0), _grid(-0.5, 0.5, -0.5, 0.5, 1.0)
    pts = np.concatenate([low, high])
    is_high = np.r_[np.zeros(len(low), bool), np.ones(len(high), bool)]
    for order in (np.arange(len(pts)), np.arange(len(pts))[::-1]):
        r = rasterize(pts[order], "persp", (300, 300), cut=None, elevation=89.0)
        centre = r.index[140:160, 140:160]
        assert (centre >= 0).all() and is_high[order][centre].all()


def test_zbuffer_matches_naive_loop():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-1, 1, (400, 3)).astype(np.float32)
    W = H = 48
    r = rasterize(pts, "persp", (W, H), cut=None, point_radius=1, azimuth=30.0, elevation=20.0)
    # naive reference: same camera maths, per point per offset, keep the smaller depth
    from geopurify.viz.render import _disc, _project_persp

    u, v, depth, _ = _project_persp(pts, (W, H), 30.0, 20.0, 50.0, margin=4)  # rasterize: max(4, min(W, H) // 40)
    best = np.full((H, W), np.inf)
    idx = np.full((H, W), -1)
    for i in range(len(pts)):
        for dx, dy in _disc(1):
            x, y = int(np.floor(u[i])) + dx, int(np.floor(v[i])) + dy
            if 0 <= x < W and 0 <= y < H and depth[i] < best[y, x]:
                best[y, x], idx[y, x] = depth[i], i
    np.testing.assert_array_equal(r.index, idx)
    assert (r.index >= 0).sum() > 100


def test_panels_side_by_side_with_one_legend(tmp_path):
    pts, _ = _two_planes()
    n = len(pts)
    panels = [Panel("GT", np.tile(RED, (n, 1)).astype(np.uint8)),
              Panel("raw", np.tile(BLUE, (n, 1)).astype(np.uint8)),
              Panel("purified", np.tile(GREEN, (n, 1)).astype(np.uint8))]  # fmt: skip
    path = render_panels(tmp_path / "p.png", panels, pts, legend=[("a", (1, 2, 3))], view="top", size=(300, 200))
    img = np.asarray(Image.open(path).convert("RGB"))
    title_h = img.shape[0] - 200
    assert title_h > 0 and img.shape[1] > 900
    body = img[title_h:]
    for k, rgb in enumerate((RED, BLUE, GREEN)):
        part = body[:, k * 300 : (k + 1) * 300]
        assert _count(part, rgb) > 0.5 * part.shape[0] * part.shape[1]
        others = [c for c in (RED, BLUE, GREEN) if c != rgb]
        assert all(_count(part, c, tol=40) == 0 for c in others)
    assert _count(img[:, 900:], (1, 2, 3)) >= 100  # the single legend swatch


def test_bad_input(tmp_path):
    pts, cols = _two_planes()
    with pytest.raises(InputError, match="view"):
        render_png(tmp_path / "x.png", pts, cols, view="side")
    with pytest.raises(InputError, match="uint8"):
        render_png(tmp_path / "x.png", pts, cols.astype(np.float32))
    with pytest.raises(InputError, match="x.png"):
        render_panels(tmp_path / "x.png", [], pts)
    assert not (tmp_path / "x.png").exists()


def test_million_points_in_seconds(tmp_path):
    rng = np.random.default_rng(0)
    n = 1_000_000
    pts = np.c_[rng.uniform(0, 6, n), rng.uniform(0, 4, n), rng.uniform(0, 2.5, n) * (rng.random(n) < 0.3)]
    cols = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    for view in ("top", "persp"):
        t = time.perf_counter()
        render_png(tmp_path / f"{view}.png", pts.astype(np.float32), cols, view=view)
        seconds = time.perf_counter() - t
        assert seconds < 10.0, f"{view}: {seconds:.1f} s for 1M points"


def test_query_png_has_a_colour_bar(output_dir):
    """`query` pictures carry the heat map's scale: a viridis bar, bright (high) at the top."""
    from PIL import Image

    from geopurify import api
    from geopurify.viz.ply import heatmap_colors

    api.query(output_dir, ["chair"])
    img = np.asarray(Image.open(output_dir / "query" / "chair.png").convert("RGB")).astype(int)
    top, bottom = heatmap_colors(np.array([1.0]), 0, 1)[0], heatmap_colors(np.array([0.0]), 0, 1)[0]
    right = img[:, -160:]  # the bar sits right of the cloud
    near = lambda rgb: (np.abs(right - rgb).max(-1) <= 6)  # noqa: E731
    ys_top, ys_bottom = np.nonzero(near(top))[0], np.nonzero(near(bottom))[0]
    assert len(ys_top) > 20 and len(ys_bottom) > 20
    assert np.median(ys_top) < np.median(ys_bottom)


def test_colour_bar_label_is_not_cut_off():
    """The bar's label ("cosine similarity") is wider than its ticks: it ran past the picture's right edge."""
    from geopurify.viz.render import ColorBar, _colorbar_image

    for font_px in (12, 20, 28):
        img = np.asarray(_colorbar_image(ColorBar(-0.087, 0.732), 400, font_px)).astype(int)
        label_rows = img[: 2 * font_px]
        inked = np.nonzero((np.abs(label_rows - np.array(BACKGROUND)).max(-1) > 60).any(0))[0]
        assert len(inked) and inked.max() < img.shape[1] - font_px // 2, (font_px, inked.max(), img.shape[1])


def test_render_color_rgb(output_dir, capsys):
    import json

    from PIL import Image

    from geopurify.cli import main

    (output_dir / "run.json").write_text(json.dumps({"scene": "toy", "status": "complete"}))
    assert main(["render", str(output_dir), "--color", "rgb", "--view", "top"]) == 0
    img = np.asarray(Image.open(output_dir / "render_rgb_top.png").convert("RGB"))
    colors = {tuple(c) for c in np.load(output_dir / "colors.npy")[:2000].tolist()}
    # the picture is made of the points' own colours (random here), not of the two label colours
    pix = {tuple(c) for c in img.reshape(-1, 3)[::7].tolist()}
    assert len(pix & colors) > 200
    assert not (output_dir / "render_top.png").exists()  # the label picture is another file


def _legend_colours(img: np.ndarray, x0: int) -> set[tuple[int, int, int]]:
    """The colours of the legend's swatches: exact colours covering at least 100 pixels right of ``x0``."""
    part = img[:, x0:].reshape(-1, 3)
    cols, counts = np.unique(part, axis=0, return_counts=True)
    return {tuple(int(v) for v in c) for c, k in zip(cols, counts) if k >= 100 and tuple(c) != BACKGROUND}


def test_render_legend_names_every_colour_of_every_panel(output_dir):
    """`render --gt` on a purified output: the GT and raw-fusion panels drew classes the purified labels lost
    (here 'sink', as ScanNet's scene0011 sink did after purification), and the GT's unlabelled points in dark
    grey, but the legend listed only the purified labels' classes: a yellow patch nobody could name."""
    import json

    from geopurify import api
    from geopurify.viz.ply import palette

    names = ["floor", "chair", "sink"]
    (output_dir / "names.json").write_text(json.dumps(names))
    points = np.load(output_dir / "points.npy")
    n = len(points)
    raw = np.loadtxt(output_dir / "raw_labels.txt", dtype=np.int64)
    raw[n - 300 :] = 2  # raw fusion called a few chair points 'sink'; purified labels have no sink
    np.savetxt(output_dir / "raw_labels.txt", raw, fmt="%d")
    gt_dir = output_dir.parent / "gt"  # a Pointcept scene of the same points: floor, chair, sink, unlabelled
    gt_dir.mkdir()
    np.save(gt_dir / "coord.npy", points)
    np.save(gt_dir / "color.npy", np.load(output_dir / "colors.npy"))
    gt = np.where(np.loadtxt(output_dir / "labels.txt", dtype=np.int64) == 0, 1, 4)  # ScanNet-20: floor, chair
    gt[:500], gt[n - 200 :] = -1, 17  # unlabelled; sink
    np.save(gt_dir / "segment20.npy", gt)

    (path,) = api.render(output_dir, gt=gt_dir, view="top")
    img = np.asarray(Image.open(path).convert("RGB"))
    pal = palette(len(names))
    drawn = _legend_colours(img, 3 * 900)  # three 900-px panels, then the legend
    assert {tuple(int(v) for v in pal[c]) for c in range(3)} <= drawn, drawn
    assert (40, 40, 40) in drawn, drawn  # the GT's unlabelled grey has a swatch too


def _room(w: float = 6.0, d: float = 4.0, h: float = 2.5, step: float = 0.05) -> np.ndarray:
    """A floor and four walls, like a scanned room."""
    floor = _grid(0, w, 0, d, 0.0, step)
    zs = np.arange(0, h, step)
    xs, ys = np.arange(0, w, step), np.arange(0, d, step)
    walls = [np.c_[X.ravel(), np.full(X.size, y), Z.ravel()] for y in (0, d) for X, Z in [np.meshgrid(xs, zs)]]
    walls += [np.c_[np.full(Y.size, x), Y.ravel(), Z.ravel()] for x in (0, w) for Y, Z in [np.meshgrid(ys, zs)]]
    return np.concatenate([floor, *walls]).astype(np.float32)


@pytest.mark.parametrize("size", [(900, 700), (700, 900)])
def test_persp_view_fills_the_picture(size):
    """`render --view persp` of a real room (ScanNet scene0011, scene0378, 7-Scenes) drew it as a thumbnail
    in the middle: the camera was fitted to the bounding sphere, and the room covered about half the width
    and a third of the height. Now the projected room spans the picture, less the margin, in one direction."""
    pts = _room()
    r = rasterize(pts, "persp", size)
    ys, xs = np.nonzero(r.index >= 0)
    W, H = size
    margin = max(4, min(W, H) // 40)
    span_x, span_y = (xs.max() - xs.min() + 1) / (W - 2 * margin), (ys.max() - ys.min() + 1) / (H - 2 * margin)
    assert max(span_x, span_y) > 0.95, (span_x, span_y)
    pad = 8  # splats reach up to their radius (at most 8 px) past the projected points
    assert xs.min() >= margin - pad and xs.max() < W - margin + pad and ys.min() >= margin - pad
    assert ys.max() < H - margin + pad
    # centred: the margins left and right (top and bottom) are alike
    assert abs(int(xs.min()) - (W - 1 - int(xs.max()))) <= 0.05 * W
    assert abs(int(ys.min()) - (H - 1 - int(ys.max()))) <= 0.05 * H


def test_render_uses_the_class_colours_of_names_json(output_dir):
    """An output whose names.json carries class colours ({"names": [...], "colors": [...]}, as the viewer
    reads it): `render` drew the default palette instead, so the PNG and the viewer coloured one class
    differently (and the legend matched neither)."""
    import json

    from geopurify import api

    own = [[250, 200, 10], [10, 30, 200]]
    (output_dir / "names.json").write_text(json.dumps({"names": ["floor", "chair"], "colors": own}))
    (path,) = api.render(output_dir, view="top")
    img = np.asarray(Image.open(path).convert("RGB"))
    legend = _legend_colours(img, 2 * 900)  # raw | purified, then the legend
    assert {tuple(c) for c in own} <= legend, legend
    shading_free = img[:, : 2 * 900]
    assert _count(shading_free, own[0]) > 1000 and _count(shading_free, own[1]) > 1000
