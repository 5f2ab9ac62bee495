"""Interrupts: Ctrl-C held back while a library's worker threads write into arrays the caller owns, and
SIGTERM (``kill PID``, a scheduler stopping a job) raised as an interrupt so a run stops as cleanly as on Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: the signals a run stops on, and so the ones held back during a threaded library call
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by :func:`terminate_as_interrupt`'s handler.

    A KeyboardInterrupt, so every place that stops cleanly on Ctrl-C (``finally`` blocks removing a
    temporary file, the viewer's wait) does the same on SIGTERM; the CLI tells the two apart by type.
    """


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Run the block with SIGTERM raising :class:`Terminated` instead of killing the process at once.

    Why: SIGTERM's default action ends the process where it stands, without running ``finally`` blocks:
    the temporary file being written stays behind and the command says nothing. Raised as an exception,
    it unwinds as Ctrl-C does. Outside the main thread, or when SIGTERM already has a handler or is
    ignored, the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block with SIGINT (and SIGTERM, when handled) held back; one that came during it is
    raised when it ends.

    Why: scipy's ``cKDTree.query(workers=-1)`` runs Python threads that write into its result arrays
    without the GIL. A KeyboardInterrupt in the main thread unwinds the query and frees those arrays
    while the threads still write: the process then dies of a segmentation fault (exit -11) instead of
    exiting 130. Held back here, the query finishes and the interrupt follows at once.

    Outside the main thread, or for a signal not handled by a Python function (ignored, or the
    default action), the block runs unchanged for that signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
    held = [s for s, h in old.items() if callable(h)]
    caught: list[int] = []
    for s in held:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s in held:
            signal.signal(s, old[s])
    if caught:
        old[caught[0]](caught[0], None)  # the handler that was there: by default it raises KeyboardInterrupt
