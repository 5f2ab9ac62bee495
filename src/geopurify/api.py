"""The Python API. The CLI calls exactly these functions.

>>> from geopurify import api
>>> # api.segment("scans/scene0000_00", "out/scene0000_00", SegmentConfig(student="student/"))
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .checks import after_lift
from .config import LiftOptions, ReadConfig, SegmentConfig, TrainRunConfig, to_dict
from .encoders.base import TextEmbeddings
from .errors import ConfigError, InputError
from .io import ReadOptions, Scene, read_scene
from .utils.atomic import atomic_open, write_json, write_npy, write_text

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


# --------------------------------------------------------------------------- helpers
class StageTimer:
    """Seconds per named stage, for run.json."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 4)


def versions() -> dict[str, str]:
    import scipy
    import torch

    return {
        "geopurify": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def read_options(cfg: ReadConfig, before_fusion=None) -> ReadOptions:
    return ReadOptions(
        before_fusion=before_fusion,
        frame_skip=cfg.frame_skip,
        depth_scale=cfg.depth_scale,
        max_frames=cfg.max_frames,
        fuse_voxel_size=cfg.fuse_voxel_size,
        layout=cfg.layout,
        labels_tsv=cfg.labels_tsv,
        reader_options=dict(cfg.reader_options),
    )


def load_scene(path: str | Path, cfg: ReadConfig, lift: LiftOptions | None = None, student=None) -> Scene:
    """Read a scene (normals estimated when missing); with ``lift``, feature files are checked before
    any cloud is fused from depth (:func:`geopurify.checks.early_check`)."""
    from functools import partial

    from .checks import early_check

    early = partial(early_check, encoder=lift.encoder, text=lift.text,
                    student_dim=student.config.in_dim - 6 if student is not None else None) if lift else None
    scene = read_scene(path, read_options(cfg, early))
    if scene.normals is None:
        from .geometry import estimate_normals

        scene.normals = estimate_normals(scene.points)
    return scene


def resolve_text(scene: Scene, opts: LiftOptions, encoder=None) -> TextEmbeddings:
    """Class names and text embeddings: a file, the scene's ``text_embeddings.npz``, or the encoder's text tower."""
    from .encoders import load_text_embeddings

    if opts.text:
        return load_text_embeddings(Path(opts.text))
    # --classes, else the encoder's own vocabulary (xdecoder's; the classes `geopurify encode` embedded)
    prompts = list(opts.classes or []) or list(getattr(encoder, "classes", None) or [])
    if prompts and encoder is not None:
        return TextEmbeddings(names=prompts, embeddings=np.asarray(encoder.encode_text(prompts), np.float32))
    if scene.root is not None:
        root = scene.root if scene.root.is_dir() else scene.root.parent
        # the second is where `geopurify encode` writes them
        for cand in (root / "text_embeddings.npz", root / "features_2d" / "text_embeddings.npz"):
            if cand.is_file():
                return load_text_embeddings(cand)
    raise ConfigError(
        f"{scene.name}: no class text embeddings; pass --text FILE.npz (names, embeddings) "
        "or --classes with an encoder that has a text tower (e.g. --encoder clip --weights PATH)"
    )


def make_encoder(scene: Scene, opts: LiftOptions):
    """The 2D encoder for a scene, or None when the scene carries per-point features."""
    from .encoders import build_encoder

    name = opts.encoder
    if name == "auto":
        root = scene.root if scene.root is not None and scene.root.is_dir() else None
        if root is not None and (root / "features_2d").is_dir():
            name = "precomputed"
        elif scene.point_features is not None:
            return None
        else:
            raise ConfigError(
                f"{scene.name}: no features_2d/ folder and no per-point features; choose a 2D encoder "
                "with --encoder (clip, xdecoder, lseg) and its --weights"
            )
    if name == "precomputed":
        return build_encoder(name, scene=scene, **opts.encoder_options)
    from .encoders.encode import scene_encoder

    return scene_encoder(scene, name, opts.encoder_options, opts.classes)  # reads what `geopurify encode` wrote


def encode(scene_path: str | Path, config, read: ReadConfig | None = None):
    """``geopurify encode``: 2D features of every frame into ``features_2d/`` (resumable); see
    :mod:`geopurify.encoders.encode`. ``config`` is an :class:`~geopurify.encoders.encode.EncodeConfig`."""
    from .encoders.encode import encode_scene

    return encode_scene(read_scene(scene_path, read_options(read or ReadConfig())), config)


@dataclass
class Lifted:
    """Per-point 2D features after lifting. features (N, D) float32 unit rows; seen (N,) bool."""

    features: np.ndarray
    seen: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


def lift_scene(scene: Scene, opts: LiftOptions, text: TextEmbeddings, encoder) -> Lifted:
    """Lift (or take) per-point features and unit-normalise them."""
    from .lifting import LiftConfig, lift

    if encoder is None:
        feats = np.asarray(scene.point_features, np.float32)
        if feats.shape[0] != scene.num_points:
            raise InputError(f"{scene.name}: {feats.shape[0]} per-point features for {scene.num_points} points")
        seen = np.ones(scene.num_points, bool)
        stats: dict[str, Any] = {"source": "point_features"}
    else:
        cfg = LiftConfig(
            fusion=opts.fusion, top_views=opts.top_views, depth_tolerance=opts.depth_tolerance, border=opts.border
        )
        res = lift(scene.points, scene.frames, encoder, cfg, text=text.normalized(), scene_name=scene.name)
        feats, seen = res.features, res.seen
        skipped = dict(scene.skipped_frames)
        for k, v in res.skipped_frames.items():
            skipped[k] = skipped.get(k, 0) + v
        stats = {
            "frames_total": len(scene.frames) + sum(scene.skipped_frames.values()),
            "frames_used": res.frames_used,
            "frames_skipped": skipped,
            "point_views": int(res.point_views),
            "points_seen": int(seen.sum()),
        }
    if feats.shape[1] != text.embeddings.shape[1]:
        raise InputError(
            f"{scene.name}: 2D features have dimension {feats.shape[1]} but the text embeddings have "
            f"{text.embeddings.shape[1]}; they must come from the same model"
        )
    if not np.isfinite(feats).all():
        raise InputError(f"{scene.name}: lifted features contain NaN or inf")
    norm = np.linalg.norm(feats, axis=1, keepdims=True)
    feats = feats / np.maximum(norm, 1e-12)
    return Lifted(feats.astype(np.float32), seen, stats)


def voxel_inputs(scene: Scene, features: np.ndarray, voxel_size: float):
    """Voxel grid, the student's per-voxel inputs [feature | rgb | normal] and the mean features (V, D)."""
    from .geometry import voxelize
    from .student import student_inputs

    grid = voxelize(scene.points, voxel_size)
    vf = grid.reduce(features)
    vc = grid.reduce(scene.colors)
    vn = grid.reduce(scene.normals)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    return grid, student_inputs(vf, vc, vn), vf


def preflight(scene: Scene, encoder, text: TextEmbeddings, student, voxel_size: float, need: int | None = None):
    """The cheap checks of :mod:`geopurify.checks` before lifting (raises for what would fail after it)."""
    from .checks import preflight as run_checks

    return run_checks(scene, encoder.name if encoder is not None else "none", int(text.embeddings.shape[1]),
                      student.config.in_dim - 6 if student is not None else None, voxel_size=voxel_size,
                      memory_bytes=need)


def inspect(scene_path: str | Path, read: ReadConfig | None = None, voxel_size: float = 0.02,
            encoder: str = "auto", k: int = 96):
    """Read a scene without lifting and check it (:func:`geopurify.checks.inspect_scene`)."""
    from .checks import inspect_scene

    return inspect_scene(read_scene(scene_path, read_options(read or ReadConfig())), voxel_size, encoder, k)


def is_complete(out_dir: Path) -> bool:
    """An output folder is complete when its run.json says so (written last)."""
    run = out_dir / RUN_FILE
    if not run.is_file():
        return False
    try:
        return json.loads(run.read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- segment
def check_memory(scene: Scene, text: TextEmbeddings, cfg: SegmentConfig) -> int:
    """Refuse up front, with the estimate and what helps, a scene that would not fit in memory."""
    from .utils.memory import available_bytes, estimate_segment_bytes, parse_size

    need = estimate_segment_bytes(scene.num_points, text.embeddings.shape[1], len(text.names), cfg.k,
                                  cfg.purify, cfg.save_features)
    limit_text = cfg.memory_limit or os.environ.get("GEOPURIFY_MEMORY_LIMIT")
    have = parse_size(limit_text) if limit_text else available_bytes()
    if have is not None and need > have:
        hint = "--no-features (pools the class logits only), " if cfg.save_features else ""
        raise InputError(
            f"{scene.name}: {scene.num_points} points x {text.embeddings.shape[1]}-d features need about "
            f"{need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB is available; try {hint}a smaller -k, "
            "or split the scene"
        )
    return need


@dataclass
class SegmentResult:
    """What :func:`segment` produced. labels (N,) int64 indices into ``names``."""

    out_dir: Path
    labels: np.ndarray
    names: list[str]
    run: dict[str, Any]


def segment(scene_path: str | Path, out_dir: str | Path, config: SegmentConfig | None = None) -> SegmentResult:
    """Segment one scene: lift, (purify), classify, and write the output folder.

    Writes ``labels.txt``, ``labels.ply``, ``features.npy`` (float16), ``points.npy``, ``colors.npy``,
    ``names.json``, ``text_embeddings.npz``, ``raw_labels.txt`` (purified runs) and ``run.json`` (last).
    """
    import torch

    from .pooling import PoolConfig, purify
    from .segment import classify
    from .utils.device import configure_threads, pick_device
    from .viz.ply import palette, write_ply

    cfg = config or SegmentConfig()
    out_dir = Path(out_dir)
    t = StageTimer()
    configure_threads()
    if cfg.purify and not cfg.student:
        raise ConfigError("purification needs a trained student: pass --student PATH, or --no-purify")
    student = None
    if cfg.purify:
        from .student import load as load_student

        student = load_student(cfg.student)
    with t("read"):
        scene = load_scene(scene_path, cfg.read, cfg.lift, student)
    encoder = make_encoder(scene, cfg.lift)
    text = resolve_text(scene, cfg.lift, encoder)
    need = check_memory(scene, text, cfg)
    with t("check"):
        report = preflight(scene, encoder, text, student, cfg.voxel_size, need)
    with t("lift"):
        lifted = lift_scene(scene, cfg.lift, text, encoder)
    after_lift(report, lifted.stats.get("points_seen", scene.num_points), scene.num_points)
    T = torch.from_numpy(text.normalized())
    raw_labels = classify(lifted.features, text.normalized())
    counts: dict[str, Any] = {"points": scene.num_points, "classes": len(text.names), **lifted.stats,
                              **report.counts()}
    if cfg.purify:
        device = pick_device(cfg.device)
        with t("student"):
            grid, inputs, vfeat_np = voxel_inputs(scene, lifted.features, cfg.voxel_size)
            if student.config.in_dim != inputs.shape[1]:
                raise ConfigError(
                    f"student {cfg.student} expects {student.config.in_dim - 6}-d features but the scene's are "
                    f"{inputs.shape[1] - 6}-d: train a student on features from the same 2D model"
                )
            student = student.to(device).eval()
            with torch.no_grad():
                emb = student(
                    torch.from_numpy(grid.coords).to(device), torch.from_numpy(inputs).to(device)
                ).float()
        counts["voxels"] = grid.num_voxels
        pool_cfg = PoolConfig(k=cfg.k, sharpen=cfg.sharpen, steps=cfg.steps, knn=cfg.knn)
        centers = torch.from_numpy(grid.centers).to(device)
        vfeat = torch.from_numpy(vfeat_np).to(device)
        if cfg.save_features:
            res = purify(centers, emb, vfeat, pool_cfg, coords=grid.coords)
            pooled = res.values
            with t("classify"):
                labels_v = classify(pooled, T.to(pooled.device))
        else:  # closed set: pooling the C logits gives the same argmax as pooling D-dim features
            logits = vfeat @ T.to(device).T
            res = purify(centers, emb, logits, pool_cfg, coords=grid.coords)
            pooled = None
            with t("classify"):
                labels_v = torch.as_tensor(res.values).argmax(1)
        t.seconds["knn"] = round(res.seconds_knn, 4)
        t.seconds["pool"] = round(res.seconds_pool, 4)
        labels = grid.expand(np.asarray(torch.as_tensor(labels_v).cpu()))
        features = grid.expand(np.asarray(torch.as_tensor(pooled).cpu())) if pooled is not None else None
    else:
        with t("classify"):
            labels = raw_labels
        features = lifted.features if cfg.save_features else None
    labels = np.asarray(labels, np.int64)

    with t("write"):
        out_dir.mkdir(parents=True, exist_ok=True)
        stale = out_dir / RUN_FILE
        if stale.exists():
            stale.unlink()  # the folder is incomplete until the new run.json lands
        for tmp in out_dir.glob(".*.tmp"):  # left by a killed earlier run
            tmp.unlink()
        write_text(out_dir / "labels.txt", "\n".join(map(str, labels.tolist())) + "\n")
        if cfg.purify:
            write_text(out_dir / "raw_labels.txt", "\n".join(map(str, raw_labels.tolist())) + "\n")
        pal = palette(len(text.names))
        write_ply(out_dir / "labels.ply", scene.points, pal[labels], extra={"label": labels.astype(np.int32)})
        if features is not None:
            write_npy(out_dir / "features.npy", features.astype(np.float16))
        write_npy(out_dir / "points.npy", scene.points.astype(np.float32))
        write_npy(out_dir / "colors.npy", (scene.colors * 255).round().astype(np.uint8))
        write_json(out_dir / "names.json", list(text.names))
        with atomic_open(out_dir / "text_embeddings.npz", "wb") as f:
            np.savez(f, names=np.array(text.names), embeddings=text.embeddings.astype(np.float32))
    run = {
        "status": "complete",
        "command": "segment",
        "scene": str(scene_path),
        "scene_name": scene.name,
        "config": to_dict(cfg),
        "versions": versions(),
        "counts": counts,
        "seconds": t.seconds,
        "label_histogram": {n: int(c) for n, c in zip(text.names, np.bincount(labels, minlength=len(text.names)))},
    }
    write_json(out_dir / RUN_FILE, run)
    log.info("%s: %d points labelled -> %s", scene.name, scene.num_points, out_dir)
    return SegmentResult(out_dir, labels, list(text.names), run)


def segment_many(
    scenes: list[str], out_root: str | Path, config: SegmentConfig, rank: int = 0, world_size: int = 1
) -> dict[str, str]:
    """Segment a list of scenes, this rank's share (``scenes[rank::world_size]``); skip complete outputs.

    Returns {scene: "done" | "skipped" | "failed: <reason>"} for this rank's scenes.
    """
    from tqdm import tqdm

    from .errors import GeoPurifyError

    out_root = Path(out_root)
    status: dict[str, str] = {}
    mine = scenes[rank::world_size]
    for s in tqdm(mine, desc=f"scenes (rank {rank})", disable=None):
        out = out_root / Path(s.rstrip("/")).name
        if is_complete(out) and not config.overwrite:
            status[s] = "skipped"
            continue
        try:
            segment(s, out, config)
            status[s] = "done"
        except GeoPurifyError as exc:
            log.error("%s", exc)
            status[s] = f"failed: {exc}"
    return status


# --------------------------------------------------------------------------- train
def prepare_training_scene(path: str | Path, cfg: TrainRunConfig, teacher):
    """Read, lift and voxelise one scene into a :class:`geopurify.distill.TrainScene`."""
    from .distill import TrainScene

    scene = load_scene(path, cfg.read, cfg.lift)
    encoder = make_encoder(scene, cfg.lift)
    text = resolve_text(scene, cfg.lift, encoder)
    report = preflight(scene, encoder, text, None, cfg.voxel_size)
    lifted = lift_scene(scene, cfg.lift, text, encoder)
    after_lift(report, lifted.stats.get("points_seen", scene.num_points), scene.num_points)
    lifted.stats.update(report.counts())
    grid, inputs, _ = voxel_inputs(scene, lifted.features, cfg.voxel_size)
    feats = np.asarray(teacher.features(scene, grid), np.float32)
    if feats.shape[0] != grid.num_voxels:
        raise InputError(f"{scene.name}: teacher gave {feats.shape[0]} rows for {grid.num_voxels} voxels")
    return TrainScene(
        name=scene.name, coords=grid.coords, centers=grid.centers, inputs=inputs, teacher=feats
    ), lifted.stats


def train(scenes: list[str], out_dir: str | Path, config: TrainRunConfig | None = None, resume: bool = True):
    """Label-free distillation of a student on ``scenes``; writes ``student.safetensors`` and run.json.

    Under torchrun: one process group (gloo on CPU, NCCL on GPUs), each rank prepares its share of the
    scenes, gradients are all-reduced, rank 0 alone writes (see :func:`geopurify.distill.train`).
    """
    from .distill import TrainConfig, ddp
    from .distill import train as distill_train
    from .teachers import build_teacher
    from .utils.device import configure_threads

    cfg = config or TrainRunConfig()
    out_dir = Path(out_dir)
    configure_threads()
    t = StageTimer()
    overrides = {k: v for k, v in {"steps": cfg.steps, "width": cfg.width, "lr": cfg.lr}.items() if v is not None}
    tcfg = TrainConfig(voxel_size=cfg.voxel_size, seed=cfg.seed, device=cfg.device, **overrides)
    teacher = build_teacher(cfg.teacher, **cfg.teacher_options)
    with ddp.process_group(cfg.device) as info:
        with t("prepare"):
            prepared = ddp.map_shard(scenes, lambda s: prepare_training_scene(s, cfg, teacher), info)
        stats = ddp.gather_dict({ts.name: {"voxels": ts.num_voxels, **st} for ts, st in filter(None, prepared)}, info)
        with t("train"):
            model = distill_train([p and p[0] for p in prepared], tcfg, out_dir=out_dir, resume=resume)
        if info.is_main:
            write_json(
                out_dir / RUN_FILE,
                {
                    "status": "complete",
                    "command": "train",
                    "scenes": [str(s) for s in scenes],
                    "config": to_dict(cfg),
                    "train_config": to_dict(tcfg),
                    "world_size": info.world_size,
                    "versions": versions(),
                    "counts": stats,
                    "seconds": t.seconds,
                },
            )
    return model


# --------------------------------------------------------------------------- evaluate
_ALIASES = {"other": "otherfurniture", "other furniture": "otherfurniture", "fridge": "refrigerator"}


def _norm_name(name: str) -> str:
    """A class name or prompt reduced to the bare name ("a chair in a scene" -> "chair"), with aliases."""
    from .segment.query import normalize_phrase

    n = normalize_phrase(name)
    return _ALIASES.get(n, n)


def name_mapping(pred_names: list[str], target_names: list[str]) -> np.ndarray:
    """Index of each predicted class name in ``target_names`` (by normalised name), -1 if absent."""
    lookup = {_norm_name(n): i for i, n in enumerate(target_names)}
    return np.array([lookup.get(_norm_name(n), -1) for n in pred_names], dtype=np.int64)


def gt_indices(scene: Scene, label_set: str) -> np.ndarray:
    """Scene GT as (N,) int64 indices into ``label_set``; -1 = ignore."""
    from .labels import get_label_set, raw_to_index

    if scene.labels is None and "scannet200_raw" not in scene.meta:
        raise InputError(f"{scene.root or scene.name}: scene has no ground-truth labels")
    if scene.label_set == label_set:
        return scene.labels.astype(np.int64)
    if scene.label_set is None:
        raise InputError(f"{scene.root or scene.name}: unknown label set of the ground truth")
    if label_set == "scannet200" and "scannet200_raw" in scene.meta:  # .sens + aggregation + segs
        return raw_to_index(get_label_set("scannet200"), np.asarray(scene.meta["scannet200_raw"]))
    if f"labels_{label_set}" in scene.meta:  # e.g. a Pointcept folder with both segment20 and segment200
        return np.asarray(scene.meta[f"labels_{label_set}"], np.int64)
    if label_set.startswith("matterport") and "matterport_category_raw" in scene.meta \
            and "category_mapping" in scene.meta:  # a Matterport region: OpenScene's name-based sets
        from .labels import matterport_category_map, matterport_to_index, read_labels_tsv

        lut = matterport_category_map(read_labels_tsv(scene.meta["category_mapping"]), label_set)
        return matterport_to_index(np.asarray(scene.meta["matterport_category_raw"]), lut)
    if scene.label_set == "nyu40" and label_set in ("scannet20", "nyu40", "matterport21"):
        return raw_to_index(get_label_set(label_set), scene.labels)  # these sets use NYU40 ids
    raise InputError(
        f"{scene.root or scene.name}: ground truth is in {scene.label_set}, which does not map to {label_set}; "
        f"pass --label-set {scene.label_set}"
    )


@dataclass
class EvalResult:
    """Scores (a :class:`geopurify.eval.Scores`) plus the confusion matrix (C, C) int64."""

    scores: Any
    confusion: np.ndarray
    scenes: list[str]


def read_prediction(out_dir: Path) -> tuple[np.ndarray, list[str]]:
    """labels (N,) int64 and class names of a segment output folder."""
    lab, names = out_dir / "labels.txt", out_dir / "names.json"
    if not lab.is_file() or not names.is_file():
        raise InputError(f"{out_dir}: not a segment output (labels.txt and names.json expected)")
    try:
        labels = np.loadtxt(lab, dtype=np.int64, ndmin=1)
        names_list = json.loads(names.read_text())
    except ValueError as exc:
        raise InputError(f"{lab}: unreadable ({exc})") from None
    return labels, names_list


def evaluate(
    out: str | Path, gt: str | Path, protocol: str = "paper", label_set: str = "scannet20",
    read: ReadConfig | None = None, json_path: str | Path | None = None,
) -> EvalResult:
    """Score one output folder against one scene, or a folder of outputs against a folder of scenes.

    With folders, outputs and scenes pair by name and the confusion is summed over the dataset.
    """
    from .eval import confusion, scores
    from .labels import get_label_set

    out, gt = Path(out), Path(gt)
    lset = get_label_set(label_set)
    C = len(lset.names)
    if (out / "labels.txt").is_file():
        pairs = [(out, gt)]
    else:
        outs = sorted(p for p in out.iterdir() if (p / "labels.txt").is_file()) if out.is_dir() else []
        if not outs:
            raise InputError(f"{out}: no segment outputs found")
        pairs = [(o, gt / o.name) for o in outs]
    # one extra column for predictions of classes outside the benchmark: wrong, never ignored;
    # it has no GT points, so the means leave it out
    conf = np.zeros((C + 1, C + 1), np.int64)
    names_done = []
    for o, g in pairs:
        pred, pred_names = read_prediction(o)
        scene = read_scene(g, read_options(read or ReadConfig()))  # labels only: no normals needed
        if len(pred) != scene.num_points:
            raise InputError(f"{o}: {len(pred)} labels but the scene {g} has {scene.num_points} points")
        gti = gt_indices(scene, label_set)
        mapped = name_mapping(pred_names, lset.names)
        ok = (pred >= 0) & (pred < len(mapped))
        p = np.full(len(pred), C, np.int64)
        p[ok] = mapped[pred[ok]]
        p[p < 0] = C
        conf += confusion(gti, p, C + 1)
        names_done.append(scene.name)
    sc = scores(conf, list(lset.names) + ["(not in label set)"], protocol=protocol, split=lset.split)
    if json_path is not None:
        d = sc.to_dict()
        d.update(scenes=names_done, label_set=label_set, confusion=conf.tolist())
        write_json(json_path, d)
    return EvalResult(sc, conf, names_done)


def evaluate_instances(out: str | Path, gt: str | Path, label_set: str = "scannet20", read: ReadConfig | None = None,
                       json_path: str | Path | None = None):
    """Instance AP (:class:`geopurify.eval.instance.InstanceScores`) of ``instances.json`` against the GT
    instances of one scene, or of a folder of outputs against a folder of scenes (paired by name)."""
    from .eval.instance import InstanceEvaluator, predictions, thing_classes
    from .instances import JSON_FILE, read_instances
    from .labels import get_label_set

    out, gt = Path(out), Path(gt)
    lset = get_label_set(label_set)
    if (out / JSON_FILE).is_file():
        pairs = [(out, gt)]
    else:
        outs = sorted(p for p in out.iterdir() if (p / JSON_FILE).is_file()) if out.is_dir() else []
        if not outs:
            raise InputError(f"{out}: no {JSON_FILE} found (run `geopurify instances OUT` first)")
        pairs = [(o, gt / o.name) for o in outs]
    ev = InstanceEvaluator(len(lset.names), thing_classes(lset.names))
    for o, g in pairs:
        found = read_instances(o)
        scene = read_scene(g, read_options(read or ReadConfig()))
        if "instance" not in scene.meta:
            raise InputError(f"{g}: no GT instances (instance.npy, or an 'instance' property in the labels PLY)")
        if found.num_points != scene.num_points:
            raise InputError(f"{o}: instances of {found.num_points} points but the scene {g} has {scene.num_points}")
        pred = predictions(found, name_mapping(found.names, lset.names))
        ev.add(gt_indices(scene, label_set), scene.meta["instance"], pred)
    sc = ev.result(lset.names, split=lset.split)
    if json_path is not None:
        write_json(json_path, {**sc.to_dict(), "label_set": label_set, "scenes_evaluated": [str(p[1]) for p in pairs]})
    return sc


# --------------------------------------------------------------------------- query / render / view
@dataclass
class QueryResult:
    """scores (N, Q) float32 cosine similarity per phrase; masks: phrase -> (M,) int64 point indices."""

    scores: np.ndarray
    phrases: list[str]
    masks: dict[str, np.ndarray]
    objects: dict[str, list] = field(default_factory=dict)  # phrase -> ranked instances.ObjectMatch (--objects)


def _phrase_embeddings(out_dir: Path, phrases: list[str], text: str | None, encoder: str | None,
                       weights: str | None) -> np.ndarray:
    """(Q, D) embeddings of the phrases: an encoder's text tower, or lookup in a text-embedding file."""
    from .encoders import build_encoder, load_text_embeddings

    opts: dict[str, Any] = {"weights": weights} if weights else {}
    if not encoder and not text:
        # default: the text tower of the encoder that made the features (recorded in run.json)
        try:
            lift_cfg = json.loads((out_dir / RUN_FILE).read_text())["config"]["lift"]
        except (OSError, ValueError, KeyError, TypeError):
            lift_cfg = {}
        if lift_cfg.get("encoder") not in (None, "auto", "precomputed"):
            encoder = lift_cfg["encoder"]
            opts = {**lift_cfg.get("encoder_options", {}), **opts}
    if encoder:
        return np.asarray(build_encoder(encoder, **opts).encode_text(list(phrases)), np.float32)
    src = Path(text) if text else out_dir / "text_embeddings.npz"
    if not src.is_file():
        raise ConfigError(f"{out_dir}: no text embeddings to encode phrases; pass --text FILE or --encoder NAME")
    te = load_text_embeddings(src)
    lookup = {_norm_name(n): i for i, n in enumerate(te.names)}
    rows = []
    for ph in phrases:
        i = lookup.get(_norm_name(ph))
        if i is None:
            raise ConfigError(
                f"phrase {ph!r} is not in {src} (which holds: {', '.join(te.names[:12])}...); "
                "free-form phrases need a text encoder: --encoder clip --weights PATH"
            )
        rows.append(te.embeddings[i])
    return np.stack(rows).astype(np.float32)


def _slug(phrase: str, j: int) -> str:
    """File stem of a phrase's query outputs."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")[:60] or f"q{j}"


def query(out_dir: str | Path, phrases: list[str], text: str | None = None, encoder: str | None = None,
          weights: str | None = None, threshold: float | None = None, top: int | None = None,
          objects: bool = False) -> QueryResult:
    """Per-point cosine similarity of ``features.npy`` to each phrase; writes a heat-map PLY and PNG per phrase.

    Files: ``query/<slug>.ply``, ``query/<slug>.png``, ``query/<slug>.npy`` (scores, float16) and with
    ``threshold``/``top`` also ``query/<slug>_mask.txt`` (point indices). With ``objects``, instead: the
    instances of ``instances.json`` ranked per phrase in ``query/<slug>_objects.json`` (``QueryResult.objects``).
    """
    from .segment.query import mask_from_scores, query_scores
    from .viz.ply import heatmap_colors, write_ply
    from .viz.render import ColorBar, render_png

    out_dir = Path(out_dir)
    feat_path = out_dir / "features.npy"
    if not feat_path.is_file():
        raise InputError(f"{out_dir}: no features.npy (segment without --no-features to query)")
    try:
        feats = np.load(feat_path, mmap_mode="r")
    except ValueError as exc:
        raise InputError(f"{feat_path}: unreadable ({exc})") from None
    points = np.load(out_dir / "points.npy")
    if objects:
        from .instances import read_instances, write_object_ranking

        found = read_instances(out_dir)  # before a text encoder loads
    emb = _phrase_embeddings(out_dir, phrases, text, encoder, weights)
    if emb.shape[1] != feats.shape[1]:
        raise InputError(f"phrase embeddings are {emb.shape[1]}-d but {feat_path} is {feats.shape[1]}-d")
    qdir = out_dir / "query"
    if objects:
        ranked = {ph: write_object_ranking(qdir / f"{_slug(ph, j)}_objects.json", found, feats, emb[j], ph)
                  for j, ph in enumerate(phrases)}  # fmt: skip
        return QueryResult(np.zeros((len(points), 0), np.float32), list(phrases), {}, ranked)
    scores = query_scores(np.asarray(feats, np.float32), emb)
    masks: dict[str, np.ndarray] = {}
    for j, ph in enumerate(phrases):
        slug = _slug(ph, j)
        s = scores[:, j]
        colors = heatmap_colors(s)
        write_ply(qdir / f"{slug}.ply", points, colors, extra={"score": s.astype(np.float32)})
        write_npy(qdir / f"{slug}.npy", s.astype(np.float16))
        render_png(qdir / f"{slug}.png", points, colors, legend=None, view="top", title=f'"{ph}"',
                   colorbar=ColorBar(float(np.min(s)), float(np.max(s))))
        if threshold is not None or top is not None:
            m = mask_from_scores(s, threshold=threshold, top=top)
            masks[ph] = m
            write_text(qdir / f"{slug}_mask.txt", "\n".join(map(str, m.tolist())) + "\n")
        log.info("query %r: max similarity %.3f -> %s", ph, float(s.max()), qdir / f"{slug}.ply")
    return QueryResult(scores, list(phrases), masks)


def instances(out_dir: str | Path, config=None):
    """Object proposals of a segment output folder; writes ``instances.json`` and ``instances.ply`` into it."""
    from .instances import instances_from_output

    return instances_from_output(out_dir, config)


def render(out_dir: str | Path, gt: str | Path | None = None, view: str = "both",
           label_set: str = "scannet20", color: str = "labels") -> list[Path]:
    """PNG pictures of a segment output (GT | raw | purified side by side when available), or with
    ``color="rgb"`` the points' own colours (``render_rgb_<view>.png``)."""
    from .viz.ply import palette
    from .viz.render import Panel, render_panels

    out_dir = Path(out_dir)
    labels, names = read_prediction(out_dir)
    points = np.load(out_dir / "points.npy")
    pal = palette(len(names))
    panels = []
    if gt is not None:
        scene = read_scene(gt, read_options(ReadConfig()))
        g = gt_indices(scene, label_set)
        from .labels import get_label_set

        lnames = get_label_set(label_set).names
        # show GT in the prediction's palette, by class name
        back = name_mapping(lnames, names)
        gcol = np.full((len(g), 3), 40, np.uint8)
        ok = g >= 0
        gi = back[np.where(ok, g, 0)]
        ok &= gi >= 0
        gcol[ok] = pal[gi[ok]]
        panels.append(Panel("ground truth", gcol))
    raw = out_dir / "raw_labels.txt"
    if raw.is_file():
        panels.append(Panel("raw fusion", pal[np.loadtxt(raw, dtype=np.int64, ndmin=1)]))
        panels.append(Panel("purified", pal[labels]))
    else:
        panels.append(Panel("prediction", pal[labels]))
    present = np.unique(labels)
    legend = [(names[i], tuple(int(c) for c in pal[i])) for i in present]
    if color == "rgb":
        panels, legend = [Panel("RGB", np.load(out_dir / "colors.npy"))], None
    views = ["top", "persp"] if view == "both" else [view]
    paths = []
    for vw in views:
        p = out_dir / (f"render_rgb_{vw}.png" if color == "rgb" else f"render_{vw}.png")
        render_panels(p, panels, points, legend=legend, view=vw)
        paths.append(p)
    return paths


def view(out_dir: str | Path, port: int = 8080, host: str = "127.0.0.1") -> None:
    """Serve the interactive viewer until interrupted."""
    from .viz.viewer import serve

    serve(Path(out_dir), port=port, host=host, block=True)


# --------------------------------------------------------------------------- select / synth
def select(root: str | Path, out_dir: str | Path, n: int = 20, gamma: float = 1.0, seed: int = 0,
           label_set: str = "scannet20"):
    """The paper's data-efficient subset of a dataset's scenes; writes selection.txt and scores.json."""
    from tqdm import tqdm

    from .eval.select import select_scenes
    from .labels import get_label_set

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset root not found")
    C = len(get_label_set(label_set).names)
    hist = {}
    for d in tqdm(sorted(p for p in root.iterdir() if p.is_dir()), desc="scenes", disable=None):
        try:
            scene = read_scene(d)
        except InputError as exc:
            log.warning("skipping %s: %s", d, exc)
            continue
        if scene.labels is None:
            log.warning("skipping %s: no GT labels", d)
            continue
        g = gt_indices(scene, label_set)
        hist[scene.name] = np.bincount(g[g >= 0], minlength=C)
    if not hist:
        raise InputError(f"{root}: no scenes with GT labels")
    sel = select_scenes(hist, n=n, gamma=gamma, seed=seed)
    out_dir = Path(out_dir)
    write_text(out_dir / "selection.txt", "\n".join(sel.chosen) + "\n")
    write_json(out_dir / "scores.json", sel.to_dict())
    return sel


def synth(out_dir: str | Path, n: int = 1, seed: int = 0, points: int | None = None,
          frames: int | None = None, from_scan: str | Path | None = None) -> list[Path]:
    """Write ``n`` synthetic rooms (ScanNet export layout) under ``out_dir``; with ``from_scan``, the
    scene folder ``out_dir`` rendered from that labelled scan (see :mod:`geopurify.synthetic.scan`)."""
    import dataclasses

    from .synthetic import ScanRenderConfig, SyntheticConfig, make_scene, render_scan

    if from_scan is not None:
        if n != 1 or points is not None:
            raise ConfigError("synth --from-scan writes one scene from the scan's own points: drop --n and --points")
        over_scan = {"n_frames": frames} if frames is not None else {}
        return [render_scan(from_scan, out_dir, ScanRenderConfig(seed=seed, **over_scan)).path]
    base = SyntheticConfig()
    over = {}
    if points is not None:
        over["target_points"] = points
    if frames is not None:
        over["n_frames"] = frames
    paths = []
    for i in range(n):
        cfg = dataclasses.replace(base, seed=seed + i, **over)
        paths.append(make_scene(Path(out_dir), f"synth{seed + i:04d}_00", cfg))
    return paths
