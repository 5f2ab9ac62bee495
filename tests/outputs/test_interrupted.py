"""A segment stopped by SIGINT (Ctrl-C) or SIGTERM (``kill PID``, a scheduler) while it writes its files:
one line, exit 130 / 143, no temporary file left behind, and a folder that later commands refuse as
incomplete in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _fixtures import write_tiny_scannet
from geopurify.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"

# every atomic write sleeps before its rename (a slow disk), so the signal lands while a file is written
_SLOW_WRITES = textwrap.dedent("""
    import os, sys, time
    from geopurify.cli import main
    fsync = os.fsync
    def slow_fsync(fd):
        fsync(fd)
        time.sleep(0.4)
    os.fsync = slow_fsync
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "geopurify: interrupted"),
                                             (signal.SIGTERM, 143, "geopurify: terminated (SIGTERM)")])
def test_a_signal_while_segment_writes_leaves_an_incomplete_folder_and_no_temporary_file(tmp_path, capsys, sig,
                                                                                          code, line):
    scene = write_tiny_scannet(tmp_path)
    out = tmp_path / "out"
    assert main(["-q", "segment", str(scene), "--no-purify", "--out", str(out)]) == 0  # an earlier output
    runner = tmp_path / "runner.py"
    runner.write_text(_SLOW_WRITES)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(runner), "-q", "segment", str(scene), "--no-purify", "--no-features", "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a background suite ignores SIGINT
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not list(out.glob(".*.tmp")):
        time.sleep(0.01)
    assert proc.poll() is None, f"segment ended before it wrote a file: {proc.stderr.read()}"
    proc.send_signal(sig)
    err = proc.communicate(timeout=240)[1]
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [line]
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
    assert not (out / "run.json").exists() and not (out / "features.npy").exists()  # nothing of the earlier run
    capsys.readouterr()
    assert main(["-q", "render", str(out)]) == 2
    assert "incomplete output" in capsys.readouterr().err
