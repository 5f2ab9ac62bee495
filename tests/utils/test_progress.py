"""Progress bars and log lines on stderr: a warning during a bar starts on a line of its own."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

_CHILD = textwrap.dedent("""
    import argparse, logging, sys
    from tqdm import tqdm
    from geopurify.cli import _setup_logging
    _setup_logging(argparse.Namespace(verbose=False, quiet=False))
    bar = tqdm(total=3, desc="scenes", disable=False, file=sys.stderr)  # as on a terminal
    bar.update(1)
    logging.getLogger("geopurify.api").error("scene0001_00: failed: bad PLY")
    bar.update(2)
    bar.close()
""")


def test_a_log_line_during_a_progress_bar_starts_on_its_own_line():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    err = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                         timeout=120).stderr
    assert "ERROR geopurify.api: scene0001_00: failed: bad PLY" in err, err
    before = err[: err.index("ERROR geopurify.api")]
    assert re.split(r"[\r\n]", before)[-1].strip() == "", f"glued to the bar: {before[-80:]!r}"
    assert "3/3" in err[err.index("ERROR"):]  # the bar goes on below the line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_hides_the_progress_bars_a_terminal_shows(tmp_path, monkeypatch):
    from _fixtures import write_tiny_scannet
    from geopurify.cli import main
    from geopurify.utils import progress

    monkeypatch.setattr(progress, "_quiet", False)  # and back to it after the test's -q run
    scene = write_tiny_scannet(tmp_path)
    shown = {}
    for flags in ([], ["-q"]):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)  # tqdm draws on stderr when it is a terminal
        assert main([*flags, "segment", str(scene), "--no-purify", "--out", str(tmp_path / "out")]) == 0
        shown[" ".join(flags)] = "lift 1/3" in terminal.getvalue()
    assert shown == {"": True, "-q": False}


_LEVELS = textwrap.dedent("""
    import argparse, logging
    from geopurify.cli import _setup_logging
    _setup_logging(argparse.Namespace(verbose={verbose}, quiet=False))
    logging.getLogger("torch._subclasses.fake_tensor").info("a library's INFO line")
    logging.getLogger("torch").warning("a library's warning")
    logging.getLogger("geopurify.api").info("our INFO line")
    logging.getLogger("geopurify.api").debug("our DEBUG line")
""")


def test_other_libraries_log_only_warnings_unless_verbose():
    """The CLI set the root logger to INFO, so torch's INFO lines (e.g. at exit after a Ctrl-C) showed."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    run = [sys.executable, "-c"]
    err = subprocess.run([*run, _LEVELS.format(verbose=False)], env=env, capture_output=True, text=True,
                         timeout=120).stderr
    assert "our INFO line" in err and "a library's warning" in err, err
    assert "a library's INFO line" not in err and "our DEBUG line" not in err, err
    err = subprocess.run([*run, _LEVELS.format(verbose=True)], env=env, capture_output=True, text=True,
                         timeout=120).stderr
    assert "a library's INFO line" in err and "our DEBUG line" in err, err
