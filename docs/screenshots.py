#!/usr/bin/env python
"""Screenshots of the browser viewer for the README, taken the way a person uses it.

    python docs/screenshots.py OUT_DIR [--dest docs/img] [--query bed]

OUT_DIR is a ``geopurify segment`` output folder (``make demo`` writes ``demo_out/purified``). The
script serves it with the viewer (:func:`geopurify.viz.viewer.serve`), opens the page in Debian's
headless Chromium over the DevTools protocol (:mod:`geopurify.viz.browser`), and writes

* ``DEST/viewer_labels.png``: the room coloured by purified labels, with the legend;
* ``DEST/viewer_query.png``: after clicking the Ask box, typing ``--query`` and clicking
  "Show heat map": the cosine-similarity heat map of that phrase.

Without a text encoder the phrase must name one of the output's classes (text_embeddings.npz).
Needs ``chromium`` (``make sysdeps``); exits 2 without it.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from geopurify.errors import InputError
from geopurify.viz.browser import Browser, BrowserError, find_chromium
from geopurify.viz.ply import heatmap_colors
from geopurify.viz.viewer import MODE_QUERY, ViewerServer, serve

log = logging.getLogger("screenshots")


def set_camera(
    v: ViewerServer, size: tuple[int, int], azimuth: float, elevation: float, fov: float, zoom: float, panel: int
) -> None:
    """Point the viewer's initial camera at the room from above one side (set before the page opens).

    The room's bounding sphere is fitted into the part of the viewport left of the GUI panel.

    Args:
        size: the viewport (width, height) in pixels.
        azimuth: degrees around +z of the camera seen from the room centre (0 = +x, -90 = -y side).
        elevation: degrees above the floor plane.
        fov: vertical field of view, degrees.
        zoom: > 1 moves closer than the fit (the sphere fit leaves margins around a box).
        panel: pixels on the right taken by the GUI panel.
    """
    pts = v.bundle.points[v.subset]
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)  # ignore stray points
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2
    w, h = size
    half_v = math.radians(fov) / 2
    half_h = math.atan(math.tan(half_v) * (w - panel) / h)  # half-width of the free area, as an angle
    dist = radius / math.sin(min(half_v, half_h)) / zoom
    az, el = math.radians(azimuth), math.radians(elevation)
    back = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    right = np.cross(-back, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    # Move the camera right by half the panel, so the room sits in the middle of the free area.
    shift = (panel / 2) / w * 2 * dist * math.tan(half_v) * w / h
    target = centre + shift * right
    cam = v.viser.initial_camera
    cam.fov = math.radians(fov)
    cam.look_at = tuple(float(c) for c in target)
    cam.position = tuple(float(c) for c in target + dist * back)
    cam.up = (0.0, 0.0, 1.0)


def settled_screenshot(browser: Browser, ok, timeout: float = 60.0) -> np.ndarray:
    """A screenshot that passes ``ok`` and equals the one before it (the picture stopped changing)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        img = browser.screenshot()
        if ok(img) and last is not None and np.array_equal(img, last):
            return img
        if time.monotonic() > deadline:
            raise BrowserError(f"the page did not settle on the expected picture in {timeout:.0f} s")
        last = img
        time.sleep(0.5)


def has_colors(img: np.ndarray, colors: np.ndarray, min_pixels: int, tol: int = 10) -> bool:
    """Whether at least ``min_pixels`` pixels lie within ``tol`` of any of ``colors``."""
    px = img.reshape(-1, 3).astype(np.int16)
    hit = np.zeros(len(px), dtype=bool)
    for c in np.unique(np.asarray(colors, dtype=np.int16).reshape(-1, 3), axis=0):
        hit |= np.abs(px - c).max(-1) <= tol
    return int(hit.sum()) >= min_pixels


def wait_until(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise BrowserError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def take(args: argparse.Namespace) -> list[Path]:
    binary = find_chromium()
    if binary is None:
        raise BrowserError("chromium is not installed (make sysdeps, or apt-get install chromium)")
    v = serve(args.out_dir, port=args.port, block=False)
    try:
        set_camera(v, args.size, args.azimuth, args.elevation, args.fov, args.zoom, args.panel)
        if args.point_size:
            v.size.value = args.point_size  # the slider's callback resizes the points
            v.cloud.point_size = args.point_size
        with Browser(binary, size=args.size) as browser:
            browser.open(v.url)
            wait_until(lambda: len(v.viser.get_clients()) > 0, "the page to connect to the viewer")
            browser.control_center("Ask")  # the GUI panel is in place
            browser.move_mouse(5, args.size[1] - 5)

            b = v.bundle
            shown = np.unique(b.labels[v.subset][b.labels[v.subset] >= 0])
            min_px = int(0.02 * args.size[0] * args.size[1])
            labels_img = settled_screenshot(browser, lambda im: has_colors(im, b.class_colors[shown], min_px))

            res = v.resolve(args.query)
            if res.scores is None:
                raise InputError(f"--query {args.query!r}: {res.message.strip('_')}")
            browser.click(*browser.control_center("Ask"))
            browser.type_text(args.query)
            wait_until(lambda: v.ask.value == args.query, "the viewer to receive the typed phrase")
            browser.click(*browser.button_center("Show heat map"))
            wait_until(lambda: v.last_query == args.query, "the viewer to run the query")
            if v.mode.value != MODE_QUERY:
                raise BrowserError(f"the query did not show a heat map: {v.status.content}")
            browser.move_mouse(5, args.size[1] - 5)  # no hover tooltip over the panel
            top = heatmap_colors(res.scores)[res.scores >= np.quantile(res.scores, 0.98)]
            query_img = settled_screenshot(browser, lambda im: has_colors(im, top, min_px // 20, tol=16))
    finally:
        v.stop()

    from PIL import Image

    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, img in (("viewer_labels.png", labels_img), ("viewer_query.png", query_img)):
        Image.fromarray(img).save(dest / name, optimize=True)
        written.append(dest / name)
    return written


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="a geopurify segment output folder (e.g. demo_out/purified)")
    p.add_argument("--dest", default=str(Path(__file__).resolve().parent / "img"), help="where the PNGs go")
    p.add_argument("--query", default="bed", help="the phrase typed into the Ask box (default: bed)")
    p.add_argument("--size", type=_size, default=(1280, 800), help="viewport WxH (default 1280x800)")
    p.add_argument("--azimuth", type=float, default=-60.0, help="camera bearing from the room centre, degrees")
    p.add_argument("--elevation", type=float, default=55.0, help="camera height angle, degrees")
    p.add_argument("--fov", type=float, default=50.0, help="vertical field of view, degrees")
    p.add_argument("--zoom", type=float, default=0.9, help="> 1: closer than fitting the room's bounding sphere")
    p.add_argument("--panel", type=int, default=340, help="pixels on the right covered by the GUI panel")
    p.add_argument("--point-size", type=float, default=None, help="override the viewer's point size (m)")
    p.add_argument("--port", type=int, default=0, help="viewer port (default: any free one)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        for path in take(args):
            print(path)
    except (BrowserError, InputError) as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
