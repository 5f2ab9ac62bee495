"""Progress bars and the log lines written while one is on screen."""

from __future__ import annotations

import logging
import sys


class BarSafeHandler(logging.StreamHandler):
    """A StreamHandler that clears the progress bars on its stream before a line and redraws them after,
    so a warning never lands glued to the end of a bar (``... 1/3 [00:02<00:04]ERROR ...``)."""

    def emit(self, record: logging.LogRecord) -> None:
        if "tqdm" not in sys.modules:  # no bar can be on screen: tqdm is imported by whatever draws one
            super().emit(record)
            return
        from tqdm import tqdm

        with tqdm.external_write_mode(file=self.stream):
            super().emit(record)


_quiet = False


def set_quiet(quiet: bool) -> None:
    """Hide every progress bar from now on (``geopurify -q``: warnings and errors only)."""
    global _quiet
    _quiet = bool(quiet)


def bar_disable() -> bool | None:
    """tqdm's ``disable=``: True under ``-q``, else None (tqdm then hides the bar when stderr is not a terminal)."""
    return True if _quiet else None
