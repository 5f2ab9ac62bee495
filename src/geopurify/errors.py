"""One error hierarchy; the CLI maps it to exit codes.

Exit codes: 0 ok, 1 bug (unexpected exception), 2 bad input (:class:`InputError`; also a full disk,
:class:`DiskFullError`), 3 bad configuration or missing dependency/weights (:class:`ConfigError`), 130 interrupted.
"""

from __future__ import annotations

import pickle
import re


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


#: How torch.load / np.load say they refused a file because reading it needs pickle. Their text goes on to
#: advise switching the guard off (``weights_only=False``, ``allow_pickle=True``), which would let a crafted
#: file run code: geopurify never relays it (:func:`load_reason`).
_PICKLE_SIGNS = ("weights_only", "allow_pickle", "Python objects in dtype", "arbitrary code", "Object arrays")


def needs_pickle(exc: BaseException) -> bool:
    """Whether ``exc`` (from ``torch.load(weights_only=True)`` or ``np.load(allow_pickle=False)``) says the
    file would need pickle to load. torch also raises this for files too broken to tell."""
    return isinstance(exc, pickle.UnpicklingError) or any(s in str(exc) for s in _PICKLE_SIGNS)


def pickle_refusal(exc: BaseException) -> str:
    """Why a file that :func:`needs_pickle` is not loaded, without the loader's advice on loading it anyway."""
    text = str(exc)
    named = re.search(r"GLOBAL (\S+)", text)
    why = "loading it would need pickle, which could run code"
    if "TorchScript" in text:
        return f"a TorchScript archive: {why}"
    return f"{why}; it names {named.group(1)}" if named else why


def load_reason(exc: BaseException, limit: int = 200) -> str:
    """One line saying why a file did not load, for a message: the first line of ``exc``, or, when the file
    would need pickle (:func:`needs_pickle`), that it is refused as it could run code, without the loader's
    advice on how to load it anyway.

    >>> load_reason(ValueError("Object arrays cannot be loaded when allow_pickle=False"))
    'refused: loading it would need pickle, which could run code'
    """
    if needs_pickle(exc):
        return f"refused: {pickle_refusal(exc)}"
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
