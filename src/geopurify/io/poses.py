"""Pose files in the forms capture tools write, and pairing them to frames.

Forms (detected from the numbers per line; ``#`` lines and a leading non-numeric header line are skipped):

* one 4x4 (or 3x4) matrix per file (ScanNet ``pose/<id>.txt``, 7-Scenes ``frame-*.pose.txt``);
* a trajectory file with 16 numbers per line (a row-major 4x4 per line, e.g. Replica ``traj.txt``);
* 12 numbers per line (a row-major 3x4 per line, KITTI poses);
* TUM ``timestamp tx ty tz qx qy qz qw`` (8 numbers per line);
* several 4x4 matrices stacked in one file (4k rows of 4 numbers).

Pairing a trajectory to frames (:class:`PosePairing`, YAML key ``pose_pairing``):

* ``order``: the k-th pose belongs to the k-th frame (frames in natural name order);
* ``index``: the integer in the frame's file name is the pose's line number, from 0
  (``frame_00120.png`` -> line 120: every n-th frame of a longer trajectory);
* ``timestamp``: the frame's file name is a timestamp (``1305031102.175304.png``), paired to the
  nearest pose stamp within ``pose_tolerance`` seconds;
* ``auto`` (default): ``order`` when there are as many poses as frames; else ``timestamp`` when the
  names are timestamps and the trajectory has stamps; else ``index`` when every name carries a
  distinct integer within the trajectory; else a one-line error naming the choices.

Per-file poses pair by the integer in their names when every frame finds one, else by order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError

PAIRINGS = ("auto", "order", "index", "timestamp")
_NUM = re.compile(r"\d+")
_STAMP = re.compile(r"^\d+\.\d+$")


@dataclass
class PosePairing:
    """How trajectory poses pair to frames.

    Attributes:
        mode: ``auto`` | ``order`` | ``index`` | ``timestamp`` (see the module docstring).
        tolerance: seconds; ``timestamp`` pairs only poses this close to a frame's stamp.
    """

    mode: str = "auto"
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        if self.mode not in PAIRINGS:
            raise ConfigError(f"pose_pairing must be one of {', '.join(PAIRINGS)}, got {self.mode!r}")
        try:
            self.tolerance = float(self.tolerance)
        except (TypeError, ValueError):
            raise ConfigError(f"pose_tolerance must be a number of seconds, got {self.tolerance!r}") from None
        if not self.tolerance > 0:
            raise ConfigError(f"pose_tolerance must be positive, got {self.tolerance}")


@dataclass
class PoseTrack:
    """Poses read from one trajectory file or many per-frame files.

    Attributes:
        poses: (P, 4, 4) float64 camera poses as written (NaN where a file was unreadable).
        sources: P strings naming where each pose came from (file and line), for messages.
        stamps: (P,) float64 timestamps (TUM form), else None.
        form: ``"4x4 per file"``, ``"16 per line"``, ``"12 per line"``, ``"tum"`` or ``"stacked 4x4"``.
        names: P file stems for per-file poses (pairing by name), else None.
    """

    poses: np.ndarray
    sources: list[str]
    stamps: np.ndarray | None
    form: str
    names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.poses)


def quat_to_pose(t: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    """(3,) translation + (4,) quaternion (qx qy qz qw) -> (4, 4) float64. Non-unit quaternions are
    normalised; a zero or non-finite one gives a NaN pose (rejected downstream)."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(q).all() or n < 1e-8 or not np.isfinite(t).all():
        return np.full((4, 4), np.nan)
    x, y, z, w = q / n
    T = np.eye(4)
    T[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    T[:3, 3] = t
    return T


def read_numbers(path: Path) -> tuple[np.ndarray, list[int]]:
    """Rows of numbers of a text file: ((R, C) float64, the 1-based line number of each row).

    Blank and ``#`` lines are skipped, and so is one header line before the first row of numbers;
    commas count as spaces. Raises InputError for ragged rows or text after the header.
    """
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    rows: list[list[float]] = []
    lines: list[int] = []
    header_seen = False
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            if not rows and not header_seen:
                header_seen = True
                continue
            raise InputError(f"{path}:{lineno}: not a row of numbers: {line[:60]!r}") from None
        if rows and len(vals) != len(rows[0]):
            raise InputError(f"{path}:{lineno}: {len(vals)} numbers, but earlier lines have {len(rows[0])}")
        rows.append(vals)
        lines.append(lineno)
    if not rows:
        raise InputError(f"{path}: no numbers")
    return np.asarray(rows, dtype=np.float64), lines


def matrix_pose(m: np.ndarray) -> np.ndarray | None:
    """A (4, 4) pose from a 4x4, a 3x4 or a flat 16/12-number matrix; None for any other shape."""
    if m.size == 16:
        return m.reshape(4, 4).astype(np.float64)
    if m.size == 12:
        return np.vstack([m.reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
    return None


def read_trajectory(path: Path) -> PoseTrack:
    """All poses of one trajectory file (any form of the module docstring)."""
    m, lines = read_numbers(path)
    cols = m.shape[1]
    if cols == 8:
        poses = np.stack([quat_to_pose(r[1:4], r[4:8]) for r in m])
        return PoseTrack(poses, [f"{path} line {ln}" for ln in lines], m[:, 0].copy(), "tum")
    if cols in (16, 12):
        poses = np.stack([matrix_pose(r) for r in m])
        return PoseTrack(poses, [f"{path} line {ln}" for ln in lines], None, f"{cols} per line")
    if cols == 4 and (len(m) == 3 or len(m) % 4 == 0):
        if len(m) <= 4:
            return PoseTrack(matrix_pose(m)[None], [str(path)], None, "4x4 per file")
        poses = m.reshape(-1, 4, 4)
        return PoseTrack(poses, [f"{path} lines {lines[4 * i]}-{lines[4 * i + 3]}" for i in range(len(poses))],
                         None, "stacked 4x4")
    raise InputError(
        f"{path}: {cols} numbers per line; expected a 4x4 matrix, 16 or 12 numbers per line (row-major "
        "pose), or TUM 'timestamp tx ty tz qx qy qz qw'"
    )


def read_pose_files(files: list[Path]) -> PoseTrack:
    """Poses from the files a glob matched: one trajectory file, or one matrix per file.

    A per-frame file that cannot be read gives a NaN pose (the frame is skipped as ``bad_pose``).
    """
    if len(files) == 1:
        return read_trajectory(files[0])
    poses, sources = [], []
    for f in files:
        try:
            m, _ = read_numbers(f)
            pose = matrix_pose(m)
        except InputError:
            pose = None
        poses.append(pose if pose is not None else np.full((4, 4), np.nan))
        sources.append(str(f))
    arr = np.stack(poses) if poses else np.zeros((0, 4, 4))
    return PoseTrack(arr, sources, None, "4x4 per file", names=[Path(f).stem for f in files])


def name_index(name: str) -> int | None:
    """The last integer in a file stem (``frame_00120`` -> 120), or None."""
    hits = _NUM.findall(name)
    return int(hits[-1]) if hits else None


def name_stamp(name: str) -> float | None:
    """The stem as a timestamp (``1305031102.175304`` -> float), or None when it is not one."""
    return float(name) if _STAMP.match(name) else None


@dataclass
class Pairing:
    """Which pose each frame takes: pose (F,) int64 index into the track, -1 = none; ``mode`` as resolved."""

    pose: np.ndarray
    mode: str


def pair_poses(frame_names: list[str], track: PoseTrack, pairing: PosePairing, where: str) -> Pairing:
    """Pair frames (file stems, in frame order) with the poses of ``track``.

    Raises InputError when the chosen (or the only possible) rule cannot pair them, naming the options.
    """
    F, P = len(frame_names), len(track)
    mode = pairing.mode
    idx = [name_index(n) for n in frame_names]
    if track.names is not None:  # per-file poses: by the number in the names, else by order
        if mode in ("auto", "index"):
            by_num = {name_index(n): i for i, n in enumerate(track.names)}
            if None not in by_num and len(by_num) == P and all(i is not None and i in by_num for i in idx):
                return Pairing(np.array([by_num[i] for i in idx], np.int64), "index")
            if mode == "index":
                raise InputError(f"{where}: pose_pairing index, but the frame and pose file names do not share numbers")
        if mode == "timestamp":
            raise InputError(f"{where}: pose_pairing timestamp needs a TUM trajectory (timestamped poses)")
        mode = "order"
    if mode == "auto":
        stamps = [name_stamp(n) for n in frame_names]
        if P == F:
            mode = "order"
        elif track.stamps is not None and F and all(s is not None for s in stamps):
            mode = "timestamp"
        elif F and all(i is not None for i in idx) and len(set(idx)) == F and max(idx) < P:
            mode = "index"
        else:
            raise InputError(
                f"{where}: {P} poses for {F} frames, and the frame names give no way to pair them; set "
                "pose_pairing: order (k-th pose = k-th frame, needs equal counts), index (the number in the "
                "file name is the pose line, from 0) or timestamp (names are timestamps)"
            )
    if mode == "order":
        if P != F:
            raise InputError(
                f"{where}: pose_pairing order, but {P} poses for {F} frames; use pose_pairing: index or timestamp"
            )
        return Pairing(np.arange(F, dtype=np.int64), "order")
    if mode == "index":
        if not F or any(i is None for i in idx):
            bad = next(n for n, i in zip(frame_names, idx) if i is None)
            raise InputError(f"{where}: pose_pairing index, but frame {bad!r} has no number in its name")
        arr = np.array(idx, np.int64)
        out = np.where(arr < P, arr, -1)
        return Pairing(out, "index")
    # timestamp
    if track.stamps is None:
        raise InputError(f"{where}: pose_pairing timestamp needs a TUM trajectory ('timestamp tx ty tz qx qy qz qw')")
    stamps = [name_stamp(n) for n in frame_names]
    if any(s is None for s in stamps):
        bad = next(n for n, s in zip(frame_names, stamps) if s is None)
        raise InputError(f"{where}: pose_pairing timestamp, but frame name {bad!r} is not a timestamp")
    return Pairing(associate(np.array(stamps, np.float64), track.stamps, pairing.tolerance), "timestamp")


def associate(a: np.ndarray, b: np.ndarray, max_diff: float = 0.02) -> np.ndarray:
    """For each stamp in ``a`` the index of the nearest stamp in ``b`` within ``max_diff``, else -1.

    a (n,), b (m,) float64 seconds -> (n,) int64. ``b`` need not be sorted.

    >>> associate(np.array([1.0, 2.0, 3.5]), np.array([0.99, 2.03, 3.49])).tolist()
    [0, -1, 2]
    """
    if len(b) == 0:
        return np.full(len(a), -1, dtype=np.int64)
    order = np.argsort(b, kind="stable")
    bs = b[order]
    pos = np.searchsorted(bs, a).clip(1, len(bs) - 1) if len(bs) > 1 else np.zeros(len(a), np.int64)
    left = (pos - 1).clip(0)
    pick = np.where(np.abs(bs[left] - a) <= np.abs(bs[pos] - a), left, pos)
    out = order[pick].astype(np.int64)
    out[np.abs(bs[pick] - a) > max_diff] = -1
    return out
