"""Write a synthetic scene in the ScanNet export layout (see README, "Your own scan")."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, InputError
from ..io.ply import write_ply
from ..labels import nyu40_to_scannet20
from ..utils.atomic import atomic_open, atomic_path, write_json, write_text
from ..utils.progress import bar_disable
from .config import SCANNET20_NAMES, SyntheticConfig
from .layout import Layout, build_layout
from .masks import common_direction, decide_reading, simulate_view
from .mesh import Mesh, mesh_for_target, surface_colors
from .render import intrinsics, look_at, render, rescale_intrinsics
from .vlm import VLMErrors, decide_errors, simulate_masks, text_embeddings

log = logging.getLogger(__name__)

LAYOUT_FILE = "synthetic_layout.npz"
SYNTH_FILE = "synthetic.json"
#: what a scene folder written by synth holds (besides ``<name>_vh_clean_2.ply`` and ``.labels.ply``)
_SCENE_ENTRIES = frozenset({"color", "depth", "pose", "intrinsic", "features_2d", "text_embeddings.npz",
                            LAYOUT_FILE, SYNTH_FILE})


def check_scene_folder(root: str | Path) -> Path:
    """Refuse (ConfigError, exit 3), before any work, a scene folder ``root`` that exists and holds anything
    but an earlier synth's files of the same name: :func:`staged_scene` replaces the folder as a whole."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: exists and is not a folder")
    if root.is_dir():
        own = _SCENE_ENTRIES | {f"{root.name}_vh_clean_2.ply", f"{root.name}_vh_clean_2.labels.ply"}
        foreign = sorted(p.name for p in root.iterdir() if p.name not in own)
        if foreign:
            more = f", ... ({len(foreign)} entries)" if len(foreign) > 3 else ""
            raise ConfigError(f"{root}: exists and holds what synth does not write ({', '.join(foreign[:3])}{more}); "
                              "write the scene into a new or empty folder")
    return root


@contextlib.contextmanager
def staged_scene(root: str | Path) -> Iterator[Path]:
    """Yield a hidden folder beside ``root`` to write a scene into; on success it replaces ``root`` (an
    earlier synth output or an empty folder), so ``root`` is complete or as it was, never half written
    (Ctrl-C, SIGTERM, an error: the hidden folder is removed)."""
    root = check_scene_folder(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.{os.getpid()}.partial")
    old = root.with_name(f".{root.name}.{os.getpid()}.old")
    for stale in (tmp, old):  # left by a killed process that had this pid
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir()
    try:
        yield tmp
        if root.exists():
            os.rename(root, old)
        os.rename(tmp, root)
    except BaseException:
        if old.exists() and not root.exists():
            os.rename(old, root)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


@dataclasses.dataclass
class Camera:
    """One frame's capture setup.

    Attributes:
        frame_id: file stem (``"0"``, ``"10"``...).
        camera_to_world: (4, 4) float64 OpenCV pose.
    """

    frame_id: str
    camera_to_world: np.ndarray


def make_cameras(layout: Layout, config: SyntheticConfig, rng: np.random.Generator) -> list[Camera]:
    """Cameras on a loop inside the room, 1.2-1.8 m high, looking across it at furniture."""
    X, Y, _ = layout.room
    centre = np.array([X / 2, Y / 2])
    furniture = ~np.isin(layout.box_label, [1, 2]) & (layout.hi[:, 2] < 2.3)
    targets = 0.5 * (layout.lo[furniture] + layout.hi[furniture])
    if len(targets) == 0:
        targets = np.array([[X / 2, Y / 2, 0.5]])
    cams = []
    n = config.n_frames
    phase = rng.uniform(0, 2 * np.pi)
    for i in range(n):
        for _try in range(30):
            ang = phase + 2 * np.pi * i / max(n, 1) + rng.normal(0, 0.1)
            rad = rng.uniform(0.55, 0.8)
            xy = centre + rad * (centre - 0.5) * np.array([np.cos(ang), np.sin(ang)])
            eye = np.array([xy[0], xy[1], 1.5 + 0.3 * np.sin(3 * ang) + rng.normal(0, 0.05)])
            if not np.any(np.all((eye > layout.lo - 0.25) & (eye < layout.hi + 0.25), axis=1)):
                break
        # Look at a piece of furniture on the far side (or anywhere, sometimes).
        far = targets[np.linalg.norm(targets[:, :2] - eye[:2], axis=1) > 1.2]
        pool = far if len(far) and rng.random() < 0.85 else targets
        target = pool[int(rng.integers(len(pool)))] + rng.normal(0, 0.2, 3)
        pose = look_at(eye, target, roll_deg=float(rng.normal(0, 2.0)))
        cams.append(Camera(str(i * config.frame_id_step), pose))
    return cams


def _write_image(path: Path, array: np.ndarray, **save_kwargs) -> None:
    from PIL import Image

    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt, **save_kwargs)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _matrix_text(M: np.ndarray) -> str:
    return "\n".join(" ".join(f"{x:.9g}" for x in row) for row in M) + "\n"


def _noisy_depth(depth: np.ndarray, normals: np.ndarray, view_dirs: np.ndarray, config: SyntheticConfig,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Depth in mm as uint16: relative noise, clumped holes, grazing-angle dropout, max range."""
    z = depth * (1.0 + config.depth_noise * rng.normal(size=depth.shape))
    bad = (depth <= 0) | (depth > config.max_depth)
    if config.depth_hole_prob > 0:
        h, w = depth.shape
        coarse = rng.random(((h + 7) // 8, (w + 7) // 8)) < config.depth_hole_prob * 0.5
        bad |= np.kron(coarse, np.ones((8, 8), dtype=bool))[:h, :w]
        bad |= rng.random(depth.shape) < config.depth_hole_prob * 0.5
    cos = np.abs(np.sum(normals * view_dirs, axis=-1))
    bad |= cos < 0.08
    mm = np.where(bad, 0, np.round(z * 1000.0))
    return np.clip(mm, 0, 65535).astype(np.uint16)


def make_scene(out_dir: str | Path, name: str = "synth0000_00", config: SyntheticConfig | None = None) -> Path:
    """Generate one synthetic scene folder ``out_dir/name`` and return its path.

    Writes ``<name>_vh_clean_2.ply`` (mesh with colours), ``<name>_vh_clean_2.labels.ply`` (same
    vertices with NYU40 ``label`` and ``instance``), ``color/``, ``depth/``, ``pose/``,
    ``intrinsic/``, ``features_2d/<id>.npz`` (``segments`` + ``embeddings``),
    ``text_embeddings.npz``, ``synthetic_layout.npz`` (boxes and VLM errors, for tests) and
    ``synthetic.json`` (config and counts).
    """
    config = config or SyntheticConfig()
    config.validate()
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"make_scene: bad scene name {name!r} (one plain folder name expected)")
    with staged_scene(Path(out_dir) / name) as tmp:
        _write_scene(tmp, name, config)
    return Path(out_dir) / name


def _write_scene(root: Path, name: str, config: SyntheticConfig) -> None:
    """:func:`make_scene`'s files, into folder ``root``."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    layout = build_layout(config, rng)
    mesh = mesh_for_target(layout, config.target_points, legacy=config.legacy)
    errors = decide_errors(layout, mesh, config, rng)
    text = text_embeddings(config.feature_dim, config.text_seed)
    cams = make_cameras(layout, config, rng)
    t_geom = time.perf_counter() - t0

    inst = layout.box_instance[mesh.box]
    labels = layout.instance_label[inst]
    write_ply(root / f"{name}_vh_clean_2.ply", mesh.vertices, mesh.colors, faces=mesh.faces)
    write_ply(root / f"{name}_vh_clean_2.labels.ply", mesh.vertices, mesh.colors,
              extra={"label": labels.astype(np.uint16), "instance": inst.astype(np.int32)}, faces=mesh.faces)
    _write_npz(root / "text_embeddings.npz", names=np.array(SCANNET20_NAMES), embeddings=text)
    _write_npz(root / LAYOUT_FILE, **layout.to_arrays(), **errors.to_arrays())

    K_color = intrinsics(config.color_hw, config.fov_deg, offset=tuple(rng.normal(0, 2.0, 2)))
    K_depth = rescale_intrinsics(K_color, config.color_hw, config.depth_hw)
    for fname, K in (("intrinsic_color.txt", K_color), ("intrinsic_depth.txt", K_depth)):
        K4 = np.eye(4)
        K4[:3, :3] = K
        write_text(root / "intrinsic" / fname, _matrix_text(K4))
    # FeatureMap.sample reads feature pixel floor(u w / W) at colour coordinate u, so feature pixel
    # x covers u in [x W/w, (x+1) W/w): cast its ray through the middle of that interval.
    (H, W), (h, w) = config.color_hw, config.feature_hw
    feat_centers = ((np.arange(w) + 0.5) * W / w, (np.arange(h) + 0.5) * H / h)

    if not config.legacy:
        reading = decide_reading(nyu40_to_scannet20(layout.instance_label), config.vlm,
                                 np.random.default_rng([config.seed, 4242]))  # fmt: skip
        common = common_direction(text, config.text_seed)
    n_masks = 0
    for i, cam in enumerate(tqdm(cams, desc=f"render {name}", disable=bar_disable())):
        frng = np.random.default_rng([config.seed, 7919, i])
        pose = cam.camera_to_world
        col = render(layout, K_color, pose, config.color_hw)
        rgb = np.full((H, W, 3), 0.92, dtype=np.float32)  # misses: bright "ceiling"
        hit = col.box >= 0
        rgb[hit] = surface_colors(col.points[hit].astype(np.float64), col.normals[hit], col.box[hit], layout,
                                  tint=not config.legacy)
        rgb8 = np.clip(rgb * 255 + frng.normal(0, 2.0, rgb.shape), 0, 255).astype(np.uint8)
        _write_image(root / "color" / f"{cam.frame_id}.jpg", rgb8, quality=config.jpeg_quality)

        dep = render(layout, K_depth, pose, config.depth_hw)
        dirs = dep.points - pose[:3, 3].astype(np.float32)
        dirs /= np.maximum(np.linalg.norm(dirs, axis=-1, keepdims=True), 1e-9)
        _write_image(root / "depth" / f"{cam.frame_id}.png", _noisy_depth(dep.depth, dep.normals, dirs, config, frng))
        write_text(root / "pose" / f"{cam.frame_id}.txt", _matrix_text(pose))

        fv = render(layout, K_color, pose, config.feature_hw, pixel_centers=feat_centers)
        if not config.legacy:
            f_hit = fv.box >= 0
            f_inst = np.where(f_hit, layout.box_instance[np.maximum(fv.box, 0)], -1)
            f_rgb = np.full(fv.box.shape + (3,), 0.92, dtype=np.float32)
            f_rgb[f_hit] = surface_colors(fv.points[f_hit].astype(np.float64), fv.normals[f_hit], fv.box[f_hit],
                                          layout)  # fmt: skip
            masks = simulate_view(f_inst, fv.depth, f_rgb, reading, text, common, config.vlm, frng)
        else:
            masks = simulate_masks(layout, errors, text, fv, config, frng)
        n_masks += len(masks.embeddings)
        _write_npz(root / "features_2d" / f"{cam.frame_id}.npz", segments=masks.segments, embeddings=masks.embeddings)

    seconds = time.perf_counter() - t0
    write_json(
        root / SYNTH_FILE,
        {
            "name": name,
            "config": dataclasses.asdict(config),
            "num_vertices": len(mesh.vertices),
            "num_faces": len(mesh.faces),
            "spacing_m": mesh.spacing,
            "num_instances": layout.num_instances,
            "num_boxes": layout.num_boxes,
            "num_frames": len(cams),
            "num_blobs": len(errors.blob_center),
            "masks_per_frame": n_masks / max(len(cams), 1),
            "seconds": seconds,
            "seconds_geometry": t_geom,
        },
    )
    log.info("synthetic scene %s: %d vertices, %d frames in %.1f s", root.with_name(name), len(mesh.vertices),
             len(cams), seconds)  # fmt: skip


def make_dataset(out_dir: str | Path, n_scenes: int, config: SyntheticConfig | None = None) -> list[Path]:
    """``n_scenes`` scenes ``synth0000_00``, ``synth0001_00``... with seeds ``config.seed + i``."""
    config = config or SyntheticConfig()
    if n_scenes < 1:
        raise InputError(f"make_dataset: n_scenes must be >= 1 (got {n_scenes})")
    return [
        make_scene(out_dir, f"synth{i:04d}_00", dataclasses.replace(config, seed=config.seed + i))
        for i in range(n_scenes)
    ]


@dataclasses.dataclass
class SceneTruth:
    """Ground truth kept beside a generated scene (for tests and diagnostics)."""

    layout: Layout
    errors: VLMErrors


def load_truth(scene_dir: str | Path) -> SceneTruth:
    """Read ``synthetic_layout.npz`` back."""
    path = Path(scene_dir) / LAYOUT_FILE
    if not path.is_file():
        raise InputError(f"{path}: missing; not a synthetic scene folder")
    with np.load(path) as z:
        return SceneTruth(Layout.from_arrays(z), VLMErrors.from_arrays(z))


__all__ = ["Camera", "Mesh", "SceneTruth", "check_scene_folder", "load_truth", "make_cameras", "make_dataset",
           "make_scene", "staged_scene"]
