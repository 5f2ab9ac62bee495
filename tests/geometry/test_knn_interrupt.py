"""Ctrl-C during the threaded KD-tree query exits 130 instead of crashing the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from geopurify.utils.interrupt import deferred_interrupt

SRC = Path(__file__).resolve().parents[2] / "src"

_CHILD = textwrap.dedent("""
    import os, signal, sys, threading
    import numpy as np
    from geopurify.geometry.knn import knn
    from scipy.spatial import cKDTree
    # as a terminal gives it: a job started in the background by a script inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pts = np.random.default_rng(0).random((120_000, 3))
    tree = cKDTree(pts)
    knn(pts, pts[:1000], 8, tree)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        for _ in range(50):
            knn(pts, pts, 64, tree)
    except KeyboardInterrupt:
        junk = [np.ones(1 << 20) for _ in range(40)]  # reuse what the query freed
        sys.exit(130)
    sys.exit(3)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_knn_exits_130_not_a_crash():
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, timeout=120)
    assert res.returncode == 130, (res.returncode, res.stderr.decode()[-2000:])


@pytest.fixture
def sigint_handled():
    """SIGINT raising KeyboardInterrupt, as under a terminal (a background job inherits it ignored)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_deferred_interrupt_raises_after_the_block(sigint_handled):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            done.append(1)  # reached: the interrupt waits for the block's end
    assert done == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_is_raised_as_terminated_and_held_back_like_ctrl_c():
    from geopurify.utils.interrupt import Terminated, terminate_as_interrupt

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM is handled by someone else in this process")
    done = []
    with pytest.raises(Terminated):
        with terminate_as_interrupt(), deferred_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append(1)  # reached: held back until the block's end, as Ctrl-C is
    assert done == [1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
