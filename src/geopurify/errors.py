"""One error hierarchy; the CLI maps it to exit codes.

Exit codes: 0 ok, 1 bug (unexpected exception), 2 bad input (:class:`InputError`; also a full disk,
:class:`DiskFullError`), 3 bad configuration or missing dependency/weights (:class:`ConfigError`), 130 interrupted.
"""

from __future__ import annotations


class GeoPurifyError(Exception):
    """Base class of every error geopurify raises on purpose."""

    exit_code = 1


class InputError(GeoPurifyError):
    """Bad user data: a missing, truncated or inconsistent file. Exit code 2."""

    exit_code = 2


class FrameError(InputError):
    """One bad frame (bad pose, unreadable image, missing features). Lifting skips and counts it.

    ``reason`` is a short key for the run.json counts, e.g. ``"bad_pose"``, ``"bad_depth"``.
    """

    def __init__(self, message: str, reason: str = "bad_frame") -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(GeoPurifyError):
    """Bad options, a missing optional dependency or missing model weights. Exit code 3."""

    exit_code = 3


class DiskFullError(GeoPurifyError):
    """No space left where an output is written: nothing wrong with the data or the options, but the run
    cannot finish (exit code 2, as an out-of-memory run). The file it was writing is not left behind."""

    exit_code = 2


class MissingDependencyError(ConfigError):
    """An optional package is not installed; the message names the pip extra."""


def missing_dependency(package: str, extra: str | None = None, what: str = "") -> MissingDependencyError:
    """Build the standard one-line error for an optional import that failed.

    >>> str(missing_dependency("viser", "viewer", "the 3D viewer"))
    "the 3D viewer needs the 'viser' package: pip install 'geopurify[viewer]'"
    """
    hint = f"pip install 'geopurify[{extra}]'" if extra else f"pip install {package}"
    what = what or "this feature"
    return MissingDependencyError(f"{what} needs the '{package}' package: {hint}")
