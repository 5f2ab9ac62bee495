"""Viewer: output-bundle loading, phrase matching, server-side GUI, and headless Chromium typing a query."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from viz_fixtures import NAMES, make_output

from geopurify.errors import InputError
from geopurify.viz.browser import Browser, BrowserError, find_chromium
from geopurify.viz.ply import heatmap_colors, palette
from geopurify.viz.viewer import (
    MODE_LABELS,
    MODE_QUERY,
    MODE_RAW,
    MODE_RGB,
    cosine_scores,
    load_output,
    match_phrase,
    normalize_phrase,
    serve,
    viser_stdout,
)

# the server tests need the viewer extra; the bundle and phrase tests above them do not
needs_viser = pytest.mark.skipif(importlib.util.find_spec("viser") is None,
                                 reason="needs viser: pip install 'geopurify[viewer]'")


def test_load_output_reads_the_bundle(output_dir):
    b = load_output(output_dir)
    assert b.points.shape == (9000, 3) and b.points.dtype == np.float32
    assert b.colors.dtype == np.uint8 and b.labels.dtype == np.int64
    assert b.names == NAMES and b.raw_labels is not None
    assert (b.labels == 1).sum() == 3000 and (b.raw_labels == 1).sum() < 3000
    assert b.features.dtype == np.float16 and b.features.shape == (9000, 8)
    np.testing.assert_array_equal(b.class_colors, palette(2))
    assert b.text.names == NAMES and b.run["scene"] == "toy"


def test_load_output_optional_files_and_names_with_colours(tmp_path):
    out = make_output(tmp_path / "o")
    for f in ("raw_labels.txt", "features.npy", "text_embeddings.npz", "run.json"):
        (out / f).unlink()
    (out / "names.json").write_text(json.dumps({"names": ["a", "b"], "colors": [[1, 2, 3], [4, 5, 6]]}))
    b = load_output(out)
    assert b.raw_labels is None and b.features is None and b.text is None and b.run == {}
    np.testing.assert_array_equal(b.class_colors, [[1, 2, 3], [4, 5, 6]])
    (out / "names.json").unlink()
    assert load_output(out).names == ["class 0", "class 1"]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda o: (o / "points.npy").unlink(), "points.npy: missing"),
        (lambda o: np.savetxt(o / "labels.txt", np.zeros(5), fmt="%d"), "labels.txt: 5 labels but points.npy has 9000"),
        (lambda o: (o / "labels.txt").write_text("1\nchair\n"), "labels.txt: unreadable"),
        (lambda o: np.save(o / "colors.npy", np.zeros((9000, 3))), "colors.npy"),
        (lambda o: np.save(o / "features.npy", np.zeros((10, 8), np.float16)), "features.npy"),
        (lambda o: (o / "names.json").write_text('["floor"]'), "label 1 but only 1 class names"),
        (lambda o: np.savez(o / "text_embeddings.npz", names=np.array(NAMES), embeddings=np.eye(2, 5)), "dim 5"),
    ],
)
def test_load_output_bad_input_names_the_file(tmp_path, mutate, match):
    out = make_output(tmp_path / "o", n_floor=6000, n_chair=3000)
    mutate(out)
    with pytest.raises(InputError, match=match):
        load_output(out)


def test_phrase_normalisation_and_matching():
    assert normalize_phrase("A photo of a Chair.") == "chair"
    assert normalize_phrase("there is a kitchen counter in the scene") == "kitchen counter"
    assert normalize_phrase("  the   Floor ") == "floor"
    names = ["wall", "floor", "chair", "shower curtain", "a photo of a sofa"]
    assert match_phrase("chair", names) == 2
    assert match_phrase("Chairs", names) == 2
    assert match_phrase("a shower curtain in a scene", names) == 3
    assert match_phrase("sofa", names) == 4  # templated names match too
    assert match_phrase("bathtub", names) is None


def test_cosine_scores_matches_naive_and_chunks():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(1001, 16)).astype(np.float16)
    q = rng.normal(size=16)
    ref = (f.astype(np.float64) @ q) / np.linalg.norm(f.astype(np.float64), axis=1) / np.linalg.norm(q)
    np.testing.assert_allclose(cosine_scores(f, q, chunk=100), ref, atol=1e-5)


@needs_viser
def test_server_modes_and_queries(output_dir):
    calls = []

    def encoder(prompts):  # a toy text tower: 'seat' means the chair direction
        calls.append(prompts)
        return np.eye(2, 8, dtype=np.float32)[[1 if "seat" in p else 0 for p in prompts]]

    v = serve(output_dir, port=0, block=False, text_encoder=encoder)
    try:
        assert v.host == "127.0.0.1" and v.port > 0
        b = v.bundle
        np.testing.assert_array_equal(v.cloud.colors, palette(2)[b.labels])
        assert v.modes() == [MODE_LABELS, MODE_RAW, MODE_RGB, MODE_QUERY]
        v.set_mode(MODE_RAW)
        np.testing.assert_array_equal(v.cloud.colors, palette(2)[b.raw_labels])
        v.set_mode(MODE_RGB)
        np.testing.assert_array_equal(v.cloud.colors, b.colors)

        res = v.query("a comfy seat")
        assert calls == [["a comfy seat"]]
        chair = b.labels == 1
        assert res.scores[chair].min() > 0.8 and res.scores[~chair].max() < 0.3
        assert v.mode.value == MODE_QUERY
        np.testing.assert_array_equal(v.cloud.colors, heatmap_colors(res.scores))
        assert "cosine" in v.legend.content and "comfy seat" in v.status.content
    finally:
        v.stop()


@needs_viser
def test_server_without_encoder_uses_text_embeddings(output_dir):
    v = serve(output_dir, port=0, block=False)
    try:
        res = v.query("A photo of a chair.")
        chair = v.bundle.labels == 1
        assert res.scores is not None and res.scores[chair].mean() > 0.9 > res.scores[~chair].max() + 0.5
        assert v.mode.value == MODE_QUERY
        res = v.query("spaceship")
        assert res.scores is None and "not a known class" in v.status.content and "floor" in v.status.content
        # an unknown phrase clears the earlier heat map: "chair"'s picture must not stand for "spaceship"
        assert "heat map cleared" in v.status.content and v.mode.value == MODE_LABELS
        np.testing.assert_array_equal(v.cloud.colors, palette(2)[v.bundle.labels])
        assert MODE_QUERY not in v.legend.content and "cosine" not in v.legend.content
    finally:
        v.stop()


@needs_viser
def test_enter_reads_the_whole_phrase_when_the_last_keys_arrive_late(output_dir):
    """Typing fast then Enter: the submit can reach the server before the box's final value. The query
    must run on what was typed ("chair"), not on the value the server had at the submit ("c")."""
    import threading

    v = serve(output_dir, port=0, block=False)
    try:
        v.ask.value = "c"  # the first keystroke arrived
        late = threading.Timer(0.06, lambda: setattr(v.ask, "value", "chair"))  # the rest arrives after Enter
        late.start()
        v.ask_form.submit()  # what Enter in the box does (fires the form's on_submit)
        late.join()
        assert v.last_query == "chair" and "chair" in v.status.content and v.mode.value == MODE_QUERY
        chair = v.bundle.labels == 1
        np.testing.assert_array_equal(v.cloud.colors, heatmap_colors(v.resolve("chair").scores))
        assert v.resolve("chair").scores[chair].mean() > 0.9
    finally:
        v.stop()


# ---------------------------------------------------------------- headless Chromium: type a query, look


def _near(img: np.ndarray, rgb, tol: int = 12) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).max(-1) <= tol).sum())


def _wait_for(shoot, ok, timeout: float = 30.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        img = shoot()
        if ok(img) or time.monotonic() > deadline:
            return img
        time.sleep(0.5)


def _wait_until(cond, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_viser
def test_browser_screenshots_show_labels_then_heat_map(tmp_path):
    """A person's session in Debian's headless Chromium: load the page, see the labels, click the Ask
    box, type 'chair', click Show heat map, see the heat map; then type 'floor' and press Enter."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (make sysdeps installs it)")
    out = make_output(tmp_path / "out", n_floor=40000, n_chair=20000)
    v = serve(out, port=_free_port(), block=False)
    browser = None
    try:
        try:
            browser = Browser(binary, tmp_path / "profile", size=(1280, 800))
        except BrowserError as exc:
            pytest.skip(f"chromium does not run here: {exc}")
        browser.open(v.url)
        floor_c, chair_c = palette(2)
        labels_img = _wait_for(browser.screenshot, lambda im: _near(im, floor_c) > 2000 and _near(im, chair_c) > 500)
        assert labels_img.std() > 10  # not blank
        assert _near(labels_img, floor_c) > 2000 and _near(labels_img, chair_c) > 500

        # Click into the Ask box and type, key by key; the browser sends the text to the server.
        browser.click(*browser.control_center("Ask"))
        assert browser.evaluate("document.activeElement.tagName") == "INPUT"
        browser.type_text("chair")
        assert browser.input_value("Ask") == "chair"
        _wait_until(lambda: v.ask.value == "chair", "the server to receive the typed phrase")
        assert v.last_query is None and v.mode.value == MODE_LABELS  # typing alone runs nothing

        browser.click(*browser.button_center("Show heat map"))
        _wait_until(lambda: v.last_query == "chair", "the button to run the query on the server")
        assert v.mode.value == MODE_QUERY and "chair" in v.status.content
        chair = v.bundle.labels == 1
        heat = heatmap_colors(v.resolve("chair").scores)
        hi, lo = np.median(heat[chair], axis=0), np.median(heat[~chair], axis=0)  # yellow, dark blue-purple
        assert np.abs(hi - lo).max() > 100
        query_img = _wait_for(browser.screenshot, lambda im: _near(im, hi, 30) > 500 and _near(im, lo, 30) > 2000)
        assert _near(query_img, hi, 30) > 500 and _near(query_img, lo, 30) > 2000
        assert _near(query_img, lo, 30) > _near(query_img, hi, 30)  # the floor is dark, the chair bright
        assert _near(query_img, floor_c) < 0.1 * _near(labels_img, floor_c)  # the labels are gone

        # Replace the phrase and press Enter: the form around the Ask box submits it.
        browser.click(*browser.control_center("Ask"))
        browser.select_all()
        browser.type_text("floor")
        _wait_until(lambda: v.ask.value == "floor", "the server to receive the second phrase")
        browser.press("Enter")
        _wait_until(lambda: v.last_query == "floor", "Enter to run the query on the server")
        floor_img = _wait_for(browser.screenshot, lambda im: _near(im, hi, 30) > 2 * _near(query_img, hi, 30))
        assert _near(floor_img, hi, 30) > 2 * _near(query_img, hi, 30)  # now the floor is the bright part
    finally:
        if browser is not None:
            browser.close()
        v.stop()


@needs_viser
def test_cli_view_prints_the_url_it_serves_on_when_the_port_is_taken(output_dir, monkeypatch, capsys):
    """`geopurify view OUT --port P` with P taken: viser listens on the next port, and the one line the
    command prints names that port, not P (it used to print P before the server had started)."""
    from geopurify.cli import main
    from geopurify.viz.viewer import ViewerServer

    monkeypatch.setattr(ViewerServer, "wait", ViewerServer.stop)  # return at once instead of until Ctrl-C
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["view", str(output_dir), "--port", str(port)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("view:")]  # viser prints a banner
    assert len(lines) == 1 and lines[0].startswith(f"view: serving {output_dir} on http://127.0.0.1:"), lines
    served = int(lines[0].split("http://127.0.0.1:", 1)[1].split()[0])
    assert served != port


@needs_viser
def test_cli_view_ctrl_c_right_after_the_line_stops_with_exit_0(output_dir, monkeypatch):
    """Ctrl-C between the 'view: serving' line and the wait loop: the viewer stops as on any Ctrl-C (it
    exited 130, 'interrupted', when the signal came in that gap: seen in a loaded fresh-clone run)."""
    from geopurify.cli import main
    from geopurify.viz.viewer import ViewerServer

    stopped = []

    def interrupted_on_entry(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(ViewerServer, "wait", interrupted_on_entry)
    real_stop = ViewerServer.stop
    monkeypatch.setattr(ViewerServer, "stop", lambda self: (stopped.append(1), real_stop(self)))
    assert main(["-q", "view", str(output_dir), "--port", str(_free_port())]) == 0
    assert stopped == [1]


@needs_viser
@pytest.mark.parametrize("where", ["wait loop", "before wait"])
def test_cli_view_sigterm_exits_143_after_stopping_the_server(output_dir, monkeypatch, capsys, where):
    """SIGTERM (``kill PID``, a scheduler) stopped `geopurify view` with exit 0, as if it were Ctrl-C: the
    viewer's wait took every KeyboardInterrupt, Terminated too. Now the server is stopped and the command
    exits 143, 'terminated (SIGTERM)', as cli.py's docstring and README's exit-code table say."""
    import viser

    from geopurify.cli import main
    from geopurify.utils.interrupt import Terminated
    from geopurify.viz import viewer as viewer_mod
    from geopurify.viz.viewer import ViewerServer

    stopped = []  # the viser server's own stop, called once
    real_stop = viser.ViserServer.stop
    monkeypatch.setattr(viser.ViserServer, "stop", lambda self: (stopped.append(1), real_stop(self)))

    def terminated(*args):
        raise Terminated

    class MainThreadSleepTerminated:  # viser's threads sleep as before
        def __getattr__(self, name):
            return getattr(time, name)

        def sleep(self, seconds):
            if threading.current_thread() is not threading.main_thread():
                return time.sleep(seconds)
            raise Terminated

    if where == "wait loop":  # the signal's handler raises in the main thread, here in the loop's sleep
        monkeypatch.setattr(viewer_mod, "time", MainThreadSleepTerminated())
    else:
        monkeypatch.setattr(ViewerServer, "wait", terminated)
    assert main(["-q", "view", str(output_dir), "--port", str(_free_port())]) == 143
    assert capsys.readouterr().err.strip().splitlines() == ["geopurify: terminated (SIGTERM)"]
    assert stopped == [1]


@pytest.mark.parametrize("host, match", [("999.1.1.1", "not an IP address"), ("", "not an IP address"),
                                         ("192.0.2.1", "cannot listen on that address")])
def test_view_refuses_a_host_it_cannot_listen_on_instead_of_hanging(output_dir, capsys, host, match):
    """viser retried a bad bind address as a taken port, stopped, and left `view` waiting forever."""
    from geopurify.cli import main

    assert main(["view", str(output_dir), "--host", host]) == 3
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


@pytest.mark.parametrize("level, shown", [(logging.INFO, True), (logging.DEBUG, True), (logging.WARNING, False)])
def test_viser_stdout_is_hidden_only_when_info_logging_is_off(level, shown, capsys):
    """What viser prints (its banner, 'Server stopped') passes through at INFO and is dropped under -q."""
    logger = logging.getLogger("geopurify")
    old = logger.level
    logger.setLevel(level)
    try:
        with viser_stdout():
            print("(viser) banner")
        print("ours")
    finally:
        logger.setLevel(old)
    out = capsys.readouterr().out
    assert ("(viser) banner" in out) == shown and "ours" in out


@needs_viser
def test_cli_view_quiet_prints_only_its_own_line(output_dir):
    """`geopurify -q view OUT`: stdout is the one 'view: serving ...' line, not viser's banner box as well."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "geopurify", "-q", "view", str(output_dir), "--port",
                             str(_free_port())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # a suite run in the background inherits SIGINT ignored, and Python then
                            # installs no KeyboardInterrupt handler: the child gets the default back
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline, lines = time.monotonic() + 60, []
        while time.monotonic() < deadline and not any(ln.startswith("view:") for ln in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        proc.send_signal(signal.SIGINT)  # the viewer stops on Ctrl-C (and viser says so, unless -q)
        out, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    lines += [ln for ln in out.splitlines() if ln.strip()]
    assert proc.returncode == 0, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"view: serving {output_dir} on http://127.0.0.1:"), lines


@needs_viser
def test_legend_names_the_unlabelled_grey(output_dir):
    """labels.txt with -1 (unlabelled, as the bundle format allows): the viewer drew those points dark grey
    but its legend listed only the classes, so the grey patch had no name (render's legend has one)."""
    labels = np.loadtxt(output_dir / "labels.txt", dtype=np.int64)
    labels[:500] = -1
    np.savetxt(output_dir / "labels.txt", labels, fmt="%d")
    v = serve(output_dir, port=0, block=False)
    try:
        html = v.legend_html(MODE_LABELS)
        assert "rgb(40,40,40)" in html and "unlabelled" in html
        assert "unlabelled" not in v.legend_html(MODE_RAW)  # raw labels have no -1 here
    finally:
        v.stop()
