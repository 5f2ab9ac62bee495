"""The segment output folder as one type: which files it owns, how it is written, how it is read.

Layout (written by ``geopurify segment``; ``eval``, ``render`` and ``query`` add their files):

=========================  ==========================================================================
``labels.txt``             N lines, one class index per point (into ``names.json``).
``labels.ply``             the points coloured by class, vertex property ``label``.
``features.npy``           (N, D) float16 per-point features (absent with ``--no-features``).
``raw_labels.txt``         fusion-only labels of a purified run.
``points.npy``             (N, 3) float32; ``colors.npy`` (N, 3) uint8.
``names.json``             the C class names (a list, or ``{"names": [...], "colors": [...]}``).
``text_embeddings.npz``    ``names`` (C,), ``embeddings`` (C, D) float32.
``run.json``               written last: ``"status": "complete"`` marks a finished output.
``eval.json``              written by ``eval``; ``render_*.png`` by ``render``; ``query/`` by ``query``;
``instances.json``         and ``instances.ply`` by ``instances`` (:mod:`geopurify.instances.output`).
=========================  ==========================================================================

Writing (:func:`open_writer`): the folder is checked first (not a file, not inside an input, writable),
then locked (a second concurrent writer is refused), then every file the folder owns from an earlier
run is removed (``run.json`` first), so a rerun never leaves stale files under a new ``run.json``.
Every file is written atomically and ``run.json`` last.

Reading (:func:`read_output`): a validated :class:`SegmentOutput`; an incomplete folder (a killed or
running ``segment``) is refused unless ``allow_incomplete``, and then warned about loudly.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, InputError, load_reason
from .utils.atomic import atomic_open, unwritable, write_json, write_npy, write_text

if TYPE_CHECKING:
    from .io.registry import ReadOptions

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
EVAL_FILE = "eval.json"
EVAL_INSTANCES_FILE = "eval_instances.json"
INSTANCES_FILE = "instances.json"
INSTANCES_PLY = "instances.ply"
LOCK_FILE = ".geopurify.lock"
#: files a segment output owns; a rerun removes them all before writing
OWNED_FILES = (
    RUN_FILE, "labels.txt", "labels.ply", "features.npy", "raw_labels.txt", "points.npy", "colors.npy",
    "names.json", "text_embeddings.npz", EVAL_FILE, EVAL_INSTANCES_FILE, INSTANCES_FILE, INSTANCES_PLY,
)
OWNED_GLOBS = ("render_*.png", ".*.tmp")
QUERY_DIR = "query"
#: files that mark a folder as a command's output even without its run.json (a killed run)
COMMAND_MARKERS = {"segment": ("labels.txt", "points.npy"), "train": ("student.safetensors", "checkpoint.pt")}
_NAME_MAX = 255  # bytes per path component on every common file system


class OutputBusyError(ConfigError):
    """Another process is writing into the same output folder."""


@dataclass
class OutputOptions:
    """How a command that reads a segment output (eval, render, query) treats an unfinished one.

    Attributes:
        allow_incomplete: read an output without a complete run.json (a killed or running segment), with a
            loud warning, instead of refusing it.
    """

    allow_incomplete: bool = False


# --------------------------------------------------------------------------- path checks
def check_out_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), what: str = "--out",
                   command: str | None = None) -> Path:
    """Refuse, before any work, an output path that cannot hold a folder of results.

    Refused (ConfigError, exit 3): a component over 255 bytes, an existing file or a dangling symlink,
    a folder equal to or inside one of ``inputs``, a location this user cannot write, and with
    ``command`` (``"segment"``, ``"train"``) a folder that holds another command's output (its run.json
    or the files of :data:`COMMAND_MARKERS`), which this run would mix with.
    """
    out = Path(out)
    for part in out.parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise ConfigError(f"{what} {str(out)[:80]}...: a path component is longer than {_NAME_MAX} bytes")
    if out.is_symlink() and not out.exists():
        raise ConfigError(f"{what} {out}: a dangling symbolic link (to {os.readlink(out)})")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{what} {out}: exists and is not a folder")
    res = out.resolve()
    for inp in inputs:
        if inp is None:
            continue
        ip = Path(inp).resolve()
        # a folder input is refused as the output or its parent; a file input's own folder is refused
        inside = (res == ip or ip in res.parents) if ip.is_dir() else res == ip.parent
        if inside:
            raise ConfigError(f"{what} {out}: is the input {inp} or inside it; write the output somewhere else")
    other = other_command(out, command) if command is not None else None
    if other is not None:
        raise ConfigError(f"{what} {out}: holds the output of `geopurify {other[0]}` ({other[1]}); "
                          f"write the {command} output into another folder")
    if is_locked(out):  # cheap: refuse a second writer before its work, not after
        raise OutputBusyError(
            f"{out}: another geopurify process is writing into this folder; wait for it or use another --out"
        )
    probe = res
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {out}: cannot write there ({probe} is not a writable folder)")
    return out


def other_command(out: str | os.PathLike, command: str) -> tuple[str, str] | None:
    """(the other command, what shows it) when folder ``out`` holds another command's output than
    ``command``'s; None when it holds none or ``command``'s own."""
    out = Path(out)
    if not out.is_dir():
        return None
    theirs = (read_run(out) or {}).get("command")
    if isinstance(theirs, str) and theirs != command:
        return theirs, RUN_FILE
    for other, files in COMMAND_MARKERS.items():
        found = [f for f in files if (out / f).is_file()]
        if other != command and found:
            return other, found[0]
    return None


def check_out_file(path: str | os.PathLike, what: str = "--json") -> Path:
    """Refuse, before any work, an output file path that is a folder or cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a folder; give a file name")
    check_out_path(path.parent, what=what)
    return path


# --------------------------------------------------------------------------- lock
@contextlib.contextmanager
def locked(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the output folder's lock; a second writer gets :class:`OutputBusyError` at once.

    The lock is an ``flock`` on ``.geopurify.lock``, so the kernel drops it when a writer is killed. A folder
    that cannot be written (read-only, or a file in the way) is :class:`ConfigError` (exit 3, one line).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:  # a read-only folder or file system: one line, exit 3, as check_out_path's
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.ENOTDIR):
            raise
        raise unwritable(out_dir, exc) from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock
            pass
        except BlockingIOError:
            raise OutputBusyError(
                f"{out_dir}: another geopurify process is writing into this folder; wait for it or use another --out"
            ) from None
        yield out_dir
    finally:
        os.close(fd)


def is_locked(out_dir: str | os.PathLike) -> bool:
    """Whether some process holds the folder's write lock now."""
    path = Path(out_dir) / LOCK_FILE
    if not path.is_file():
        return False
    try:
        import fcntl
    except ImportError:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- write
@dataclass
class SegmentFiles:
    """What one ``segment`` run leaves in its folder (:meth:`OutputWriter.segment` writes it).

    points (N, 3) float; colors (N, 3) float in [0, 1]; labels (N,) int64 into ``names``;
    class_colors (C, 3) uint8 (the colours of labels.ply); embeddings (C, D) float, the text
    embeddings of ``names``; raw_labels (N,) int64 fusion-only labels or None; features (N, D) or None.
    """

    points: np.ndarray
    colors: np.ndarray
    labels: np.ndarray
    names: list[str]
    class_colors: np.ndarray
    embeddings: np.ndarray
    raw_labels: np.ndarray | None = None
    features: np.ndarray | None = None


class OutputWriter:
    """Writes the files of a segment output atomically: a whole output through :func:`open_writer`
    (run.json last), or the files a later command adds to one (under :func:`locked`)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.written: list[str] = []

    def path(self, name: str) -> Path:
        self.written.append(name)
        return self.out_dir / name

    def text(self, name: str, text: str) -> None:
        write_text(self.path(name), text)

    def labels(self, name: str, labels: np.ndarray) -> None:
        """(N,) int labels as one integer per line."""
        self.text(name, "\n".join(map(str, np.asarray(labels).tolist())) + "\n")

    def npy(self, name: str, array: np.ndarray) -> None:
        write_npy(self.path(name), array)

    def json(self, name: str, obj: Any) -> None:
        write_json(self.path(name), obj)

    def text_embeddings(self, names: list[str], embeddings: np.ndarray) -> None:
        with atomic_open(self.path("text_embeddings.npz"), "wb") as f:
            np.savez(f, names=np.array(names), embeddings=np.asarray(embeddings, np.float32))

    def segment(self, files: SegmentFiles) -> None:
        """Every file of a segment output but run.json, in the dtypes the layout above names."""
        from .io.ply import write_ply

        labels = np.asarray(files.labels, np.int64)
        self.labels("labels.txt", labels)
        if files.raw_labels is not None:
            self.labels("raw_labels.txt", files.raw_labels)
        write_ply(self.path("labels.ply"), files.points, np.asarray(files.class_colors, np.uint8)[labels],
                  extra={"label": labels.astype(np.int32)})
        if files.features is not None:
            self.npy("features.npy", np.asarray(files.features).astype(np.float16))
        self.npy("points.npy", np.asarray(files.points, np.float32))
        self.npy("colors.npy", (np.asarray(files.colors) * 255).round().astype(np.uint8))
        self.json("names.json", list(files.names))
        self.text_embeddings(list(files.names), files.embeddings)

    def query(self, slug: str, points: np.ndarray, scores: np.ndarray, colors: np.ndarray,
              mask: np.ndarray | None = None) -> list[Path]:
        """One phrase's files in ``query/``: ``<slug>.ply`` (the points in ``colors`` (N, 3) uint8, vertex
        property ``score``), ``<slug>.npy`` (scores (N,) as float16), and with ``mask`` (M,) point indices
        ``<slug>_mask.txt``. Returns [ply, npy, png, mask?]: the png path is for the caller's picture."""
        from .io.ply import write_ply

        paths = [self.path(f"{QUERY_DIR}/{slug}.ply"), self.path(f"{QUERY_DIR}/{slug}.npy"),
                 self.out_dir / QUERY_DIR / f"{slug}.png"]
        write_ply(paths[0], points, colors, extra={"score": np.asarray(scores, np.float32)})
        write_npy(paths[1], np.asarray(scores).astype(np.float16))
        mask_path = self.out_dir / QUERY_DIR / f"{slug}_mask.txt"
        if mask is not None:
            self.labels(f"{QUERY_DIR}/{slug}_mask.txt", mask)
            paths.append(mask_path)
        else:  # an earlier run's mask of this phrase would no longer match its new scores
            mask_path.unlink(missing_ok=True)
        return paths

    def finish(self, run: dict[str, Any]) -> None:
        """Write ``run.json`` (``status: complete``): the folder is complete from now on."""
        self.json(RUN_FILE, {"status": "complete", **run})


def write_report(path: str | os.PathLike, doc: dict[str, Any], out_dir: str | os.PathLike | None = None) -> Path:
    """Write a JSON report (``eval.json``, ``eval_instances.json``) atomically; under ``out_dir``'s lock
    when it lands in that output folder, so it cannot race a segment rewriting the folder."""
    path = Path(path)
    if out_dir is not None and path.parent.resolve() == Path(out_dir).resolve():
        with locked(out_dir):
            write_json(path, doc)
    else:
        write_json(path, doc)
    return path


def clear_owned(out_dir: Path) -> list[str]:
    """Remove every file an output owns (run.json first, so the folder reads incomplete at once)."""
    removed = []
    for name in OWNED_FILES:
        p = out_dir / name
        if p.is_file() or p.is_symlink():
            p.unlink()
            removed.append(name)
    for pattern in OWNED_GLOBS:
        for p in sorted(out_dir.glob(pattern)):
            if p.is_file():
                p.unlink()
                removed.append(p.name)
    qdir = out_dir / QUERY_DIR
    if qdir.is_dir():
        for p in qdir.iterdir():
            if p.is_file():
                p.unlink()
        with contextlib.suppress(OSError):
            qdir.rmdir()
        removed.append(QUERY_DIR + "/")
    return removed


#: what an ``instances`` run derives from: instances.json, then what was made from it (removed first)
OBJECTS_GLOB = "*_objects.json"  # ``query --objects`` rankings, in query/


def clear_instances(out_dir: Path) -> list[str]:
    """Remove the files of an earlier ``instances`` run and what was made from it, before a new one writes:
    ``instances.json`` first (an interrupted run then reads as none, never as the old objects beside new
    ``instances.ply``), ``eval_instances.json``, the ``query/*_objects.json`` rankings, ``instances.ply``."""
    removed = []
    for name in (INSTANCES_FILE, EVAL_INSTANCES_FILE):
        p = out_dir / name
        if p.is_file() or p.is_symlink():
            p.unlink()
            removed.append(name)
    qdir = out_dir / QUERY_DIR
    if qdir.is_dir():
        for p in sorted(qdir.glob(OBJECTS_GLOB)):
            if p.is_file():
                p.unlink()
                removed.append(f"{QUERY_DIR}/{p.name}")
    p = out_dir / INSTANCES_PLY
    if p.is_file() or p.is_symlink():
        p.unlink()
        removed.append(INSTANCES_PLY)
    return removed


@contextlib.contextmanager
def open_writer(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[OutputWriter]:
    """Check, lock and clear ``out_dir`` (a segment output), then yield a writer. Call ``writer.finish(run)`` last."""
    out_dir = check_out_path(out_dir, inputs, command="segment")
    with locked(out_dir):
        removed = clear_owned(out_dir)
        if removed:
            log.debug("%s: removed files of an earlier run: %s", out_dir, ", ".join(removed))
        yield OutputWriter(out_dir)


# --------------------------------------------------------------------------- read
@dataclass
class SegmentOutput:
    """A validated segment output folder.

    labels (N,) int64 into ``names``; raw_labels (N,) int64 or None; points (N, 3) float32;
    colors (N, 3) uint8; features (N, D) float16 memory-mapped, or None; run: the run.json dict.
    """

    path: Path
    names: list[str]
    labels: np.ndarray
    points: np.ndarray
    colors: np.ndarray
    raw_labels: np.ndarray | None = None
    features: np.ndarray | None = None
    class_colors: np.ndarray | None = None
    run: dict[str, Any] = field(default_factory=dict)
    complete: bool = True

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def text_path(self) -> Path:
        return self.path / "text_embeddings.npz"

    def text_embeddings(self):
        """The classes' :class:`~geopurify.encoders.base.TextEmbeddings` (``text_embeddings.npz``), checked
        against ``names`` and the features' dimension."""
        from .encoders.text import load_text_embeddings

        te = load_text_embeddings(self.text_path)
        if list(te.names) != list(self.names):
            raise InputError(f"{self.path}: text_embeddings.npz and names.json list different classes")
        if self.features is not None and te.embeddings.shape[1] != self.features.shape[1]:
            raise InputError(f"{self.text_path}: dim {te.embeddings.shape[1]} != features dim {self.features.shape[1]}")
        return te


def read_run(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run.json of a folder, or None when absent or unreadable."""
    p = Path(out_dir) / RUN_FILE
    try:
        run = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def scene_read_options(run: dict[str, Any] | None, scene: str | os.PathLike) -> ReadOptions:
    """How to read ``scene`` so that it has the points of the output whose run.json is ``run`` (for its GT:
    ``render --gt``): the read options the output recorded (``--frame-skip``, ``--max-frames``, ``--voxel-fuse``
    ... decide the cloud fused from depth), the defaults where it recorded none. The layout and reader options
    are kept only for the scene it was made from: another folder of that scene may be of another layout."""
    import dataclasses

    from .io.registry import ReadOptions

    recorded = ((run or {}).get("config") or {}).get("read")
    if not isinstance(recorded, dict):
        return ReadOptions()
    names = {f.name for f in dataclasses.fields(ReadOptions)} - {"before_fusion"}
    kept = {k: v for k, v in recorded.items() if k in names}
    try:
        same = Path(str((run or {}).get("scene", ""))).resolve() == Path(scene).resolve()
    except (OSError, TypeError):
        same = False
    if not same:
        kept.pop("layout", None)
        kept.pop("reader_options", None)
    try:
        return ReadOptions(**kept)
    except (ConfigError, TypeError, ValueError):
        log.warning("%s: run.json's read options %s are not valid here; reading %s with the defaults",
                    (run or {}).get("scene"), kept, scene)
        return ReadOptions()


def is_complete(out_dir: str | os.PathLike) -> bool:
    """An output folder is complete when its run.json says so (written last) and no writer holds it."""
    return _finished(read_run(out_dir)) and not is_locked(out_dir)


def _finished(run: dict | None) -> bool:
    """Whether a run.json (None: none) says its segment finished; it is written last."""
    return bool(run and run.get("status") == "complete")


def require_complete(out_dir: str | os.PathLike, allow_incomplete: bool, run: dict | None = None) -> bool:
    """Whether ``out_dir`` is complete (:func:`is_complete`); an incomplete one is refused (InputError)
    unless ``allow_incomplete``, which reads it with a loud warning. ``run``: its run.json, if read already."""
    out = Path(out_dir)
    run = read_run(out) if run is None else run
    busy = is_locked(out)
    if _finished(run) and not busy:
        return True
    why = "a segment is writing it now" if busy else "no complete run.json: a killed or failed segment"
    if not allow_incomplete:
        raise InputError(f"{out}: incomplete output ({why}); rerun segment, or pass --allow-incomplete")
    # the viewer reads incomplete outputs without the flag (to watch a running segment): name no option
    log.warning("%s: INCOMPLETE output (%s); reading it anyway, so what follows may be partial", out, why)
    return False


def is_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a segment output (complete or not)."""
    p = Path(path)
    return (p / "labels.txt").is_file() or (p / RUN_FILE).is_file()


def read_labels(path: Path, n: int | None) -> np.ndarray:
    """One class index per line of ``path``: ``(N,) int64``, checked against ``n`` points when given."""
    try:
        lab = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    if lab.ndim != 1 or (n is not None and len(lab) != n):
        raise InputError(f"{path}: {lab.shape[0]} labels but points.npy has {n} points")
    return lab


def read_names(path: Path) -> tuple[list[str], np.ndarray | None]:
    """``names.json``: the class names and, when stored, their ``(C, 3) uint8`` colours."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable JSON ({exc})") from None
    colors = None
    if isinstance(obj, dict):
        names, colors = obj.get("names"), obj.get("colors")
    else:
        names = obj
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
        raise InputError(f"{path}: expected a list of class-name strings (or {{'names': [...]}})")
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != (len(names), 3) or colors.min() < 0 or colors.max() > 255:
            raise InputError(f"{path}: 'colors' must be {len(names)} [r, g, b] triples in 0..255")
        colors = colors.astype(np.uint8)
    return names, colors


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({load_reason(exc)})") from None


def read_points(out_dir: str | os.PathLike) -> np.ndarray:
    """(N, 3) float32 ``points.npy`` of an output folder, checked (N > 0, finite), and nothing else of it:
    for readers that need only the points (``evaluate_instances``'s same-scene check). Completeness is
    the caller's (:func:`require_complete`).

    Raises:
        InputError: points.npy missing, unreadable, of another shape, or holding NaN / infinity.
    """
    path = Path(out_dir) / "points.npy"
    if not path.is_file():
        raise InputError(f"{path}: missing (written by `geopurify segment`)")
    points = _load_npy(path)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise InputError(f"{path}: expected (N, 3) points, got {points.shape}")
    if not np.issubdtype(points.dtype, np.number) or not np.isfinite(points).all():
        raise InputError(f"{path}: holds NaN, infinite or non-numeric coordinates")
    return points.astype(np.float32, copy=False)


def read_output(out_dir: str | os.PathLike, allow_incomplete: bool = False, features: bool = False) -> SegmentOutput:
    """Read and cross-check a segment output folder.

    Args:
        allow_incomplete: read a folder without a complete run.json (a killed or running segment),
            with a warning, instead of refusing it.
        features: require ``features.npy`` (``query`` needs it).

    Raises:
        InputError: not an output, incomplete (without ``allow_incomplete``), or files that disagree.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise InputError(f"{out}: not a folder (expected a geopurify segment output)")
    run = read_run(out)
    complete = require_complete(out, allow_incomplete, run)
    for req in ("points.npy", "labels.txt"):
        if not (out / req).is_file():
            raise InputError(f"{out / req}: missing (written by `geopurify segment`)")
    points = read_points(out)
    n = len(points)
    if run and "counts" in run and run["counts"].get("points") not in (None, n):
        raise InputError(f"{out}: run.json counts {run['counts']['points']} points but points.npy has {n}")
    if (out / "colors.npy").is_file():
        colors = _load_npy(out / "colors.npy")
        if colors.shape != (n, 3) or colors.dtype != np.uint8:
            raise InputError(f"{out / 'colors.npy'}: expected ({n}, 3) uint8, got {colors.shape} {colors.dtype}")
    else:
        colors = np.full((n, 3), 160, np.uint8)
    labels = read_labels(out / "labels.txt", n)
    raw = read_labels(out / "raw_labels.txt", n) if (out / "raw_labels.txt").is_file() else None
    feats = None
    if (out / "features.npy").is_file():
        feats = _load_npy(out / "features.npy", mmap=True)
        if feats.ndim != 2 or feats.shape[0] != n:
            raise InputError(f"{out / 'features.npy'}: expected ({n}, D), got {feats.shape}")
    elif features:
        raise InputError(f"{out}: no features.npy (segment without --no-features to query)")
    names, class_colors = None, None
    if (out / "names.json").is_file():
        names, class_colors = read_names(out / "names.json")
    elif (out / "text_embeddings.npz").is_file():
        from .encoders.text import load_text_embeddings

        names = list(load_text_embeddings(out / "text_embeddings.npz").names)
    top = int(max(labels.max(initial=-1), -1 if raw is None else raw.max(initial=-1)))
    if names is None:
        if complete:
            raise InputError(f"{out / 'names.json'}: missing (written by `geopurify segment`)")
        names = [f"class {i}" for i in range(top + 1)]
    if top >= len(names):
        raise InputError(f"{out}: label {top} but only {len(names)} class names")
    return SegmentOutput(out, names, labels, points, colors, raw, feats, class_colors, run or {}, complete)


# --------------------------------------------------------------------------- batches
def scene_pairs(out: str | os.PathLike, scenes: str | os.PathLike, holds: Callable[[Path], bool],
                none_found: str, lacks: Callable[[Path], bool] | None = None) -> list[tuple[Path, Path]]:
    """(output folder, its scene) pairs: ``out`` itself when ``holds(out)``, else every subfolder of ``out``
    that holds one, paired by name with ``scenes/<name>`` (a batch written by ``segment --scenes``).

    ``lacks``: subfolders of a batch that should hold one too (e.g. segment outputs, for ``eval --instances``
    of their ``instances.json``): one that does not is refused, rather than the batch scored on part of
    its scenes.

    Raises:
        InputError: no such folder (``none_found`` says what was looked for), or a ``lacks`` folder of a
            batch that does not hold one.
    """
    out, scenes = Path(out), Path(scenes)
    if holds(out):
        return [(out, scenes)]
    subs = sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    outs = [p for p in subs if holds(p)]
    if not outs:
        raise InputError(f"{out}: {none_found}")
    if lacks is not None:
        missing = [p for p in subs if not holds(p) and lacks(p)]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(f"{missing[0]}{more}: {none_found}; the batch's other {len(outs)} output(s) have "
                             "one, and scoring only those would leave these scenes out")
    return [(o, scenes / o.name) for o in outs]


def scene_list(scenes: Iterable[str | os.PathLike]) -> list[str | os.PathLike]:
    """``scenes`` as a list; refuses (:class:`ConfigError`) a single path given where a list of scenes is
    documented (a string would otherwise be read letter by letter).

    >>> scene_list(("scans/a", "scans/b"))
    ['scans/a', 'scans/b']
    """
    if isinstance(scenes, str | os.PathLike):
        raise ConfigError(f"scene list: expected a list of scene paths, got the single path {str(scenes)!r}; "
                          f"pass [{str(scenes)!r}]")
    try:
        return list(scenes)
    except TypeError:
        raise ConfigError(f"scene list: expected a list of scene paths, got {type(scenes).__name__}") from None


def check_unique_scenes(scenes: list[str]) -> dict[str, Path]:
    """The scenes' paths, by scene; refuses a scene listed twice (``segment`` would write it twice,
    ``train`` would weigh it double).

    Raises:
        ConfigError: the same scene listed twice, by the same or another path.
    """
    paths = {s: Path(str(s).rstrip("/")) for s in scenes}
    if len(paths) != len(scenes):
        dup = sorted({s for s in scenes if scenes.count(s) > 1})
        raise ConfigError(f"scene list: listed more than once: {', '.join(map(str, dup))}")
    resolved: dict[Path, str] = {}
    for s, p in paths.items():
        r = p.resolve()
        if r in resolved:
            raise ConfigError(f"scene list: {s} and {resolved[r]} are the same scene")
        resolved[r] = s
    return paths


def batch_names(scenes: list[str]) -> dict[str, str]:
    """Output folder name per scene of a batch: the scene's folder name, with as many parent folders
    prepended (joined by ``_``) as it takes to make the names unique.

    Raises:
        ConfigError: the same scene listed twice.
    """
    paths = check_unique_scenes(scenes)

    def name(p: Path, depth: int) -> str:
        if depth == 1:
            return p.name
        parts = [x for x in p.resolve().parts if x != os.sep]
        if depth > len(parts):
            raise ConfigError(f"scene list: cannot give {p} an output name of its own; rename its folder")
        return "_".join(parts[-depth:])

    out: dict[str, str] = {}
    depth = {s: 1 for s in scenes}
    while True:
        names = {s: name(paths[s], depth[s]) for s in scenes}
        clash = {s for s in scenes if list(names.values()).count(names[s]) > 1}
        if not clash:
            out = names
            break
        for s in clash:
            depth[s] += 1
    return out


def same_run(out_dir: str | os.PathLike, scene: str, config: dict[str, Any]) -> bool:
    """Whether ``out_dir`` holds a complete output of ``scene`` made with ``config`` (run.json compared)."""
    run = read_run(out_dir)
    if not _finished(run) or is_locked(out_dir):
        return False
    try:
        same_scene = Path(run.get("scene", "")).resolve() == Path(scene).resolve()
    except (OSError, TypeError):
        return False
    mine = {k: v for k, v in config.items() if k != "overwrite"}
    theirs = {k: v for k, v in (run.get("config") or {}).items() if k != "overwrite"}
    if same_scene and mine != theirs:
        log.info("%s: complete but made with another config; redoing it", out_dir)
    return same_scene and mine == theirs
