"""Image loading for frames: validated colour and depth, raising FrameError for one bad frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FrameError


def load_color(path: Path, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8. Raises FrameError(reason="bad_color") for missing/truncated/odd images."""
    from PIL import Image

    if not path.is_file():
        raise FrameError(f"{path}: colour image missing", reason="missing_color")
    try:
        with Image.open(path) as im:
            im.load()  # forces a full decode, so a truncated JPEG fails here
            arr = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise FrameError(f"{path}: cannot decode colour image ({exc})", reason="bad_color") from None
    if expected_hw is not None and arr.shape[:2] != tuple(expected_hw):
        raise FrameError(
            f"{path}: colour image is {arr.shape[1]}x{arr.shape[0]}, expected {expected_hw[1]}x{expected_hw[0]}",
            reason="bad_color",
        )
    return arr


def load_depth(path: Path, depth_scale: float, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """(Hd, Wd) float32 metres, 0 = invalid. Raises FrameError(reason="bad_depth"|"missing_depth")."""
    from PIL import Image

    if not path.is_file():
        raise FrameError(f"{path}: depth image missing", reason="missing_depth")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as exc:
        raise FrameError(f"{path}: cannot decode depth image ({exc})", reason="bad_depth") from None
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.float32:
        raise FrameError(
            f"{path}: depth must be a single-channel 16-bit image, got shape {arr.shape} dtype {arr.dtype}",
            reason="bad_depth",
        )
    if arr.dtype == np.uint8:
        raise FrameError(f"{path}: depth is 8-bit; expected uint16 millimetres", reason="bad_depth")
    if expected_hw is not None and arr.shape != tuple(expected_hw):
        raise FrameError(
            f"{path}: depth is {arr.shape[1]}x{arr.shape[0]}, expected {expected_hw[1]}x{expected_hw[0]}",
            reason="bad_depth",
        )
    depth = arr.astype(np.float32) / float(depth_scale)
    depth[~np.isfinite(depth)] = 0
    return depth


def image_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from the header only, or None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:
        return None


def read_matrix(path: Path, rows: int | None = None) -> np.ndarray:
    """A whitespace-separated float matrix from a text file; raises ValueError if malformed."""
    m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if rows is not None and m.shape[0] != rows:
        raise ValueError(f"expected {rows} rows, got {m.shape[0]}")
    return m


def intrinsics_3x3(m: np.ndarray) -> np.ndarray:
    """Accept a 3x3, 3x4, 4x3 or 4x4 intrinsics matrix and return the (3, 3) float64 part.

    Raises ValueError for another shape, or when the 3x3 part's last row is not ``0 0 1``: a transposed
    (column-major) K, whose ``cx, cy`` sit in the last row, would otherwise read as a principal point at
    (0, 0) and a cloud fused from depth sheared without a word.
    """
    if m.shape == (4, 4) or m.shape == (3, 4) or m.shape == (4, 3):
        K = m[:3, :3].astype(np.float64)
    elif m.shape == (3, 3):
        K = m.astype(np.float64)
    else:
        raise ValueError(f"intrinsics have shape {m.shape}, expected 3x3 or 4x4")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]):
        row = " ".join(f"{x:g}" for x in K[2])
        hint = (": the matrix looks transposed (column-major); write it row-major, [[fx 0 cx] [0 fy cy] [0 0 1]]"
                if np.allclose(K[:, 2], [0.0, 0.0, 1.0]) else "")
        raise ValueError(f"the intrinsics' third row is '{row}', expected '0 0 1'{hint}")
    return K
