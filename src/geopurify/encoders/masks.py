"""Class-agnostic 2D segments for per-mask features without X-Decoder.

Sources (``masks=`` option of the ``clip`` encoder):

* ``felzenszwalb`` / ``slic``: superpixels from scikit-image (``skimage.segmentation.felzenszwalb``,
  ``skimage.segmentation.slic``) on the colour image resized to ``short_side`` (pip extra ``masks``);
* ``folder``: a user's masks (e.g. from SAM) in ``mask_dir``, one file per colour frame, named by frame id:
  ``<id>.npy`` / ``<id>.npz`` (key ``masks``) holding a (M, H, W) boolean stack, possibly overlapping
  (SAM's automatic generator), or an (H, W) integer label image (``.npy``, or ``<id>.png``, 8/16-bit),
  where 0 means "no mask". Overlaps go to the smallest mask (the most specific one), as is usual for SAM.

All return ``segments`` (h, w) int32 with ids 0..S-1 and -1 where no mask covers the pixel.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FrameError, load_reason, missing_dependency

SOURCES = ("felzenszwalb", "slic", "folder")


def _resize_short(img: np.ndarray, short_side: int) -> np.ndarray:
    from PIL import Image

    H, W = img.shape[:2]
    s = short_side / min(H, W)
    if s >= 1:
        return img
    size = (max(1, round(W * s)), max(1, round(H * s)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(img[..., :3])).resize(size, Image.BILINEAR))


def superpixels(img: np.ndarray, method: str, short_side: int = 240, n_segments: int = 150,
                scale: float = 200.0, sigma: float = 0.8, min_size: int = 50) -> np.ndarray:
    """(h, w) int32 superpixel ids of an (H, W, 3) uint8 image at short side ``short_side`` (0..S-1)."""
    try:
        from skimage.segmentation import felzenszwalb, slic
    except ImportError as exc:
        raise missing_dependency("scikit-image", "masks", f"clip masks={method}") from exc
    small = _resize_short(img, short_side)
    if method == "felzenszwalb":
        seg = felzenszwalb(small, scale=scale, sigma=sigma, min_size=min_size)
    elif method == "slic":
        seg = slic(small, n_segments=n_segments, compactness=10.0, sigma=1.0, start_label=0)
    else:
        raise ConfigError(f"unknown superpixel method {method!r}; choose felzenszwalb or slic")
    _, seg = np.unique(seg, return_inverse=True)  # ids 0..S-1
    return seg.reshape(small.shape[:2]).astype(np.int32)


def stack_to_segments(masks: np.ndarray) -> np.ndarray:
    """(M, H, W) bool masks -> (H, W) int32: each pixel to the smallest mask covering it, else -1."""
    masks = np.asarray(masks, bool)
    seg = np.full(masks.shape[1:], -1, np.int32)
    area = masks.reshape(len(masks), -1).sum(1)
    for m in np.argsort(-area, kind="stable"):  # largest first, so smaller ones overwrite
        if area[m]:
            seg[masks[m]] = m
    return seg


def labels_to_segments(labels: np.ndarray) -> np.ndarray:
    """(H, W) integer labels (0 = none) -> (H, W) int32 ids 0..S-1 (-1 = none), in label order."""
    labels = np.asarray(labels)
    out = np.full(labels.shape, -1, np.int32)
    fg = labels != 0
    if fg.any():
        _, inv = np.unique(labels[fg], return_inverse=True)
        out[fg] = inv.ravel()
    return out


def read_mask_file(mask_dir: Path, frame_id: str) -> np.ndarray:
    """The segments of frame ``frame_id`` from ``mask_dir``; FrameError (``missing_masks``/``bad_masks``)."""
    mask_dir = Path(mask_dir)
    for ext in (".npz", ".npy", ".png"):
        path = mask_dir / f"{frame_id}{ext}"
        if path.is_file():
            break
    else:
        raise FrameError(f"{mask_dir}: no mask file for frame {frame_id} (.npz, .npy or .png)", reason="missing_masks")
    try:
        if ext == ".png":
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "masks" not in z.files:
                    raise FrameError(f"{path}: needs an array 'masks', found {sorted(z.files)}", reason="bad_masks")
                arr = z["masks"]
        else:
            arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FrameError(f"{path}: unreadable mask file ({load_reason(exc)})", reason="bad_masks") from None
    if arr.ndim == 3 and arr.dtype == bool:
        return stack_to_segments(arr)
    if arr.ndim == 2 and (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        return labels_to_segments(arr.astype(np.int64))
    raise FrameError(
        f"{path}: masks must be a (M, H, W) bool stack or an (H, W) integer label image, got {arr.dtype} {arr.shape}",
        reason="bad_masks",
    )


def pooled_features(dense: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """(S, D) float32 unit mean of a dense (h', w', D) map over each segment of ``segments`` (h, w).

    The dense map is sampled at the segments' pixel centres (nearest), so each pixel votes once.
    """
    h, w = segments.shape
    hd, wd = dense.shape[:2]
    ys = np.minimum((np.arange(h) + 0.5) * hd / h, hd - 1).astype(np.int64)
    xs = np.minimum((np.arange(w) + 0.5) * wd / w, wd - 1).astype(np.int64)
    feat = dense[ys[:, None], xs[None, :]].reshape(h * w, -1).astype(np.float32)
    seg = segments.ravel()
    S = int(seg.max()) + 1 if seg.size and seg.max() >= 0 else 0
    keep = seg >= 0
    sums = np.zeros((S, feat.shape[1]), np.float64)
    np.add.at(sums, seg[keep], feat[keep])
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norm, 1e-12)).astype(np.float32)


def mask_boxes(segments: np.ndarray, image_hw: tuple[int, int], pad: float) -> np.ndarray:
    """(S, 4) int64 boxes (y0, x0, y1, x1), exclusive ends, in colour-image pixels, grown by ``pad`` x size."""
    h, w = segments.shape
    H, W = image_hw
    S = int(segments.max()) + 1 if segments.size and segments.max() >= 0 else 0
    boxes = np.zeros((S, 4), np.int64)
    for s in range(S):
        ys, xs = np.nonzero(segments == s)
        if len(ys) == 0:
            continue
        y0, y1 = ys.min() * H / h, (ys.max() + 1) * H / h
        x0, x1 = xs.min() * W / w, (xs.max() + 1) * W / w
        dy, dx = (y1 - y0) * pad, (x1 - x0) * pad
        boxes[s] = [max(0, int(np.floor(y0 - dy))), max(0, int(np.floor(x0 - dx))),
                    min(H, int(np.ceil(y1 + dy))), min(W, int(np.ceil(x1 + dx)))]
    return boxes
