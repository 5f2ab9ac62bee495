"""Posed RGB-D views of a real labelled scan, in the ScanNet export layout, with a simulated VLM.

``render_scan(SCAN, OUT)`` reads any labelled scan :func:`geopurify.io.read_scene` takes (a Pointcept
folder, a ScanNet export, a labelled PLY...), walks a hand-held camera path through it (about 1.5 m
high, looking around, small pose jitter), renders each view with a z-buffer (point splats sized by
the local point spacing; a mesh is first sampled densely over its faces), adds depth noise and holes
like a structured-light sensor, and writes per-mask VLM features made by :mod:`.masks` from the
scan's labels in image space. The output's mesh/cloud lists the scan's points in their order, with
the scan's normals, and the labels PLY carries the ground truth, so ``segment`` and ``eval`` work on
it directly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from tqdm import tqdm

from ..errors import InputError
from ..io.ply import write_ply
from ..labels import nyu40_to_scannet20
from ..utils.atomic import write_json, write_text
from ..utils.progress import bar_disable
from .config import SCANNET20_NAMES, SCANNET20_NYU40, ScanRenderConfig
from .masks import SceneReading, common_direction, decide_reading, simulate_view
from .render import intrinsics, look_at, rescale_intrinsics
from .scene import _matrix_text, _write_image, _write_npz, check_scene_folder, staged_scene
from .vlm import text_embeddings

log = logging.getLogger(__name__)

_NEAR = 0.1
_PSEUDO_CELL = 0.75  # metres: unlabelled stuff without an instance id is cut into pseudo-objects this size


@dataclass
class LabelledScan:
    """A scan with per-point ground truth.

    Attributes:
        name: scene name.
        points: (N, 3) float32; colors: (N, 3) uint8; normals: (N, 3) float32 unit.
        labels: (N,) int64 ScanNet-20 index, -1 = unlabelled.
        instance: (N,) int64 object id from the scan, -1 = none.
        faces: (F, 3) int64 triangles, or None for a point cloud.
    """

    name: str
    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray
    labels: np.ndarray
    instance: np.ndarray
    faces: np.ndarray | None = None

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])


def read_labelled_scan(path: str | Path) -> LabelledScan:
    """Read a scan with ScanNet-20 (or NYU40) ground truth; instance ids from ``instance.npy`` or the
    labels PLY's ``instance`` property when present."""
    from ..io import read_scene
    from ..io.ply import read_ply
    from ..io.scannet import find_labels

    path = Path(path)
    scene = read_scene(path)
    if scene.labels is None:
        raise InputError(f"{path}: the scan has no ground-truth labels (synth --from-scan needs them)")
    if scene.label_set == "scannet20":
        labels = np.asarray(scene.labels, np.int64)
    elif scene.label_set == "nyu40":
        labels = nyu40_to_scannet20(scene.labels)
    elif scene.label_set is None:  # a cloud's bare ``label`` property: ids of no known set
        raise InputError(f"{path}: the label set of the ground truth is unknown (a point cloud's 'label' ids); "
                         "synth --from-scan needs ScanNet-20 or NYU40: give the scan's folder "
                         "(a ScanNet export, a Pointcept folder) or an NPZ with label_set")
    else:
        raise InputError(f"{path}: ground truth is in {scene.label_set}; synth --from-scan needs ScanNet-20 or NYU40")
    n = scene.num_points
    instance = np.full(n, -1, np.int64)
    folder = path if path.is_dir() else path.parent
    lab_ply = find_labels(folder) if folder.is_dir() else None
    if (folder / "instance.npy").is_file():
        inst = np.load(folder / "instance.npy", allow_pickle=False).reshape(-1)
        if len(inst) != n:
            raise InputError(f"{folder / 'instance.npy'}: {len(inst)} ids for {n} points")
        instance = inst.astype(np.int64)
    elif lab_ply is not None:
        props = read_ply(lab_ply).properties
        if "instance" in props and len(props["instance"]) == n:
            instance = props["instance"].astype(np.int64)
    normals = scene.ensure_normals().normals
    colors = np.clip(np.round(np.asarray(scene.colors) * 255), 0, 255).astype(np.uint8)
    faces = None if scene.faces is None or len(scene.faces) == 0 else np.asarray(scene.faces, np.int64)
    return LabelledScan(scene.name, np.asarray(scene.points, np.float32), colors,
                        np.asarray(normals, np.float32), labels, instance, faces)  # fmt: skip


def crop_scan(scan: LabelledScan, box: tuple[float, float, float, float], name: str | None = None) -> LabelledScan:
    """The points with x0 <= x < x1 and y0 <= y < y1 (in their order), and the faces among them."""
    x0, y0, x1, y1 = box
    p = scan.points
    keep = (p[:, 0] >= x0) & (p[:, 0] < x1) & (p[:, 1] >= y0) & (p[:, 1] < y1)
    if keep.sum() < 1000:
        raise InputError(f"{scan.name}: crop {box} keeps {int(keep.sum())} points (need >= 1000)")
    faces = None
    if scan.faces is not None:
        new = np.full(scan.num_points, -1, np.int64)
        new[keep] = np.arange(int(keep.sum()))
        f = new[scan.faces]
        faces = f[(f >= 0).all(axis=1)]
    return LabelledScan(name or scan.name, p[keep], scan.colors[keep], scan.normals[keep], scan.labels[keep],
                        scan.instance[keep], faces)  # fmt: skip


def object_ids(scan: LabelledScan) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 object index 0..I-1 per point and (I,) int64 ScanNet-20 class per object.

    Scan instances keep their identity; points without one are grouped by class and a coarse grid
    cell (pseudo-objects: a real model still sees the clutter and the ceiling as something).
    """
    inst = scan.instance
    cell = np.floor(scan.points[:, :2] / _PSEUDO_CELL).astype(np.int64)
    cell -= cell.min(axis=0)
    pseudo = ((scan.labels + 2) * 100_003 + cell[:, 0]) * 100_003 + cell[:, 1]
    key = np.where(inst >= 0, inst, -1 - pseudo)
    _, obj = np.unique(key, return_inverse=True)
    obj = obj.astype(np.int64)
    n_obj = int(obj.max()) + 1
    # Majority class per object (-1 when most of its points are unlabelled).
    cls = np.full(n_obj, -1, np.int64)
    lab = scan.labels + 1  # 0 = unlabelled
    votes = np.zeros((n_obj, len(SCANNET20_NAMES) + 1), np.int64)
    np.add.at(votes, (obj, lab), 1)
    cls = votes.argmax(axis=1) - 1
    return obj, cls


@dataclass
class Surface:
    """What is splatted: samples on the scan's surface.

    Attributes:
        positions: (M, 3) float32; radius: (M,) float32 splat radius, metres.
        source: (M,) int64 scan point each sample takes its colour, normal and labels from.
    """

    positions: np.ndarray
    radius: np.ndarray
    source: np.ndarray


def surface_samples(scan: LabelledScan, splat_scale: float, rng: np.random.Generator) -> Surface:
    """The points themselves (radius from their 3 nearest neighbours), or a mesh sampled over its faces."""
    pts = scan.points.astype(np.float64)
    if scan.faces is not None and len(scan.faces):
        a, b, c = pts[scan.faces[:, 0]], pts[scan.faces[:, 1]], pts[scan.faces[:, 2]]
        area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
        edge = np.median(np.linalg.norm(b - a, axis=1))
        spacing = max(edge / 2, 0.004)
        per = np.minimum(np.ceil(area / spacing**2).astype(np.int64), 64)
        tri = np.repeat(np.arange(len(area)), per)
        r1, r2 = rng.random(len(tri)), rng.random(len(tri))
        s = np.sqrt(r1)
        w = np.column_stack([1 - s, s * (1 - r2), s * r2])
        P = w[:, :1] * a[tri] + w[:, 1:2] * b[tri] + w[:, 2:] * c[tri]
        src = scan.faces[tri, np.argmax(w, axis=1)]
        P = np.concatenate([P, pts])
        src = np.concatenate([src, np.arange(scan.num_points)])
        rad = np.full(len(P), spacing * 0.75 * splat_scale)
        return Surface(P.astype(np.float32), rad.astype(np.float32), src.astype(np.int64))
    d, _ = cKDTree(pts).query(pts, k=4)
    rad = np.clip(np.mean(d[:, 1:], axis=1) * splat_scale, 0.004, 0.06)
    return Surface(scan.points, rad.astype(np.float32), np.arange(scan.num_points, dtype=np.int64))


@dataclass
class Splat:
    """A z-buffered view. depth: (H, W) float32 metres (0 = nothing); source: (H, W) int64 scan point or -1."""

    depth: np.ndarray
    source: np.ndarray


def splat(surface: Surface, K: np.ndarray, camera_to_world: np.ndarray, hw: tuple[int, int]) -> Splat:
    """Render ``surface`` from one camera: each sample covers a disc of its radius, nearest wins."""
    H, W = hw
    w2c = np.linalg.inv(camera_to_world)
    pc = surface.positions @ w2c[:3, :3].T.astype(np.float32) + w2c[:3, 3].astype(np.float32)
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * pc[:, 0] / z + K[0, 2]
        v = K[1, 1] * pc[:, 1] / z + K[1, 2]
        r = surface.radius * K[0, 0] / z
    ok = (z > _NEAR) & (u > -r - 1) & (u < W + r) & (v > -r - 1) & (v < H + r)
    sel = np.nonzero(ok)[0]
    if len(sel) == 0:
        return Splat(np.zeros((H, W), np.float32), np.full((H, W), -1, np.int64))
    u, v, z, r = u[sel], v[sel], z[sel], r[sel]
    cu, cv = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    half = np.clip(np.ceil(r - 0.5), 0, 6).astype(np.int64)
    key = (np.round(z * 1e4).astype(np.int64) << 26) | np.arange(len(sel), dtype=np.int64)
    buf = np.full(H * W, np.iinfo(np.int64).max, np.int64)
    for s in np.unique(half):
        m = np.nonzero(half == s)[0]
        dy, dx = np.mgrid[-s : s + 1, -s : s + 1].reshape(2, -1)
        disc = dy * dy + dx * dx <= (s + 0.5) ** 2
        dy, dx = dy[disc], dx[disc]
        pu = (cu[m, None] + dx[None, :]).ravel()
        pv = (cv[m, None] + dy[None, :]).ravel()
        inb = (pu >= 0) & (pu < W) & (pv >= 0) & (pv < H)
        np.minimum.at(buf, pv[inb] * W + pu[inb], np.repeat(key[m], len(dx))[inb])
    hit = buf != np.iinfo(np.int64).max
    local = np.where(hit, buf & ((1 << 26) - 1), 0)
    depth = np.where(hit, (buf >> 26) / 1e4, 0.0).astype(np.float32).reshape(H, W)
    source = np.where(hit, surface.source[sel[local]], -1).reshape(H, W)
    return Splat(depth, source)


def _sample_at(a: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-pixel resampling of an (H, W, ...) image to ``dst_hw`` (centre-aligned pixels)."""
    (H, W), (h, w) = src_hw, dst_hw
    ys = np.minimum(((np.arange(h) + 0.5) * H / h).astype(np.int64), H - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * W / w).astype(np.int64), W - 1)
    return a[ys][:, xs]


def sensor_depth(depth: np.ndarray, normal: np.ndarray, view_dir: np.ndarray, config: ScanRenderConfig,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(H, W) uint16 millimetres: Kinect-like axial noise, holes at edges/grazing angles/in clumps, range limit."""
    valid = depth > 0
    sigma = (0.0012 + 0.0019 * (depth - 0.4) ** 2) * config.depth_noise
    z = depth + sigma * rng.normal(size=depth.shape)
    bad = ~valid | (depth > config.max_depth)
    big = np.where(valid, depth, 0.0)
    lo = ndimage.minimum_filter(np.where(valid, depth, np.inf), size=3)
    hi = ndimage.maximum_filter(big, size=3)
    edge = valid & ((hi - lo) > 0.06 + 0.03 * depth)
    bad |= edge & (rng.random(depth.shape) < config.edge_dropout)
    cos = np.abs(np.sum(normal * view_dir, axis=-1))
    bad |= valid & (cos < 0.12)
    if config.depth_hole_prob > 0:
        h, w = depth.shape
        coarse = rng.random(((h + 7) // 8, (w + 7) // 8)) < config.depth_hole_prob * 0.5
        bad |= np.kron(coarse, np.ones((8, 8), dtype=bool))[:h, :w]
        bad |= rng.random(depth.shape) < config.depth_hole_prob * 0.5
    mm = np.where(bad, 0, np.round(z * 1000.0))
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _free_space(scan: LabelledScan, config: ScanRenderConfig):
    """Floor height, a 10 cm grid of where a person can stand, and its origin."""
    pts, lab = scan.points, scan.labels
    floor = lab == SCANNET20_NAMES.index("floor")
    z_floor = float(np.median(pts[floor, 2])) if floor.sum() > 100 else float(np.percentile(pts[:, 2], 2))
    cell = 0.1
    lo = pts[:, :2].min(axis=0) - 0.5
    ij = np.floor((pts[:, :2] - lo) / cell).astype(np.int64)
    shape = tuple(ij.max(axis=0) + 3)
    footprint = np.zeros(shape, bool)
    footprint[ij[:, 0], ij[:, 1]] = True
    footprint = ndimage.binary_fill_holes(ndimage.binary_closing(footprint, iterations=3))
    footprint = ndimage.binary_erosion(footprint, iterations=2)
    band = (pts[:, 2] > z_floor + 0.15) & (pts[:, 2] < z_floor + 2.0)
    occ = np.zeros(shape, bool)
    occ[ij[band, 0], ij[band, 1]] = True
    dist = ndimage.distance_transform_edt(~occ) * cell
    free = footprint & (dist >= config.clearance)
    if free.sum() < 4:  # a cramped crop: stand where it is least cramped
        free = footprint & (dist >= np.percentile(dist[footprint], 80)) if footprint.any() else dist >= dist.max()
    return z_floor, free, lo, cell


def camera_path(scan: LabelledScan, config: ScanRenderConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """(4, 4) camera-to-world poses of a hand-held scan: a loop through the free space, turning
    between looking out at the walls and in across the room, tilted down, with hand shake."""
    z_floor, free, lo, cell = _free_space(scan, config)
    fi = np.argwhere(free)
    fxy = lo + (fi + 0.5) * cell
    centre = np.median(scan.points[:, :2], axis=0)
    rel = fxy - centre
    ang, rad = np.arctan2(rel[:, 1], rel[:, 0]), np.linalg.norm(rel, axis=1)
    n = config.n_frames
    phase, phase2 = rng.uniform(0, 2 * np.pi, 2)
    poses = []
    for i in range(n):
        t = i / n
        theta = phase + 2 * np.pi * t
        # Free cells in this direction from the room centre; walk at a varying depth into them.
        near = np.abs(np.angle(np.exp(1j * (ang - theta)))) < np.radians(12)
        if near.sum() < 3:
            near = np.abs(np.angle(np.exp(1j * (ang - theta)))) < np.radians(40)
        cand = np.nonzero(near)[0] if near.any() else np.arange(len(fxy))
        q = 0.5 + 0.25 * np.sin(4 * np.pi * t + phase2)
        j = cand[np.argmin(np.abs(rad[cand] - np.quantile(rad[cand], q)))]
        xy = fxy[j] + rng.normal(0, 0.05, 2)
        eye = np.array([xy[0], xy[1], z_floor + config.eye_height + rng.normal(0, config.height_jitter)])
        # Out at the walls (0) and in across the room (pi), three times round the loop.
        yaw = theta + np.pi * (0.5 - 0.5 * np.cos(6 * np.pi * t)) + rng.normal(0, 0.2)
        pitch = -np.radians(config.pitch_deg + rng.normal(0, 10.0))
        fwd = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
        pose = look_at(eye, eye + fwd, roll_deg=float(rng.normal(0, 2.0)))
        poses.append(_jitter(pose, config, rng))
    return poses


def _jitter(pose: np.ndarray, config: ScanRenderConfig, rng: np.random.Generator) -> np.ndarray:
    """Hand shake: a small random rotation about the camera centre and a small shift."""
    from scipy.spatial.transform import Rotation

    out = pose.copy()
    rot = Rotation.from_rotvec(np.radians(config.pose_jitter_deg) * rng.normal(size=3)).as_matrix()
    out[:3, :3] = pose[:3, :3] @ rot
    out[:3, 3] += rng.normal(0, config.pose_jitter_m, 3)
    return out


@dataclass
class ScanRenderResult:
    """What :func:`render_scan` wrote. path: the scene folder; frames: views written; seconds: wall time."""

    path: Path
    frames: int
    masks_per_frame: float
    seconds: float


def render_scan(scan_path: str | Path | LabelledScan, out_dir: str | Path,
                config: ScanRenderConfig | None = None) -> ScanRenderResult:  # fmt: skip
    """Write ``out_dir`` (a scene folder named like it) in the ScanNet export layout from a labelled scan.

    Writes ``<name>_vh_clean_2.ply`` (the scan's points in order, colours, normals, faces if any),
    ``<name>_vh_clean_2.labels.ply`` (NYU40 ``label``, scan ``instance``), ``color/``, ``depth/``,
    ``pose/``, ``intrinsic/``, ``features_2d/<id>.npz`` (per-mask), ``text_embeddings.npz`` and
    ``synthetic.json`` (config and counts).
    """
    config = config or ScanRenderConfig()
    config.validate()
    out_dir = Path(out_dir)
    name = out_dir.name
    if not name or name.startswith("."):
        raise InputError(f"synth --from-scan: bad output folder name {str(out_dir)!r}")
    final = check_scene_folder(out_dir)
    t0 = time.perf_counter()
    scan = scan_path if isinstance(scan_path, LabelledScan) else read_labelled_scan(scan_path)
    if config.crop is not None:
        scan = crop_scan(scan, config.crop)
    rng = np.random.default_rng([config.seed, 90210])
    obj, obj_cls = object_ids(scan)
    reading: SceneReading = decide_reading(obj_cls, config.vlm, rng)
    text = text_embeddings(config.feature_dim, config.text_seed)
    common = common_direction(text, config.text_seed)
    surface = surface_samples(scan, config.splat_scale, rng)
    poses = camera_path(scan, config, rng)

    nyu = np.where(scan.labels >= 0, np.asarray(SCANNET20_NYU40)[np.maximum(scan.labels, 0)], 0)
    normals = {"nx": scan.normals[:, 0].astype(np.float32), "ny": scan.normals[:, 1].astype(np.float32),
               "nz": scan.normals[:, 2].astype(np.float32)}  # fmt: skip
    faces = scan.faces.astype(np.int32) if scan.faces is not None else np.zeros((0, 3), np.int32)
    with staged_scene(final) as out_dir:  # complete or absent, never half written
        write_ply(out_dir / f"{name}_vh_clean_2.ply", scan.points, scan.colors, extra=normals, faces=faces)
        write_ply(out_dir / f"{name}_vh_clean_2.labels.ply", scan.points, scan.colors,
                  extra={"label": nyu.astype(np.uint16), "instance": scan.instance.astype(np.int32)}, faces=faces)
        _write_npz(out_dir / "text_embeddings.npz", names=np.array(SCANNET20_NAMES), embeddings=text)

        K_color = intrinsics(config.color_hw, config.fov_deg)
        K_depth = rescale_intrinsics(K_color, config.color_hw, config.depth_hw)
        for fname, K in (("intrinsic_color.txt", K_color), ("intrinsic_depth.txt", K_depth)):
            K4 = np.eye(4)
            K4[:3, :3] = K
            write_text(out_dir / "intrinsic" / fname, _matrix_text(K4))

        n_masks, written = 0, 0
        for i, pose in enumerate(tqdm(poses, desc=f"render {name}", disable=bar_disable())):
            frng = np.random.default_rng([config.seed, 7919, i])
            view = splat(surface, K_color, pose, config.color_hw)
            for _turn in range(3):  # facing a wall from too close: turn a quarter and try again
                if (view.source >= 0).mean() > 0.35:
                    break
                pose = pose.copy()
                c, s = np.cos(np.pi / 2), np.sin(np.pi / 2)
                Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
                pose[:3, :3] = Rz @ pose[:3, :3]
                view = splat(surface, K_color, pose, config.color_hw)
            fid = str(i * config.frame_id_step)
            hit = view.source >= 0
            src = np.maximum(view.source, 0)
            # Colour: exposure varies per frame; small holes filled from the nearest splat, the rest grey.
            gain = frng.uniform(0.88, 1.12)
            rgb = scan.colors[src].astype(np.float32) / 255.0 * gain
            if not hit.all():
                dist, (iy, ix) = ndimage.distance_transform_edt(~hit, return_indices=True)
                rgb = np.where((dist <= 3)[..., None], rgb[iy, ix], 0.5)
            rgb8 = np.clip(rgb * 255 + frng.normal(0, 2.0, rgb.shape), 0, 255).astype(np.uint8)
            _write_image(out_dir / "color" / f"{fid}.jpg", rgb8, quality=config.jpeg_quality)

            d_depth = _sample_at(view.depth, config.color_hw, config.depth_hw)
            d_src = _sample_at(view.source, config.color_hw, config.depth_hw)
            nrm = np.where((d_src >= 0)[..., None], scan.normals[np.maximum(d_src, 0)], 0.0)
            pts = np.where((d_src >= 0)[..., None], scan.points[np.maximum(d_src, 0)], pose[:3, 3])
            dirs = pts - pose[:3, 3]
            dirs /= np.maximum(np.linalg.norm(dirs, axis=-1, keepdims=True), 1e-9)
            _write_image(out_dir / "depth" / f"{fid}.png", sensor_depth(d_depth, nrm, dirs, config, frng))
            write_text(out_dir / "pose" / f"{fid}.txt", _matrix_text(pose))

            f_src = _sample_at(view.source, config.color_hw, config.feature_hw)
            f_obj = np.where(f_src >= 0, obj[np.maximum(f_src, 0)], -1)
            f_depth = _sample_at(view.depth, config.color_hw, config.feature_hw)
            f_rgb = _sample_at(rgb8, config.color_hw, config.feature_hw).astype(np.float32) / 255.0
            masks = simulate_view(f_obj, f_depth, f_rgb, reading, text, common, config.vlm, frng)
            n_masks += len(masks.embeddings)
            _write_npz(out_dir / "features_2d" / f"{fid}.npz", segments=masks.segments, embeddings=masks.embeddings)
            written += 1

        seconds = time.perf_counter() - t0
        write_json(
            out_dir / "synthetic.json",
            {
                "name": name,
                "from_scan": str(scan_path) if not isinstance(scan_path, LabelledScan) else scan.name,
                "config": dataclasses.asdict(config),
                "num_points": scan.num_points,
                "num_faces": 0 if scan.faces is None else int(len(scan.faces)),
                "num_objects": int(len(obj_cls)),
                "num_frames": written,
                "masks_per_frame": n_masks / max(written, 1),
                "seconds": seconds,
            },
        )
    out_dir = final
    log.info("%s: %d points, %d views rendered in %.1f s", out_dir, scan.num_points, written, seconds)
    return ScanRenderResult(out_dir, written, n_masks / max(written, 1), seconds)


__all__ = [
    "LabelledScan", "ScanRenderResult", "Splat", "Surface", "camera_path", "crop_scan", "object_ids",
    "read_labelled_scan", "render_scan", "sensor_depth", "splat", "surface_samples",
]  # fmt: skip
