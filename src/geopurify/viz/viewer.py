"""Interactive browser viewer of a segmentation output folder ("see and ask"), built on viser.

Output-folder bundle (written by ``geopurify segment``; :func:`load_output` reads it with
:func:`geopurify.outputs.read_output`, the one reader of the format):

=========================  ==========================================================================
``points.npy``             (N, 3) float32 point positions, z up. Required.
``colors.npy``             (N, 3) uint8 RGB of the scan (grey when absent).
``labels.txt``             N lines, one int per point: purified class index into the class names,
                           -1 = unlabelled. Required.
``raw_labels.txt``         optional, same format: labels before purification (enables the toggle).
``features.npy``           optional (N, D) float16 purified features (queries need it).
``names.json``             optional class names: a JSON list of strings, or an object
                           ``{"names": [...], "colors": [[r, g, b], ...]}``.
``text_embeddings.npz``    optional ``names`` (C,) str and ``embeddings`` (C, D) float: phrases are
                           matched against these names when no text encoder is given.
``run.json``               optional run record (shown in the GUI title: scene name, counts).
``instances.json``         optional object instances (``geopurify instances``): an "instances" colour
                           mode and their oriented boxes (a checkbox shows or hides them). The
                           caller reads it (``geopurify view`` does) and passes the InstanceSet.
=========================  ==========================================================================

Class names fall back to ``text_embeddings.npz``'s names, then to ``class 0..C-1``; class colours
fall back to :func:`~geopurify.viz.ply.palette`.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.base import TextEmbeddings
from ..errors import ConfigError, InputError, missing_dependency
from ..outputs import read_output
from ..segment.query import match_phrase, normalize_phrase
from .config import ViewConfig
from .ply import heatmap_colors, instance_colors, label_colors, palette
from .render import UNLABELLED, UNLABELLED_NAME

log = logging.getLogger(__name__)

__all__ = [
    "OutputBundle",
    "load_output",
    "serve",
    "ViewerServer",
    "cosine_scores",
    "normalize_phrase",
    "match_phrase",
    "box_segments",
    "viser_stdout",
]

TextEncoder = Callable[[list[str]], np.ndarray]
#: seconds without a keystroke after which the Ask box's value is taken as the phrase submitted
SUBMIT_SETTLE_S = 0.15
MODE_LABELS, MODE_RAW, MODE_RGB, MODE_QUERY = "purified labels", "raw labels", "RGB", "query heat map"
MODE_INSTANCES = "instances"


@dataclass
class OutputBundle:
    """Everything the viewer shows, loaded from one output folder (see the module docstring).

    points: (N, 3) float32; colors: (N, 3) uint8; labels / raw_labels: (N,) int64 (-1 unlabelled);
    names: C class names; class_colors: (C, 3) uint8; features: (N, D) float16 (memory-mapped) or
    None; text: class-name text embeddings or None; run: the parsed run.json (empty if absent).
    """

    out_dir: Path
    points: np.ndarray
    colors: np.ndarray
    labels: np.ndarray
    names: list[str]
    class_colors: np.ndarray
    raw_labels: np.ndarray | None = None
    features: np.ndarray | None = None
    text: TextEmbeddings | None = None
    run: dict[str, Any] = field(default_factory=dict)
    instances: Any = None  # a geopurify.instances.InstanceSet (from instances.json), or None

    @property
    def num_points(self) -> int:
        return int(len(self.points))


def load_output(out_dir: str | os.PathLike, instances: Any = None) -> OutputBundle:
    """Read a segmentation output folder (layout in the module docstring) through
    :func:`geopurify.outputs.read_output`; an incomplete one (a killed or running segment) is shown
    with a loud warning.

    ``instances``: the folder's :class:`~geopurify.instances.InstanceSet` (``read_instances(out_dir)``),
    checked against the points; None shows no objects.

    Raises:
        InputError: a required file is missing, or a file's shape disagrees with points.npy.
    """
    res = read_output(out_dir, allow_incomplete=True)
    text = res.text_embeddings() if res.text_path.is_file() else None
    class_colors = res.class_colors if res.class_colors is not None else palette(len(res.names))
    if instances is not None and instances.num_points != res.num_points:
        raise InputError(f"{res.path / 'instances.json'}: instances of {instances.num_points} points, "
                         f"not {res.num_points}")
    return OutputBundle(res.path, res.points, res.colors, res.labels, res.names, class_colors, res.raw_labels,
                        res.features, text, res.run, instances)


def cosine_scores(features: np.ndarray, query: np.ndarray, chunk: int = 262_144) -> np.ndarray:
    """Cosine similarity of every feature row with one query, (N,) float32, in row chunks.

    Args:
        features: (N, D) float16/float32 (a memory map is fine: only ``chunk`` rows are in float32).
        query: (D,) float.
    """
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    out = np.empty(len(features), dtype=np.float32)
    for s in range(0, len(features), chunk):
        f = np.asarray(features[s : s + chunk], dtype=np.float32)
        out[s : s + chunk] = (f @ q) / np.maximum(np.linalg.norm(f, axis=1), 1e-12)
    return out


@dataclass
class QueryResult:
    """A resolved phrase: scores (N,) float32 cosine (None when it could not be encoded) and a message."""

    scores: np.ndarray | None
    message: str


#: instances listed in the legend of the instances mode (the rest are counted)
LEGEND_INSTANCES = 40


def _swatch_row(rgb, text: str) -> str:
    """One legend line: a 12 px square in ``rgb`` and ``text`` (already HTML-escaped)."""
    r, g, b = (int(v) for v in rgb)
    return (f'<div style="display:flex;align-items:center;gap:6px;font-size:0.8em">'
            f'<span style="display:inline-block;width:12px;height:12px;background:rgb({r},{g},{b})">'
            f"</span>{text}</div>")  # fmt: skip


_BOX_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def box_segments(instances) -> tuple[np.ndarray, np.ndarray]:
    """Line segments (12 I, 2, 3) float32 of the instances' oriented boxes and their colours (12 I, 2, 3) uint8
    (each box in its instance's colour, as in the instances mode)."""
    edges = np.array(_BOX_EDGES)
    segs = np.concatenate([i.obb.corners()[edges] for i in instances.instances]).astype(np.float32)
    cols = instance_colors(np.array([i.id for i in instances.instances]))
    return segs, np.repeat(np.repeat(cols[:, None, :], 2, axis=1), len(edges), axis=0)


@contextlib.contextmanager
def viser_stdout() -> Iterator[None]:
    """Where what viser prints goes while inside: stdout as usual, or nowhere when the geopurify logger
    is not at INFO (``geopurify -q``).

    Why: viser prints its banner box and 'Server stopped' to stdout with ``rich`` whatever its
    ``verbose`` says, so ``geopurify -q view`` printed them beside its one line. ``rich`` looks up
    ``sys.stdout`` when it prints, so a redirect reaches it.
    """
    if logging.getLogger("geopurify").isEnabledFor(logging.INFO):
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        yield


class ViewerServer:
    """A running viewer: ``.url``, ``.query(phrase)``, ``.set_mode(mode)``, ``.stop()``, ``.wait()``."""

    def __init__(self, bundle: OutputBundle, server: Any, text_encoder: TextEncoder | None, subset: np.ndarray):
        self.bundle = bundle
        self.viser = server
        self.text_encoder = text_encoder
        self.subset = subset  # (M,) int64 indices of the displayed points
        self.host = server.get_host()
        self.port = int(server.get_port())
        self._lock = threading.RLock()  # GUI callbacks may re-enter set_mode
        self._shown = MODE_LABELS
        self._scores: np.ndarray | None = None
        self.last_query: str | None = None  # the phrase of the latest finished query() (GUI or code)
        self._submitted_at = -1e9  # monotonic time the latest submit() finished
        self._pending_submits = 0
        self._stopped = False
        self._build_gui()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- colours -------------------------------------------------------------------------------
    def modes(self) -> list[str]:
        b = self.bundle
        out = [MODE_LABELS] + ([MODE_RAW] if b.raw_labels is not None else []) + [MODE_RGB]
        out += [MODE_INSTANCES] if b.instances is not None else []
        return out + ([MODE_QUERY] if b.features is not None else [])

    def colors_for(self, mode: str) -> np.ndarray:
        """(M, 3) uint8 colours of the displayed points in a mode."""
        b, idx = self.bundle, self.subset
        if mode == MODE_LABELS:
            return label_colors(b.labels[idx], b.class_colors, unlabelled=UNLABELLED)
        if mode == MODE_RAW and b.raw_labels is not None:
            return label_colors(b.raw_labels[idx], b.class_colors, unlabelled=UNLABELLED)
        if mode == MODE_RGB:
            return b.colors[idx]
        if mode == MODE_QUERY and self._scores is not None:
            return heatmap_colors(self._scores)
        if mode == MODE_INSTANCES and b.instances is not None:
            return instance_colors(b.instances.point_instance())[idx]
        raise InputError(f"viewer: mode {mode!r} is not available for {b.out_dir}")

    # --- GUI -----------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        b, srv = self.bundle, self.viser
        pts = b.points[self.subset]
        lo, hi = pts.min(0), pts.max(0)
        centre, extent = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
        srv.scene.set_up_direction("+z")
        srv.initial_camera.look_at = tuple(float(c) for c in centre)
        srv.initial_camera.position = tuple(float(c) for c in centre + np.array([-0.35, -0.6, 0.5]) * extent)
        srv.initial_camera.up = (0.0, 0.0, 1.0)
        # Point size from density: about the mean spacing of points over the floor plan.
        area = max(float((hi[0] - lo[0]) * (hi[1] - lo[1])), 1e-6)
        size = float(np.clip(1.5 * np.sqrt(area / max(len(pts), 1)), 0.003, 0.1))
        self.cloud = srv.scene.add_point_cloud(
            "/scene", points=pts, colors=self.colors_for(MODE_LABELS), point_size=size, point_shading="flat"
        )
        scene = b.run.get("scene_name") or b.run.get("scene") or b.run.get("name")
        title = Path(str(scene)).name if scene else b.out_dir.name  # run.json's scene is a path
        srv.gui.add_markdown(f"**{title}** - {len(b.points):,} points, {len(b.names)} classes")
        self.mode = srv.gui.add_dropdown("Colour by", tuple(self.modes()), initial_value=MODE_LABELS)
        self.size = srv.gui.add_slider("Point size", min=0.001, max=0.1, step=0.001, initial_value=size)
        # A borderless form around the phrase box: Enter in it submits the form (viser >= 1.1).
        with srv.gui.add_form(None) as self.ask_form:
            self.ask = srv.gui.add_text("Ask", initial_value="", hint="a phrase, e.g. 'a chair'; Enter runs it")
        self.ask_button = srv.gui.add_button("Show heat map")
        self.status = srv.gui.add_markdown(self._help())
        self.legend = srv.gui.add_html(self.legend_html(MODE_LABELS))
        self.boxes = None
        if b.instances is not None and len(b.instances):
            self.boxes = srv.scene.add_line_segments("/instances/boxes", *box_segments(b.instances), thickness=0.01)
            self.show_boxes = srv.gui.add_checkbox("Instance boxes", initial_value=True)

            @self.show_boxes.on_update
            def _(_event) -> None:
                self.boxes.visible = bool(self.show_boxes.value)

        @self.mode.on_update
        def _(_event) -> None:
            if self.mode.value == MODE_QUERY and self._scores is None:
                self.status.content = "_Ask a phrase first: there is no heat map to show._"
                self.set_mode(self._shown)
            elif self.mode.value != self._shown:  # ignore the echo of our own set_mode
                self.set_mode(self.mode.value)

        @self.size.on_update
        def _(_event) -> None:
            self.cloud.point_size = float(self.size.value)

        @self.ask_button.on_click
        def _(_event) -> None:
            self.submit()

        @self.ask_form.on_submit
        def _(_event) -> None:
            self.submit()

        @self.ask.on_update
        def _(_event) -> None:
            # keystrokes typed before Enter that reach the server just after it: the phrase meant is
            # the box's whole value, so run it again with what arrived
            with self._lock:
                late = time.monotonic() - self._submitted_at < SUBMIT_SETTLE_S * 2
                changed = self.ask.value.strip() != (self.last_query or "").strip()
            if late and changed and self._pending_submits == 0:
                self.query(self.ask.value)

    def _help(self) -> str:
        b = self.bundle
        if b.features is None:
            return "_No features.npy in this folder: queries are off._"
        if self.text_encoder is not None:
            return "_Type any phrase and press Enter or **Show heat map**._"
        if b.text is not None:
            return f"_No text encoder: phrases must name one of {len(b.text.names)} known classes._"
        return "_No text encoder and no text_embeddings.npz: queries are off._"

    def legend_html(self, mode: str) -> str:
        """HTML for the legend: colour swatches per class, or the heat-map colour bar."""
        if mode == MODE_QUERY and self._scores is not None:
            lo, hi = float(self._scores.min()), float(self._scores.max())
            stops = ", ".join(f"rgb{tuple(int(v) for v in c)}" for c in heatmap_colors(np.linspace(0, 1, 9)))
            return (
                f'<div style="font-size:0.8em"><div style="height:12px;background:linear-gradient(to right,'
                f' {stops})"></div><div style="display:flex;justify-content:space-between">'
                f"<span>{lo:.3f}</span><span>cosine</span><span>{hi:.3f}</span></div></div>"
            )
        if mode == MODE_RGB:
            return ""
        if mode == MODE_INSTANCES:
            insts = self.bundle.instances.instances
            shown = insts[:LEGEND_INSTANCES]
            cols = instance_colors(np.array([i.id for i in shown], np.int64))  # the colours of the instances mode
            rows = [_swatch_row(rgb, f"#{i.id} {html.escape(i.name)} ({i.confidence:.2f})")
                    for i, rgb in zip(shown, cols)]
            if len(insts) > len(shown):
                rows.append(f'<div style="font-size:0.8em">... and {len(insts) - len(shown)} more</div>')
            return "".join(rows)
        labels = self.bundle.labels if mode == MODE_LABELS else self.bundle.raw_labels
        present = np.unique(labels[labels >= 0]) if labels is not None else []
        rows = [_swatch_row(self.bundle.class_colors[c], html.escape(self.bundle.names[c])) for c in present]
        if labels is not None and (labels < 0).any():  # drawn in the unlabelled grey (colors_for)
            rows.append(_swatch_row(UNLABELLED, UNLABELLED_NAME))
        return "".join(rows)

    def set_mode(self, mode: str) -> None:
        """Recolour the cloud (``purified labels``, ``raw labels``, ``RGB``, ``query heat map``)."""
        with self._lock:
            self.cloud.colors = self.colors_for(mode)
            self.legend.content = self.legend_html(mode)
            self._shown = mode
            if self.mode.value != mode:
                self.mode.value = mode

    def resolve(self, phrase: str) -> QueryResult:
        """Scores of the displayed points for a phrase, or why there are none (no GUI change)."""
        b = self.bundle
        phrase = phrase.strip()
        if not phrase:
            return QueryResult(None, "_Type a phrase first._")
        if b.features is None:
            return QueryResult(None, "_No features.npy in this folder: queries are off._")
        if self.text_encoder is not None:
            emb = np.asarray(self.text_encoder([phrase]), dtype=np.float32)
            if emb.ndim != 2 or emb.shape != (1, b.features.shape[1]):
                return QueryResult(None, f"_Text encoder gave {emb.shape}, features are {b.features.shape[1]}-d._")
            query, how = emb[0], "text encoder"
        elif b.text is not None:
            i = match_phrase(phrase, b.text.names)
            if i is None:
                known = ", ".join(b.text.names[:12]) + (" ..." if len(b.text.names) > 12 else "")
                return QueryResult(
                    None, f"_No text encoder, and '{html.escape(phrase)}' is not a known class: {known}_"
                )
            query, how = b.text.embeddings[i], f"class '{b.text.names[i]}'"
        else:
            return QueryResult(None, "_No text encoder and no text_embeddings.npz: cannot encode phrases._")
        scores = cosine_scores(b.features[self.subset] if len(self.subset) < b.num_points else b.features, query)
        msg = f"**{html.escape(phrase)}** ({how}): cosine {scores.min():.3f} .. {scores.max():.3f}"
        return QueryResult(scores, msg)

    def submit(self) -> QueryResult:
        """Run the Ask box's phrase (Enter or the button), reading the box when its typing has settled.

        The browser sends the box's value and the submit as separate messages; the last keystrokes can
        arrive just after the submit, so the value is read once no update came for ``SUBMIT_SETTLE_S``.
        """
        with self._lock:
            self._pending_submits += 1
        try:
            deadline = time.monotonic() + 4 * SUBMIT_SETTLE_S
            while time.monotonic() < deadline and time.time() - self.ask.update_timestamp < SUBMIT_SETTLE_S:
                time.sleep(0.02)
            return self.query(self.ask.value)
        finally:
            with self._lock:
                self._pending_submits -= 1
                self._submitted_at = time.monotonic()

    def query(self, phrase: str) -> QueryResult:
        """Show a phrase as a heat map of cosine similarity (switches to the query mode when it works).

        A phrase that gives no heat map clears the previous one (back to the labels) and says why.
        """
        res = self.resolve(phrase)
        with self._lock:
            if res.scores is not None:
                self._scores = res.scores
                self.set_mode(MODE_QUERY)
            elif self._scores is not None or self._shown == MODE_QUERY:
                self._scores = None  # never leave an earlier phrase's heat map under this one's name
                self.set_mode(MODE_LABELS)
                res = QueryResult(None, res.message + " _(heat map cleared)_")
            self.status.content = res.message
        log.info("query %r: %s", phrase, res.message)
        self.last_query = phrase  # set last, so a waiter sees the query's whole effect
        return res

    def stop(self) -> None:
        """Stop the server; once (a second call, as after wait() raised SIGTERM on, does nothing)."""
        if self._stopped:
            return
        self._stopped = True
        with viser_stdout():  # its 'Server stopped' line, printed before the server thread ends
            self.viser.stop()

    def wait(self) -> None:
        """Block until Ctrl-C, then stop the server. SIGTERM (:class:`~geopurify.utils.interrupt.Terminated`)
        stops the server too and is raised on, so the command exits 143 as any other does."""
        from ..utils.interrupt import Terminated

        try:
            while True:
                time.sleep(0.5)
        except Terminated:
            raise
        except KeyboardInterrupt:
            log.info("stopping the viewer")
        finally:
            self.stop()


def check_host(host: str) -> None:
    """Refuse (ConfigError) an address this machine cannot listen on, before the server starts.

    Why: viser takes any bind error for a taken port and tries the next ones, then stops its server
    thread without telling the caller, which then waits for it forever: a mistyped ``--host`` hung
    ``geopurify view``. A dotted-number address that is not one (``999.1.1.1``) is refused without
    a DNS lookup; a name is resolved; then a socket is bound to the address on a free port.
    """
    import ipaddress
    import socket

    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host or all(c.isdigit() or c in ".:" for c in host):
            raise ConfigError(f"view: --host {host!r} is not an IP address") from None
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"view: --host {host!r}: no such address ({exc})") from None
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(addr)
        except OSError as exc:
            raise ConfigError(f"view: --host {host!r}: cannot listen on that address ({exc.strerror})") from None


def serve(
    out_dir: str | os.PathLike,
    port: int = ViewConfig.port,
    host: str = ViewConfig.host,
    text_encoder: TextEncoder | None = None,
    block: bool = True,
    max_points: int = 2_000_000,
    instances: Any = None,
) -> ViewerServer:
    """Start the viewer on ``http://host:port`` for a segmentation output folder.

    Args:
        out_dir: folder with the files of :func:`load_output`.
        port: TCP port (0 = any free one; if taken, viser tries the next ones).
        host: bind address; localhost only by default (use ``0.0.0.0`` deliberately to share).
        text_encoder: ``f(list[str]) -> (Q, D)`` embeddings in the features' space; when None,
            phrases are matched against the class names of ``text_embeddings.npz``.
        block: serve until Ctrl-C (True) or return the running server at once (False).
        max_points: show at most this many points (a fixed random subset) to keep the browser fluid.
        instances: the objects of ``instances.json`` (an InstanceSet) for the instances mode, or None.
    """
    check_host(host)
    bundle = load_output(out_dir, instances)
    try:
        import viser
    except ImportError:
        raise missing_dependency("viser", "viewer", "the 3D viewer") from None
    n = bundle.num_points
    subset = np.arange(n)
    if n > max_points:
        subset = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
        log.info("showing %d of %d points", max_points, n)
    with viser_stdout():  # its banner box (printed whatever verbose says)
        server = viser.ViserServer(host=host, port=port, verbose=False)
    viewer = ViewerServer(bundle, server, text_encoder, subset)
    log.info("viewer for %s at %s", bundle.out_dir, viewer.url)
    if block:
        viewer.wait()
    return viewer
