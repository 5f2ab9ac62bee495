"""Cheap checks of a read scene, before any heavy work: what ``geopurify inspect`` prints, and what
``segment`` and ``train`` run first.

* **Frames**: found, usable, skipped by reason (from the reader).
* **Cameras**: intrinsics and depth scale (validated by the readers), and the pose convention checked
  by reprojection: for each checked frame, the fraction of the cloud's points projected into its
  depth image whose depth agrees (``|d - z| <= tolerance * z``), and the fraction of its own depth
  samples that agree with the next frame's depth. A wrong pose convention or depth scale shows as
  agreement near zero.
* **2D features**: the expected ``features_2d/<id>.npz`` names and how many exist; none at all is an
  error (exit 2) before lifting, some missing a warning.
* **Size**: points, voxels, the memory estimate of ``segment``.

Everything here reads depth images and at most ``sample_points`` points, never the 2D encoder.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, FrameError, InputError
from .geometry import VOXEL_SIZE
from .io.scene import Frame, Scene

log = logging.getLogger(__name__)


@dataclass
class CheckConfig:
    """Options of :func:`check_scene`.

    Attributes:
        max_frames: frames checked by reprojection (evenly spaced when there are more).
        sample_points: cloud points projected into each checked frame (a fixed random subset).
        tolerance: relative depth agreement, ``|d - z| <= tolerance * z``.
        min_frame_agreement: a frame whose depth agrees with fewer of the points projected into it
            is reported (and counted in run.json).
        min_seen_fraction: fewer points seen by the checked frames than this is reported.
        stride: pixel stride of the neighbour-depth check.
    """

    max_frames: int = 100
    sample_points: int = 20000
    tolerance: float = 0.05
    min_frame_agreement: float = 0.05
    min_seen_fraction: float = 0.20
    stride: int = 8

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.sample_points < 1 or self.stride < 1:
            raise ConfigError("check max_frames, sample_points and stride must be >= 1")
        for name in ("tolerance", "min_frame_agreement", "min_seen_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"check {name} must be in (0, 1), got {getattr(self, name)}")


@dataclass
class FrameCheck:
    """One frame's reprojection check: fractions in [0, 1], None when nothing could be compared."""

    frame_id: str
    projected: int
    cloud_agreement: float | None
    neighbour_agreement: float | None


@dataclass
class FeatureFiles:
    """The precomputed 2D features a scene needs: ``expected`` frame count, ``present`` of them."""

    folder: str
    rule: str
    expected: int
    present: int
    examples: list[str]
    missing: list[str]
    found_other: list[str]
    dim: int | None = None


@dataclass
class SceneReport:
    """What :func:`check_scene` found; ``warnings`` are one-line messages, also logged."""

    name: str
    layout: str
    frames_found: int
    frames_usable: int
    frames_skipped: dict[str, int]
    depth_scale: float | None
    intrinsics: dict[str, Any] | None
    points: int
    voxels: int
    frame_checks: list[FrameCheck] = field(default_factory=list)
    seen_fraction: float | None = None
    low_agreement_frames: list[str] = field(default_factory=list)
    features: FeatureFiles | None = None
    memory_bytes: int | None = None
    lifted_seen_fraction: float | None = None
    pose_source: str | None = None
    #: usable frames that repeat an earlier one, and frames sharing another image's id (``io.frames.warn_duplicates``)
    frames_repeated: int = 0
    frame_id_clashes: int = 0
    warnings: list[str] = field(default_factory=list)
    #: why ``segment``/``train`` would refuse this scene (one line; ``inspect`` then exits 2), else None
    refused: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        """Write the report as JSON, atomically (``geopurify inspect --json``); numpy scalars as floats."""
        from .utils.atomic import write_json

        write_json(Path(path), json.loads(json.dumps(self.to_dict(), default=float)))

    def counts(self) -> dict[str, Any]:
        """The figures ``segment``/``train`` add to run.json's counts."""
        out: dict[str, Any] = {
            "frames_checked": len(self.frame_checks),
            "low_agreement_frames": len(self.low_agreement_frames),
        }
        if self.seen_fraction is not None:
            out["checked_seen_fraction"] = round(self.seen_fraction, 4)
        if self.lifted_seen_fraction is not None:
            out["seen_fraction"] = self.lifted_seen_fraction
        for key in ("frames_repeated", "frame_id_clashes"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.warnings:
            out["check_warnings"] = list(self.warnings)
        return out

    def lines(self) -> list[str]:
        """The human-readable report ``geopurify inspect`` prints."""
        out = [f"scene      {self.name} (layout {self.layout})"]
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.frames_skipped.items())) or "none"
        chosen = self.frames_usable + sum(self.frames_skipped.values())
        sel = f", {chosen} selected (--frame-skip/--max-frames)" if chosen != self.frames_found else ""
        out.append(f"frames     {self.frames_found} found{sel}, {self.frames_usable} usable; skipped: {skipped}")
        if self.frames_repeated or self.frame_id_clashes:
            out.append(f"           {self.frames_repeated} repeat an earlier frame (kept, so counted twice); "
                       f"{self.frame_id_clashes} share another image's id (and its features_2d file)")
        if self.intrinsics:
            i = self.intrinsics
            out.append(f"intrinsics colour {i['color_size']}: {_k_text(i['K_color'])}")
            out.append(f"           depth  {i['depth_size']}: {_k_text(i['K_depth'])}")
        if self.depth_scale is not None:
            out.append(f"depth      {self.depth_scale:g} units per metre")
        if self.pose_source:
            out.append(f"poses      {self.pose_source}")
        if self.frame_checks:
            cloud = [c.cloud_agreement for c in self.frame_checks if c.cloud_agreement is not None]
            nb = [c.neighbour_agreement for c in self.frame_checks if c.neighbour_agreement is not None]
            med, worst = (_pct(np.median(cloud)), _pct(min(cloud))) if cloud else ("n/a", "n/a")
            out.append(
                f"{'' if self.pose_source else 'poses':11s}{len(self.frame_checks)} frames checked by reprojection: "
                f"depth agrees with the cloud for {med} of projected points (median, worst {worst}); "
                f"with the next frame's depth {_pct(np.median(nb)) if nb else 'n/a'}"
            )
            if self.seen_fraction is not None:
                out.append(f"           {_pct(self.seen_fraction)} of sampled points agree with some checked frame")
            if self.low_agreement_frames:
                shown = ", ".join(self.low_agreement_frames[:5])
                out.append(f"           {len(self.low_agreement_frames)} frames agree with under "
                           f"5% of their points: {shown}{' ...' if len(self.low_agreement_frames) > 5 else ''}")
        if self.features is not None:
            f = self.features
            out.append(f"features   {f.folder}/<id>.npz, <id> = {f.rule}")
            out.append(f"           expected e.g. {', '.join(f.examples)}; present {f.present} of {f.expected}"
                       + (f" ({f.dim}-d)" if f.dim else ""))
            if f.missing and f.present:
                out.append(f"           missing e.g. {', '.join(f.missing[:3])}")
            if f.found_other:
                out.append(f"           the folder holds other names, e.g. {', '.join(f.found_other[:3])}")
        out.append(f"size       {self.points} points, {self.voxels} voxels")
        if self.memory_bytes is not None:
            out.append(f"memory     segment needs about {self.memory_bytes / 2**30:.2f} GiB")
        else:
            out.append("memory     unknown: no text_embeddings.npz or feature file gives the feature size")
        for w in self.warnings:
            out.append(f"WARNING    {w}")
        return out


def _pct(x: float) -> str:
    return f"{100 * float(x):.0f}%"


def _k_text(K: list[list[float]]) -> str:
    return f"fx {K[0][0]:.2f}, fy {K[1][1]:.2f}, cx {K[0][2]:.2f}, cy {K[1][2]:.2f}"


FEATURE_ID_RULES = {
    "scannet": "the pose file's stem (pose/<id>.txt)",
    "sens": "the frame's index in the .sens file (0, 1, ...)",
    "matterport": "the colour image's stem (undistorted_color_images/<id>.jpg)",
    "7scenes": "the frame number (frame-<id>.color.png or .jpg; <seq>_<number> with seq-XX folders)",
    "tum": "the colour timestamp with 6 decimals, as in rgb.txt (1305031102.175304)",
    "generic": "the colour file's stem (the 'color' glob)",
}


def feature_files(scene: Scene, folder: str = "features_2d") -> FeatureFiles | None:
    """Which ``<root>/features_2d/<id>.npz`` the scene's frames need, and which exist (no file is read
    except one, for the feature dimension)."""
    if not scene.frames or scene.root is None:
        return None
    root = scene.root if scene.root.is_dir() else scene.root.parent
    d = root / folder
    ids = [f.frame_id for f in scene.frames]
    has = [(d / f"{i}.npz").is_file() for i in ids]
    present = [i for i, h in zip(ids, has) if h]
    missing = [f"{i}.npz" for i, h in zip(ids, has) if not h]
    wanted = set(ids)
    other = sorted(p.name for p in d.glob("*.npz") if p.stem not in wanted)[:5] if d.is_dir() else []
    dim = _feature_dim(d / f"{present[0]}.npz") if present else None
    layout = str(scene.meta.get("layout", ""))
    return FeatureFiles(
        folder=str(d), rule=FEATURE_ID_RULES.get(layout, "the frame id"), expected=len(ids), present=len(present),
        examples=[f"{i}.npz" for i in ids[:3]], missing=missing[:10], found_other=other, dim=dim,
    )


def _feature_dim(path: Path) -> int | None:
    """D of one feature file, reading only its array headers."""
    try:
        with zipfile.ZipFile(path) as z:
            for key in ("feat", "embeddings"):
                if f"{key}.npy" in z.namelist():
                    with z.open(f"{key}.npy") as f:
                        version = np.lib.format.read_magic(f)
                        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                else np.lib.format.read_array_header_2_0)
                        shape, _, _ = read(f)
                    return int(shape[-1]) if shape else None
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return None


def _sample_frames(frames: list[Frame], n: int) -> list[int]:
    if len(frames) <= n:
        return list(range(len(frames)))
    return sorted(set(np.linspace(0, len(frames) - 1, n).round().astype(int).tolist()))


def _depth(frame: Frame) -> np.ndarray | None:
    try:
        d = np.asarray(frame.depth(), dtype=np.float64)
    except FrameError as exc:
        log.debug("check skips frame %s: %s", frame.frame_id, exc)
        return None
    return d if d.ndim == 2 else None


def _agreement(points: np.ndarray, frame: Frame, depth: np.ndarray, tol: float) -> tuple[int, float | None, np.ndarray]:
    """(points projected onto valid depth, fraction agreeing, (P,) bool agreeing) for (P, 3) world points."""
    from .lifting.projection import project_points

    p = project_points(points, frame.K_depth, np.linalg.inv(frame.camera_to_world))
    h, w = depth.shape
    with np.errstate(invalid="ignore"):
        u, v = np.round(p.u), np.round(p.v)
        inside = (p.z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    agree = np.zeros(len(points), bool)
    idx = np.flatnonzero(inside)
    d = depth[v[idx].astype(np.int64), u[idx].astype(np.int64)]
    valid = d > 0
    idx, d = idx[valid], d[valid]
    if not len(idx):
        return 0, None, agree
    ok = np.abs(d - p.z[idx]) <= tol * p.z[idx]
    agree[idx[ok]] = True
    return len(idx), float(ok.mean()), agree


def _neighbour_agreement(a: Frame, da: np.ndarray, b: Frame, db: np.ndarray, cfg: CheckConfig) -> float | None:
    """Fraction of frame a's depth samples (every ``stride``-th pixel) that frame b's depth confirms."""
    s = cfg.stride
    v, u = np.mgrid[0 : da.shape[0] : s, 0 : da.shape[1] : s]
    z = da[v, u]
    ok = z > 0
    if not ok.any():
        return None
    K = a.K_depth
    u, v, z = u[ok], v[ok], z[ok]
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    T = np.asarray(a.camera_to_world, dtype=np.float64)
    world = cam @ T[:3, :3].T + T[:3, 3]
    n, frac, _ = _agreement(world, b, db, cfg.tolerance)
    # a pair that barely overlaps says nothing
    return frac if n >= max(20, 0.05 * len(world)) else None


def check_frames(scene: Scene, cfg: CheckConfig) -> tuple[list[FrameCheck], float | None]:
    """Reprojection checks of up to ``cfg.max_frames`` frames; returns (checks, fraction of sampled points
    some checked frame's depth agrees with)."""
    if not scene.frames or not scene.num_points:
        return [], None
    rng = np.random.default_rng(0)
    n = scene.num_points
    sample = np.sort(rng.choice(n, size=min(n, cfg.sample_points), replace=False))
    pts = np.asarray(scene.points, dtype=np.float64)[sample]
    seen = np.zeros(len(pts), bool)
    out: list[FrameCheck] = []
    nxt: tuple[int, np.ndarray | None] | None = None  # frame i+1's depth, read for frame i's neighbour check
    for i in _sample_frames(scene.frames, cfg.max_frames):
        f = scene.frames[i]
        d = nxt[1] if nxt is not None and nxt[0] == i else _depth(f)
        if d is None:
            continue
        count, frac, agree = _agreement(pts, f, d, cfg.tolerance)
        seen |= agree
        nb = None
        if i + 1 < len(scene.frames):
            d2 = _depth(scene.frames[i + 1])
            nxt = (i + 1, d2)
            if d2 is not None:
                nb = _neighbour_agreement(f, d, scene.frames[i + 1], d2, cfg)
        out.append(FrameCheck(f.frame_id, count, None if frac is None else round(frac, 4),
                              None if nb is None else round(nb, 4)))
    return out, (float(seen.mean()) if out else None)


def _in_view(points: np.ndarray, frame: Frame) -> bool:
    """Whether any of (P, 3) world ``points`` lies in front of ``frame`` and inside its depth or colour image."""
    from .geometry.camera import camera_points, project_camera

    cam = camera_points(points, frame.world_to_camera)
    for K, (h, w) in ((frame.K_depth, frame.depth_size), (frame.K_color, frame.color_size)):
        p = project_camera(cam, K)
        with np.errstate(invalid="ignore"):
            if np.any((p.z > 0) & (p.u >= -0.5) & (p.u < w - 0.5) & (p.v >= -0.5) & (p.v < h - 0.5)):
                return True
    return False


def any_point_in_view(scene: Scene, cfg: CheckConfig, chunk: int = 200_000) -> bool:
    """Whether any frame has any cloud point in front of it and inside its image: projection only, no
    image is read. Lifting sees a subset of these points (it also needs agreeing depth), so False means
    lifting would see nothing. A fixed subsample of ``cfg.sample_points`` points is tried against every
    frame first; only when it finds nothing are all points projected (stopping at the first hit), so a
    scene seen only in a corner is never refused."""
    if not scene.frames or not scene.num_points:
        return True
    pts = np.asarray(scene.points, dtype=np.float64)
    n = len(pts)
    sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, cfg.sample_points), replace=False))
    if any(_in_view(pts[sample], f) for f in scene.frames):
        return True
    if len(sample) == n:
        return False
    return any(_in_view(pts[s : s + chunk], f) for f in scene.frames for s in range(0, n, chunk))


def check_scene(
    scene: Scene,
    cfg: CheckConfig | None = None,
    voxel_size: float = VOXEL_SIZE,
    encoder: str = "auto",
    text_dim: int | None = None,
    memory_bytes: int | None = None,
    voxels: int | None = None,
) -> SceneReport:
    """Run the cheap checks on a read scene (see the module docstring); never raises for what it finds,
    and logs nothing: ``rep.warnings`` holds the findings, ``rep.refused`` what :func:`preflight` refuses.

    Args:
        encoder: the 2D encoder that will be used; feature files are listed for ``auto``/``precomputed``.
        text_dim: D of the class text embeddings, compared with the feature files' D.
        memory_bytes: the caller's memory estimate of ``segment``, reported as is.
        voxels: the scene's voxel count at ``voxel_size`` when the caller has its grid already
            (otherwise the points are voxelised here to count them).
    """
    from .encoders.scene import lifts_frames, nothing_to_lift, reads_feature_files
    from .geometry import voxelize

    cfg = cfg or CheckConfig()
    frames_found = int(scene.meta.get("frames_found") or len(scene.frames) + sum(scene.skipped_frames.values()))
    intr = None
    if scene.frames:
        f = scene.frames[0]
        intr = {"K_color": np.asarray(f.K_color).tolist(), "K_depth": np.asarray(f.K_depth).tolist(),
                "color_size": f"{f.color_size[1]}x{f.color_size[0]}",
                "depth_size": f"{f.depth_size[1]}x{f.depth_size[0]}"}
    if voxels is None:
        voxels = voxelize(scene.points, voxel_size).num_voxels if scene.num_points else 0
    rep = SceneReport(
        name=scene.name, layout=str(scene.meta.get("layout", "?")), frames_found=frames_found,
        frames_usable=len(scene.frames), frames_skipped=dict(scene.skipped_frames),
        depth_scale=scene.meta.get("depth_scale"), intrinsics=intr, points=scene.num_points, voxels=voxels,
        memory_bytes=memory_bytes, frames_repeated=int(scene.meta.get("frames_repeated", 0)),
        frame_id_clashes=int(scene.meta.get("frame_id_clashes", 0)),
    )
    if "pose_form" in scene.meta:
        rep.pose_source = (f"{scene.meta.get('poses_found')} poses ({scene.meta['pose_form']}), paired to frames "
                           f"by {scene.meta.get('pose_pairing')}")
    rep.frame_checks, rep.seen_fraction = check_frames(scene, cfg)
    if frames_found and not scene.frames and scene.point_features is None:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(scene.skipped_frames.items())) or "none listed"
        rep.refused = (f"{scene.name}: none of the {frames_found} frames found is usable (skipped: {skipped}); "
                       "there is nothing to lift 2D features from")
    elif why := nothing_to_lift(scene):  # no frame found at all, no per-point features: segment refuses it
        rep.refused = why
    # the sampled frames agreeing with no sampled point may be sparse coverage; refuse only when no
    # frame at all has a point in view, which lifting would find only after reading every frame
    elif scene.frames and not rep.seen_fraction and lifts_frames(scene, encoder) and not any_point_in_view(scene, cfg):
        rep.refused = (f"{scene.name}: no point of the cloud is in view of any of the {len(scene.frames)} frames; "
                       "check the pose convention (pose_convention camera_to_world / world_to_camera) and that "
                       "the poses belong to this cloud")
    rep.low_agreement_frames = [c.frame_id for c in rep.frame_checks
                                if c.cloud_agreement is not None and c.cloud_agreement < cfg.min_frame_agreement]
    hint = ("check the pose convention (pose_convention camera_to_world / world_to_camera, camera opencv / "
            "opengl) and the depth scale (--depth-scale)")
    if rep.low_agreement_frames:
        rep.warnings.append(
            f"{scene.name}: {len(rep.low_agreement_frames)} of {len(rep.frame_checks)} checked frames have depth "
            f"that agrees with under {_pct(cfg.min_frame_agreement)} of the points projected into them "
            f"(e.g. {rep.low_agreement_frames[0]}); {hint}"
        )
    if rep.seen_fraction is not None and rep.seen_fraction < cfg.min_seen_fraction:
        rep.warnings.append(
            f"{scene.name}: only {_pct(rep.seen_fraction)} of the points agree with any checked frame's depth; {hint}"
        )
    nb = [c.neighbour_agreement for c in rep.frame_checks if c.neighbour_agreement is not None]
    if nb and float(np.median(nb)) < cfg.min_seen_fraction:
        rep.warnings.append(
            f"{scene.name}: consecutive frames' depth agrees for only {_pct(np.median(nb))} of samples (median); {hint}"
        )
    if encoder in ("auto", "precomputed"):
        rep.features = feature_files(scene)
        ff = rep.features
        if ff is not None and Path(ff.folder).is_dir() and ff.present < ff.expected:
            rep.warnings.append(
                f"{ff.folder}: {ff.expected - ff.present} of {ff.expected} frames have no feature file "
                f"(expected names like {', '.join(ff.missing[:3])}; <id> = {ff.rule})"
            )
        if ff is not None and ff.dim is not None and text_dim is not None and ff.dim != text_dim:
            rep.warnings.append(f"{ff.folder}: 2D features have dimension {ff.dim} but the text embeddings {text_dim}")
        if ff is not None and ff.present == 0 and reads_feature_files(scene, encoder):
            rep.refused = _no_feature_file(ff)  # what preflight refuses first (:func:`refuse`)
    return rep


def preflight(scene: Scene, encoder: str, text_dim: int | None, student_dim: int | None = None,
              cfg: CheckConfig | None = None, voxel_size: float = VOXEL_SIZE,
              memory_bytes: int | None = None, voxels: int | None = None,
              student_file: str | os.PathLike | None = None) -> SceneReport:
    """:func:`check_scene`, then refuse before any heavy work what would fail after it.

    Raises:
        InputError: no feature file for any frame (names the expected ones), 2D features of another
            dimension than the text embeddings, and ``rep.refused``: frames found but none usable, no
            cloud point in view of any frame.
        ConfigError: a student trained on features of another dimension (naming ``student_file``).
    """
    cfg = cfg or CheckConfig()
    rep = check_scene(scene, cfg, voxel_size=voxel_size, encoder=encoder, text_dim=text_dim,
                      memory_bytes=memory_bytes, voxels=voxels)
    refuse(rep.features, encoder, text_dim, student_dim, student_file)
    if rep.refused:
        raise InputError(rep.refused)
    for w in rep.warnings:
        log.warning("%s", w)
    return rep


def _no_feature_file(ff: FeatureFiles) -> str:
    other = f"; it holds {', '.join(ff.found_other[:3])}" if ff.found_other else ""
    return (f"{ff.folder}: none of the {ff.expected} frames has a feature file: expected "
            f"{', '.join(ff.examples)}, ... (<id> = {ff.rule}){other}")


def refuse(ff: FeatureFiles | None, encoder: str, text_dim: int | None, student_dim: int | None,
           student_file: str | os.PathLike | None = None) -> None:
    """Raise for what would make lifting or purification fail (see :func:`preflight`)."""
    if ff is not None and encoder == "precomputed" and ff.present == 0:
        raise InputError(_no_feature_file(ff))
    if ff is not None and ff.dim is not None and text_dim is not None and ff.dim != text_dim:
        raise InputError(
            f"{ff.folder}: 2D features have dimension {ff.dim} but the text embeddings have {text_dim}; "
            "they must come from the same model"
        )
    if student_dim is not None and text_dim is not None and student_dim != text_dim:
        raise ConfigError(
            f"the student{f' {student_file}' if student_file else ''} expects {student_dim}-d features but this "
            f"scene's are {text_dim}-d: "
            "train a student on features from the same 2D model"
        )


def early_check(scene: Scene, encoder: str = "auto", text: str | None = None, student_dim: int | None = None,
                student_file: str | os.PathLike | None = None) -> None:
    """The feature checks of :func:`preflight` on a scene whose frames are read but whose cloud is not yet
    fused from depth (readers call it through ``ReadOptions.before_fusion``), so a missing or mis-named
    ``features_2d/`` or a student of another feature size is refused before the fusion's minutes.

    Only files are looked at: the precomputed features' names and D, and D of ``text`` (a text-embedding
    file) or of the scene's ``text_embeddings.npz``. Other encoders are checked later, by :func:`preflight`.
    """
    root = scene.root if scene.root is None or scene.root.is_dir() else scene.root.parent
    if root is None:
        return
    if encoder == "auto":
        encoder = "precomputed" if (root / "features_2d").is_dir() else "other"
    if encoder != "precomputed":
        return
    from .encoders.scene import scene_text_file

    text_dim = None
    te = Path(text) if text else scene_text_file(scene)
    if te is not None and te.is_file():
        from .encoders import load_text_embeddings

        text_dim = int(load_text_embeddings(te).embeddings.shape[1])
    refuse(feature_files(scene), encoder, text_dim, student_dim, student_file)


def after_lift(rep: SceneReport, points_seen: int, points: int, cfg: CheckConfig | None = None) -> None:
    """Warn (and record in ``rep``) when lifting saw under ``min_seen_fraction`` of the points."""
    cfg = cfg or CheckConfig()
    rep.lifted_seen_fraction = round(points_seen / max(points, 1), 4)
    if points and points_seen < cfg.min_seen_fraction * points:
        msg = (f"{rep.name}: lifting saw only {points_seen} of {points} points ({_pct(points_seen / points)}); "
               "check the pose convention (pose_convention, camera) and the depth scale (--depth-scale)")
        rep.warnings.append(msg)
        log.warning("%s", msg)


def inspect_scene(scene: Scene, voxel_size: float, encoder: str, k: int,
                  cfg: CheckConfig | None = None) -> SceneReport:
    """:func:`check_scene` with the memory estimate of a purified ``segment`` of ``k`` neighbours (D and
    C from the scene's ``text_embeddings.npz`` when there is one, else D from a feature file and C = 20);
    ``geopurify inspect`` passes its :class:`~geopurify.config.InspectConfig`."""
    from .utils.memory import estimate_segment_bytes

    dim, classes = None, 20
    from .encoders.scene import scene_text_file

    te = scene_text_file(scene)
    if te is not None:
        from .encoders import load_text_embeddings

        try:
            t = load_text_embeddings(te)
            dim, classes = int(t.embeddings.shape[1]), len(t.names)
        except InputError as exc:
            log.warning("%s", exc)
    ff = feature_files(scene) if encoder in ("auto", "precomputed") else None
    if dim is None and ff is not None:
        dim = ff.dim
    if dim is None and scene.point_features is not None:
        dim = int(scene.point_features.shape[1])
    need = estimate_segment_bytes(scene.num_points, dim, classes, k, True, True) if dim else None
    return check_scene(scene, cfg, voxel_size=voxel_size, encoder=encoder, text_dim=dim, memory_bytes=need)
