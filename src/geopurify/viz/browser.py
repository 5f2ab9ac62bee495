"""Drive headless Chromium over the DevTools protocol: load a page, click, type, take screenshots.

A minimal Chrome DevTools Protocol (CDP) client over the ``websockets`` package (a viser dependency),
used by the viewer test and ``docs/screenshots.py`` to use the viewer the way a person does: the
mouse clicks a GUI control at its on-screen position and the keyboard types into it.

Example::

    with Browser(find_chromium(), profile_dir, size=(1280, 800)) as b:
        b.open(viewer.url)
        b.wait_for("document.querySelector('canvas') !== null")
        b.click(*b.control_center("Ask"))
        b.type_text("a chair")
        b.click(*b.button_center("Show heat map"))
        png = b.screenshot_png()
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Browser", "BrowserError", "find_chromium"]


class BrowserError(RuntimeError):
    """Chromium could not be started or driven (missing binary, no DevTools endpoint, a CDP error)."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or None (Debian: ``apt-get install chromium``)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


# Runs before any page script: hide the WebGL renderer string so viser's "Software WebGL rendering
# detected" notification (true, and irrelevant, for a headless SwiftShader browser) stays away.
_HIDE_SOFTWARE_GL = """
(() => {
  for (const C of [self.WebGLRenderingContext, self.WebGL2RenderingContext]) {
    if (!C) continue;
    const get = C.prototype.getExtension;
    C.prototype.getExtension = function (name) {
      return name === "WEBGL_debug_renderer_info" ? null : get.call(this, name);
    };
  }
})();
"""

# Centre of the input of a labelled viser GUI control ({x, y}) or null while it is not there or not
# the topmost element at its centre. viser renders plain DOM (React + Mantine, no shadow roots):
# <label>Ask</label> and its <input> share one flex row.
_CONTROL_JS = """
((label) => {
  for (const lab of document.querySelectorAll("label")) {
    if (lab.textContent.trim() !== label) continue;
    let row = lab.parentElement;
    while (row && !row.querySelector("input, textarea")) row = row.parentElement;
    const el = row && row.querySelector("input, textarea");
    if (!el) continue;
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2, hit = document.elementFromPoint(x, y);
    if (r.width > 0 && r.height > 0 && hit && (hit === el || el.contains(hit))) return {x, y};
  }
  return null;
})(%s)
"""

_BUTTON_JS = """
((text) => {
  for (const el of document.querySelectorAll("button")) {
    if (el.textContent.trim() !== text || el.disabled) continue;
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2, hit = document.elementFromPoint(x, y);
    if (r.width > 0 && r.height > 0 && hit && (hit === el || el.contains(hit))) return {x, y};
  }
  return null;
})(%s)
"""

_KEYS = {  # key -> (code, windowsVirtualKeyCode, text)
    "Enter": ("Enter", 13, "\r"),
    "Tab": ("Tab", 9, ""),
    "Escape": ("Escape", 27, ""),
    "Backspace": ("Backspace", 8, ""),
}


class Browser:
    """Headless Chromium with a DevTools websocket: ``open``, ``evaluate``, ``click``, ``type_text``, ``screenshot``.

    Args:
        binary: the chromium executable (see :func:`find_chromium`).
        profile: an empty folder for the browser profile (a temporary one when None).
        size: viewport (width, height) in CSS pixels; screenshots have exactly this size.
        hide_software_gl_warning: keep viser's "Software WebGL rendering detected" toast away.
        timeout: seconds to wait for the browser to start and for each DevTools answer.

    Raises:
        BrowserError: chromium did not start or did not open its DevTools endpoint.
    """

    def __init__(
        self,
        binary: str,
        profile: str | Path | None = None,
        size: tuple[int, int] = (1280, 800),
        hide_software_gl_warning: bool = True,
        timeout: float = 30.0,
    ):
        self.timeout = timeout
        self.size = size
        self.ws: Any = None
        self._tmp = None
        if profile is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="geopurify-chromium-", ignore_cleanup_errors=True)
            profile = self._tmp.name
        profile = Path(profile)
        profile.mkdir(parents=True, exist_ok=True)
        flags = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                 "--remote-debugging-port=0", "--remote-allow-origins=*",
                 f"--window-size={size[0]},{size[1]}", "about:blank"]  # fmt: skip
        try:
            self.proc = subprocess.Popen(  # its own process group, so close() ends its helpers too
                [binary, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
        except OSError as exc:
            self.close()
            raise BrowserError(f"{binary}: cannot start ({exc})") from None
        try:
            self._connect(profile / "DevToolsActivePort")
            self.call("Page.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                      deviceScaleFactor=1, mobile=False)  # fmt: skip
            if hide_software_gl_warning:
                self.call("Page.addScriptToEvaluateOnNewDocument", source=_HIDE_SOFTWARE_GL)
        except BaseException:
            self.close()
            raise

    def _connect(self, port_file: Path) -> None:
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with code {self.proc.returncode} before DevTools started")
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium did not open its DevTools endpoint in {self.timeout:.0f} s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        url = f"http://127.0.0.1:{port}/json/list"
        from websockets.sync.client import connect

        try:
            pages = json.load(urllib.request.urlopen(url, timeout=self.timeout))
            ws_url = next((p["webSocketDebuggerUrl"] for p in pages if p.get("type") == "page"), None)
            if ws_url is None:
                raise BrowserError(f"chromium has no page target ({url})")
            self.ws = connect(ws_url, max_size=None, open_timeout=self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BrowserError(f"cannot reach chromium's DevTools at {url}: {exc}") from None
        self._id = 0

    # --- protocol ------------------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> dict:
        """Send one CDP command and return its result (events in between are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + max(self.timeout, 60.0)
        while True:
            msg = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression in the page (JSON-serialisable values only)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"javascript error: {res['exceptionDetails'].get('text')} in {expression[:80]!r}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.2) -> Any:
        """Poll a JavaScript expression until it is truthy; its value, or BrowserError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout:.0f} s waiting for {expression.strip()[:120]!r}")
            time.sleep(interval)

    def open(self, url: str, timeout: float = 30.0) -> None:
        """Navigate to a URL and wait until the document has loaded."""
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href.startsWith({json.dumps(url.rstrip('/'))}) && "
                      "document.readyState === 'complete'", timeout)  # fmt: skip

    # --- what a person does --------------------------------------------------------------------
    def click(self, x: float, y: float) -> None:
        """Move the mouse to (x, y) CSS pixels and click the left button."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def move_mouse(self, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def type_text(self, text: str) -> None:
        """Type text into the focused element, one key press per character."""
        for ch in text:
            self.call("Input.dispatchKeyEvent", type="keyDown", key=ch, text=ch, unmodifiedText=ch)
            self.call("Input.dispatchKeyEvent", type="keyUp", key=ch)

    def press(self, key: str) -> None:
        """Press and release a named key (``Enter``, ``Tab``, ``Escape``, ``Backspace``)."""
        code, vk, text = _KEYS[key]
        down = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
        self.call("Input.dispatchKeyEvent", type="keyDown", **down, **({"text": text} if text else {}))
        self.call("Input.dispatchKeyEvent", type="keyUp", **down)

    def select_all(self) -> None:
        """Ctrl+A in the focused element (so that typing replaces its text)."""
        self.call("Input.dispatchKeyEvent", type="keyDown", key="a", code="KeyA", modifiers=2,
                  windowsVirtualKeyCode=65, commands=["selectAll"])  # fmt: skip
        self.call("Input.dispatchKeyEvent", type="keyUp", key="a", code="KeyA", modifiers=2, windowsVirtualKeyCode=65)

    # --- viser GUI -----------------------------------------------------------------------------
    def control_center(self, label: str, timeout: float = 30.0) -> tuple[float, float]:
        """On-screen centre of the text/number input of the viser GUI control labelled ``label``."""
        return self._settled(_CONTROL_JS % json.dumps(label), timeout)

    def button_center(self, text: str, timeout: float = 30.0) -> tuple[float, float]:
        """On-screen centre of the (enabled) button whose text is ``text``."""
        return self._settled(_BUTTON_JS % json.dumps(text), timeout)

    def _settled(self, expression: str, timeout: float) -> tuple[float, float]:
        """A position that stopped moving (the GUI panel slides and grows while it fills in)."""
        deadline = time.monotonic() + timeout
        seen: list[tuple[float, float]] = []
        while True:
            p = self.wait_for(expression, max(deadline - time.monotonic(), 0.1))
            seen.append((round(float(p["x"]), 1), round(float(p["y"]), 1)))
            if len(seen) >= 3 and len(set(seen[-3:])) == 1:  # still for half a second
                return seen[-1]
            if time.monotonic() > deadline:
                raise BrowserError(f"an element kept moving for {timeout:.0f} s: {expression.strip()[:120]!r}")
            time.sleep(0.25)

    def input_value(self, label: str) -> str | None:
        """What the input of the control labelled ``label`` shows now (None if there is none)."""
        js = _CONTROL_JS.replace("return {x, y};", "return el.value;")
        return self.evaluate(js % json.dumps(label))

    # --- pictures ------------------------------------------------------------------------------
    def screenshot_png(self) -> bytes:
        """The viewport as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def screenshot(self) -> np.ndarray:
        """The viewport as an (H, W, 3) uint8 RGB array."""
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(self.screenshot_png())).convert("RGB"))

    # --- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - closing a dead socket is fine
                pass
            self.ws = None
        proc = getattr(self, "proc", None)
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)  # the browser and its renderer/GPU helper processes
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if self._tmp is not None:
            for _ in range(10):  # helpers may still be flushing the profile for a moment
                shutil.rmtree(self._tmp.name, ignore_errors=True)
                if not os.path.exists(self._tmp.name):
                    break
                time.sleep(0.2)
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
