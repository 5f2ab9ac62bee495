"""Atomic file output: write to a temporary name in the same folder, fsync, rename."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ConfigError, DiskFullError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or kill leaves at most a ``.tmp`` file, never a partial ``path``. A full disk raises
    :class:`~geopurify.errors.DiskFullError` (exit 2, one line naming ``path``), the temporary file removed;
    a folder where ``path`` must go, a file where one of its folders must be, or a folder this user may not
    write (or a read-only file system) raise :class:`~geopurify.errors.ConfigError` (exit 3, one line).
    """
    path = Path(path)
    tmp_path = None
    umask = os.umask(0)
    os.umask(umask)
    try:
        tmp_path = _temporary_beside(path)
        yield tmp_path
        # mkstemp makes 0600; outputs get the usual mode. After the block: a writer that replaces the
        # temporary file (safetensors' save_file does) makes a new one with mkstemp's mode again
        os.chmod(tmp_path, 0o666 & ~umask)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.replace(tmp_path, path)
        except OSError as exc:
            _refuse_blocked(path, exc)
            raise
    except (OSError, RuntimeError) as exc:
        if not _disk_full(exc):
            raise
        free = shutil.disk_usage(path.parent).free
        raise DiskFullError(f"{path}: no space left on the device ({free / 2**20:.1f} MiB free); "
                            "free some space or write elsewhere") from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _temporary_beside(path: Path) -> Path:
    """An empty temporary file in ``path``'s folder (made with its parents), or ConfigError (exit 3, one
    line) when something is in the way: a file where a folder must be, a folder where ``path`` must be, a
    folder this user may not write or a read-only file system."""
    if path.is_dir():
        _refuse_blocked(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _refuse_blocked(path, exc)
        raise
    os.close(fd)
    return Path(tmp)


def _refuse_blocked(path: Path, exc: OSError) -> None:
    """Raise ConfigError naming what is in the way of writing ``path`` (or that it may not be written), when
    ``exc`` says so."""
    if exc.errno == errno.EISDIR or path.is_dir():
        raise ConfigError(f"{path}: a folder is in the way of this output file; remove or rename it") from None
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), path.parent)
        raise ConfigError(f"{blocker}: exists and is not a folder, so {path} cannot be written; "
                          "remove or rename it") from None
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise unwritable(path, exc) from None


def unwritable(path: str | os.PathLike, exc: OSError) -> ConfigError:
    """The one line (exit 3) for a folder or file system ``exc`` says may not be written at ``path``."""
    return ConfigError(f"{path}: cannot write there ({os.strerror(exc.errno).lower()}); write the output elsewhere")


def _disk_full(exc: OSError | RuntimeError) -> bool:
    """ENOSPC / EDQUOT, numpy's short write (``tofile``: "N requested and M written", no errno) or
    torch.save's ("unexpected pos N vs M", "file write failed", a RuntimeError)."""
    text = str(exc)
    if isinstance(exc, RuntimeError):
        return "unexpected pos" in text or "file write failed" in text
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return exc.errno is None and "requested and" in text and "written" in text


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Like ``open(path, mode)`` but the file appears only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (numpy scalars and arrays, Paths are converted)."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a ``.npy`` atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, array)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
