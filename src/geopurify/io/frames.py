"""Building lazy :class:`Frame` objects and dropping frames with unusable poses (shared by readers)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import pose_problem
from .images import image_size, load_color
from .poses import matrix_pose, read_numbers
from .scene import Frame, Scene

log = logging.getLogger(__name__)


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
    """A lazy Frame; image sizes come from the first frame's headers (later ones are checked on load).

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
