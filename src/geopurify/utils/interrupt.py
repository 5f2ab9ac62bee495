"""Ctrl-C held back while a library's worker threads write into arrays the caller owns."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block with SIGINT held back; a Ctrl-C during it raises KeyboardInterrupt when it ends.

    Why: scipy's ``cKDTree.query(workers=-1)`` runs Python threads that write into its result arrays
    without the GIL. A KeyboardInterrupt in the main thread unwinds the query and frees those arrays
    while the threads still write: the process then dies of a segmentation fault (exit -11) instead of
    exiting 130. Held back here, the query finishes and the interrupt follows at once.

    Outside the main thread, or when SIGINT is not handled by a Python function (ignored, or the
    default action), the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGINT)
    if not callable(old):
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:
        old(signal.SIGINT, None)  # the handler that was there: by default it raises KeyboardInterrupt
