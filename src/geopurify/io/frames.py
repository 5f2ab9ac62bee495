"""What every reader does with the frames it finds: one selection rule, one set of checks, lazy Frames.

A reader lists its frames in its own order and describes each as a :class:`FrameCandidate`;
:func:`assemble_frames` picks them with :func:`select_frames` (``frame_skip``, then ``max_frames``) and
checks each the same way (pose, image files, image headers and intrinsics), counting what it skips
with ``scene.skip(reason)``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import pose_problem
from .images import image_size, load_color, load_depth
from .poses import matrix_pose, read_numbers
from .registry import ReadOptions
from .scene import Frame, Scene

log = logging.getLogger(__name__)

DepthLoader = Callable[[Path, "tuple[int, int] | None"], np.ndarray]


def natural_key(s: str) -> list:
    """Sort key that orders the numbers in names by value (``frame-2`` before ``frame-10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def native_scale(options: ReadOptions, native: float) -> float:
    """Depth units per metre: ``options.depth_scale`` when the user gave one (not None), else the layout's own."""
    return float(options.depth_scale) if options.depth_scale is not None else float(native)


def _depth_file(path: Path, hw: tuple[int, int] | None, scale: float, invalid: int | None) -> np.ndarray:
    d = load_depth(path, scale, hw)
    if invalid is not None:  # a raw value that marks no depth (7-Scenes: 65535)
        d[d >= (invalid - 0.5) / scale] = 0
    return d


def depth_file_loader(scale: float, invalid: int | None = None) -> DepthLoader:
    """``f(path, (H, W) | None) -> (H, W) float32`` metres of a 16-bit depth image in ``scale`` units per
    metre (raw ``invalid`` -> 0); picklable, so frames can cross process boundaries."""
    return functools.partial(_depth_file, scale=scale, invalid=invalid)


def select_frames(n: int, options: ReadOptions) -> list[int]:
    """The frame-selection rule of every reader: indices into ``n`` frames in the reader's order.

    Every ``frame_skip``-th frame from the first, then, when more than ``max_frames`` remain, that many
    of them evenly spaced (the first and the last kept). Frames with bad poses or missing images are
    dropped after this, so a skip never shifts which frames are picked.

    >>> select_frames(10, ReadOptions(frame_skip=3)), select_frames(10, ReadOptions(max_frames=3))
    ([0, 3, 6, 9], [0, 4, 9])
    """
    ids = list(range(0, n, max(1, options.frame_skip)))
    if options.max_frames and len(ids) > options.max_frames:
        ids = [ids[i] for i in np.linspace(0, len(ids) - 1, options.max_frames).round().astype(int)]
    return ids


@dataclass
class FrameCandidate:
    """One frame as a reader found it, before :func:`assemble_frames` checks it.

    Attributes:
        frame_id: the frame's id (``features_2d/<id>.npz``).
        pose: (4, 4) camera-to-world, OpenCV axes, or the text file that holds it.
        where: where the pose came from, named when it is unusable (default: the pose file).
        color, depth: the image files; None where the reader found none (skipped as missing_color /
            missing_depth).
        K_color, K_depth: (3, 3) intrinsics (``K_depth`` None: ``K_color``), validated against the images.
        depth_loader: ``f(path, (H, W) | None) -> (H, W) float32`` metres.
        build: for frames not stored as image files (a ``.sens`` stream): ``f(pose) -> Frame``, used
            instead of the files and intrinsics.
    """

    frame_id: str
    pose: np.ndarray | Path
    where: str = ""
    color: Path | None = None
    depth: Path | None = None
    K_color: np.ndarray | None = None
    K_depth: np.ndarray | None = None
    depth_loader: DepthLoader | None = None
    build: Callable[[np.ndarray], Frame] | None = None


def assemble_frames(scene: Scene, n: int, options: ReadOptions,
                    candidate: Callable[[int], FrameCandidate | str]) -> list[Frame]:
    """The frames of a reader: the candidates :func:`select_frames` picks, each checked the same way.

    ``candidate(i)`` describes the i-th of the ``n`` frames (called only for the picked ones), or
    returns the reason to skip it (a string; the reader has said why). Then, in this order: an
    unreadable or non-rigid pose is skipped as ``bad_pose``, a missing colour or depth file as
    ``missing_color`` / ``missing_depth``, an unreadable image header or an image of another size than
    most frames' as ``bad_color`` / ``bad_depth`` (:func:`common_sizes`); each skip is warned about and
    counted with ``scene.skip``.

    Raises:
        InputError: intrinsics that do not fit the images.
    """
    frames: list[Frame | tuple[FrameCandidate, np.ndarray]] = []  # image-file frames wait for common_sizes
    for i in select_frames(n, options):
        c = candidate(i)
        if isinstance(c, str):
            scene.skip(c)
            continue
        if isinstance(c.pose, Path):
            pose = read_pose(scene, c.frame_id, c.pose)
            if pose is None:
                continue
        elif not check_pose(scene, c.pose, c.frame_id, c.where):
            continue
        else:
            pose = c.pose
        if c.build is not None:
            frames.append(c.build(pose))
            continue
        missing = next(((reason, p) for reason, p in (("missing_color", c.color), ("missing_depth", c.depth))
                        if p is None or not p.is_file()), None)
        if missing is not None:
            log.warning("skipping frame %s: %s (%s)", c.frame_id, *missing)
            scene.skip(missing[0])
            continue
        frames.append((c, pose))
    sizes = common_sizes(scene, [f for f in frames if isinstance(f, tuple)])
    out: list[Frame] = []
    n_files = 0
    for f in frames:
        if isinstance(f, tuple):
            c, pose = f
            n_files += 1
            if n_files - 1 in sizes["skipped"]:
                continue
            K_depth = c.K_color if c.K_depth is None else c.K_depth
            f = make_frame(c.frame_id, c.color, c.depth, pose, c.K_color, K_depth, c.depth_loader, sizes)
        out.append(f)
    warn_duplicates(scene, out)
    return out


def _image_digest(frame: Frame) -> bytes | None:
    """A digest of a frame's colour image: its file's bytes, or its pixels for frames not stored as files;
    None when it cannot be read (then it matches nothing)."""
    try:
        path = Path(frame.source)
        data = path.read_bytes() if path.is_file() else np.ascontiguousarray(frame.color()).tobytes()
    except (OSError, InputError):
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


def warn_duplicates(scene: Scene, frames: list[Frame]) -> int:
    """Warn once when frames repeat an earlier frame: the same colour file listed again, or an identical
    pose with an identical image. They are kept (results do not change: such a view counts twice in the
    fusion). Only frames whose pose equals another's exactly have their images compared. Also warned
    about once: frames of different images with one id, which share ``features_2d/<id>.npz``.

    The counts are kept in ``scene.meta["frames_repeated"]`` and ``scene.meta["frame_id_clashes"]`` for
    ``inspect``'s report and run.json.

    Returns:
        how many frames repeat an earlier one.
    """
    first_of_file: dict[str, int] = {}
    first_of_pose: dict[bytes, dict[bytes | None, int] | int] = {}  # pose -> frame, or image digest -> frame
    first_of_id: dict[str, int] = {}
    dups: list[tuple[int, int]] = []  # (frame, the earlier frame it repeats)
    clashes: list[tuple[int, int]] = []  # (frame, an earlier frame of another image with the same id)
    for j, f in enumerate(frames):
        key = os.path.normpath(os.path.abspath(f.source)) if f.source else None
        if key is not None and key in first_of_file:
            dups.append((j, first_of_file[key]))
            continue
        if key is not None:
            first_of_file[key] = j
        # images are read only for poses that occur twice, each image once
        pose = np.asarray(f.camera_to_world, np.float64).tobytes()
        seen = first_of_pose.setdefault(pose, j)
        if seen != j:
            if isinstance(seen, int):
                seen = first_of_pose[pose] = {_image_digest(frames[seen]): seen}
            digest = _image_digest(f)
            if digest is not None and digest in seen:
                dups.append((j, seen[digest]))
                continue
            seen.setdefault(digest, j)
        if f.frame_id in first_of_id:
            clashes.append((j, first_of_id[f.frame_id]))
        first_of_id.setdefault(f.frame_id, j)
    scene.meta["frames_repeated"] = len(dups)
    scene.meta["frame_id_clashes"] = len(clashes)
    if dups:
        j, i = dups[0]
        log.warning("%s: %d frame(s) repeat an earlier frame (the same colour image listed again, or the same "
                    "pose and image), e.g. %s repeats %s (%s); kept as listed, so those views count twice",
                    scene.name, len(dups), frames[j].frame_id, frames[i].frame_id, frames[j].source)
    if clashes:
        j, i = clashes[0]
        log.warning("%s: %d frame(s) have the id of an earlier frame with another image (e.g. %s: %s and %s), "
                    "so they share one features_2d/%s.npz", scene.name, len(clashes), frames[j].frame_id,
                    frames[i].source, frames[j].source, frames[j].frame_id)
    return len(dups)


def common_sizes(scene: Scene, files: list[tuple[FrameCandidate, np.ndarray]]) -> dict:
    """The colour and depth image sizes of most of these frames, from every frame's headers, and the
    frames to skip: ``{"color": (H, W), "depth": (H, W), "skipped": {indices into files}}`` (no sizes
    when no header is readable).

    Why every frame's: the sizes were the first frame's, so one odd first frame (a depth image saved at
    the colour resolution, a stray thumbnail) made every other frame fail at lifting. A frame with an
    unreadable header or another size is skipped as ``bad_color`` / ``bad_depth``, warned about and
    counted here, so ``inspect`` reports it before any lifting.
    """
    heads = [(image_size(c.color), image_size(c.depth)) for c, _ in files]
    sizes: dict = {"skipped": set()}
    for k, kind in enumerate(("color", "depth")):  # each its own majority: one odd image need not pair with another
        common = Counter(h[k] for h in heads if h[k] is not None).most_common(1)
        if common:
            sizes[kind] = common[0][0]
    for i, ((c, _), (chw, dhw)) in enumerate(zip(files, heads)):
        problem = None
        if chw is None:
            problem = ("bad_color", f"unreadable image header ({c.color})")
        elif dhw is None:
            problem = ("bad_depth", f"unreadable image header ({c.depth})")
        elif chw != sizes["color"]:
            problem = ("bad_color", f"colour image {c.color} is {chw[1]}x{chw[0]}, most frames' are "
                                    f"{sizes['color'][1]}x{sizes['color'][0]}")
        elif dhw != sizes["depth"]:
            problem = ("bad_depth", f"depth image {c.depth} is {dhw[1]}x{dhw[0]}, most frames' are "
                                    f"{sizes['depth'][1]}x{sizes['depth'][0]}")
        if problem is not None:
            log.warning("skipping frame %s: %s", c.frame_id, problem[1])
            scene.skip(problem[0])
            sizes["skipped"].add(i)
    return sizes


def check_intrinsics(K: np.ndarray, hw: tuple[int, int], what: str) -> None:
    """Refuse (InputError, exit 2) intrinsics that cannot belong to an (H, W) image.

    ``fx, fy`` must be positive and finite and the principal point inside the image: otherwise every
    projection lands off the image or mirrored, and lifting would silently see a handful of points.
    """
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    h, w = hw
    if not np.isfinite(K).all() or not (fx > 0 and fy > 0):
        raise InputError(f"{what}: intrinsics fx={fx:g}, fy={fy:g}; focal lengths must be positive numbers (pixels)")
    if not (0 <= cx < w and 0 <= cy < h):
        raise InputError(
            f"{what}: principal point (cx={cx:g}, cy={cy:g}) is outside the {w}x{h} image; "
            "are these intrinsics for another resolution?"
        )


def depth_intrinsics(
    K_color: np.ndarray, K_depth: np.ndarray, color_hw: tuple[int, int], depth_hw: tuple[int, int], what: str
) -> np.ndarray:
    """The (3, 3) depth intrinsics, validated; shared intrinsics are scaled to a depth image of another size.

    When colour and depth share one matrix but the depth image has another resolution, the matrix is
    scaled to it if the aspect ratios match (pixel centres kept: ``c' = (c + 0.5) s - 0.5``), and refused
    otherwise (InputError naming both sizes).
    """
    check_intrinsics(K_color, color_hw, f"{what} (colour)")
    Kd = np.asarray(K_depth, dtype=np.float64)
    if tuple(depth_hw) != tuple(color_hw) and np.array_equal(Kd, np.asarray(K_color, dtype=np.float64)):
        (hc, wc), (hd, wd) = color_hw, depth_hw
        sx, sy = wd / wc, hd / hc
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise InputError(
                f"{what}: depth images are {wd}x{hd} but colour images and their shared intrinsics are "
                f"{wc}x{hc}, another aspect ratio; give the depth intrinsics separately (depth_intrinsics)"
            )
        Kd = Kd.copy()
        Kd[0, 0], Kd[1, 1] = Kd[0, 0] * sx, Kd[1, 1] * sy
        Kd[0, 1] *= sx
        Kd[0, 2], Kd[1, 2] = (Kd[0, 2] + 0.5) * sx - 0.5, (Kd[1, 2] + 0.5) * sy - 0.5
    check_intrinsics(Kd, depth_hw, f"{what} (depth)")
    return Kd


def make_frame(
    fid: str,
    color_path: Path,
    depth_path: Path,
    pose: np.ndarray,
    K_color: np.ndarray,
    K_depth: np.ndarray,
    depth_loader: Callable[[Path, tuple[int, int] | None], np.ndarray],
    sizes: dict,
) -> Frame | None:
    """A lazy Frame; image sizes come from ``sizes`` (:func:`common_sizes`), else from this frame's headers
    (each image is checked against them again on load).

    Returns None (after a warning naming the file) when that first header is unreadable. The
    intrinsics are validated against the image sizes once per reader (``sizes`` caches the result);
    shared intrinsics are scaled to a depth image of another resolution (:func:`depth_intrinsics`).

    Raises:
        InputError: intrinsics that do not fit the images.
    """
    if "color" not in sizes:
        chw, dhw = image_size(color_path), image_size(depth_path)
        if chw is None or dhw is None:
            bad = color_path if chw is None else depth_path
            log.warning("skipping frame %s: unreadable image header (%s)", fid, bad)
            return None
        sizes["color"], sizes["depth"] = chw, dhw
    chw, dhw = sizes["color"], sizes["depth"]
    key = (np.asarray(K_color, np.float64).tobytes(), np.asarray(K_depth, np.float64).tobytes())
    if sizes.get("K_key") != key:
        Kd = depth_intrinsics(K_color, K_depth, chw, dhw, str(Path(color_path).parent.parent))
        if not np.array_equal(Kd, np.asarray(K_depth, dtype=np.float64)):
            log.info("depth images are %dx%d, colour %dx%d: shared intrinsics scaled to the depth images",
                     dhw[1], dhw[0], chw[1], chw[0])
        sizes["K_key"], sizes["K_depth_scaled"] = key, Kd
    return Frame(
        frame_id=fid,
        K_color=K_color,
        K_depth=sizes["K_depth_scaled"],
        camera_to_world=pose,
        color_size=chw,
        depth_size=dhw,
        load_color=functools.partial(load_color, color_path, chw),
        load_depth=functools.partial(depth_loader, depth_path, dhw),
        source=str(color_path),
    )


def check_pose(scene: Scene, pose: np.ndarray, fid: str, where: str) -> bool:
    problem = pose_problem(pose)
    if problem:
        log.warning("skipping frame %s: %s (%s)", fid, problem, where)
        scene.skip("bad_pose")
        return False
    return True


def read_pose(scene: Scene, fid: str, pose_path: Path) -> np.ndarray | None:
    """The (4, 4) camera-to-world pose in a text file, or None (warned and counted) when unreadable or unusable."""
    try:
        pose = matrix_pose(read_numbers(pose_path)[0])
        if pose is None:
            raise InputError(f"{pose_path}: expected a 4x4 or 3x4 matrix")
    except InputError as exc:
        log.warning("skipping frame %s: unreadable pose (%s)", fid, exc)
        scene.skip("bad_pose")
        return None
    return pose if check_pose(scene, pose, fid, str(pose_path)) else None
