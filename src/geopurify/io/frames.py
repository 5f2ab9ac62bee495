"""Building lazy :class:`Frame` objects and dropping frames with unusable poses (shared by readers)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..geometry import pose_problem
from .images import image_size, load_color, read_matrix
from .scene import Frame, Scene

log = logging.getLogger(__name__)


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
    """A lazy Frame; image sizes come from the first frame's headers (later ones are checked on load)."""
    if "color" not in sizes:
        chw, dhw = image_size(color_path), image_size(depth_path)
        if chw is None or dhw is None:
            return None
        sizes["color"], sizes["depth"] = chw, dhw
    chw, dhw = sizes["color"], sizes["depth"]
    return Frame(
        frame_id=fid,
        K_color=K_color,
        K_depth=K_depth,
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
        pose = read_matrix(pose_path)
    except (OSError, ValueError) as exc:
        log.warning("skipping frame %s: unreadable pose %s (%s)", fid, pose_path, exc)
        scene.skip("bad_pose")
        return None
    return pose if check_pose(scene, pose, fid, str(pose_path)) else None
