"""The Python API: glue only. Each function calls the stages in order; the CLI calls exactly these.

>>> from geopurify import api
>>> # api.segment("scans/scene0000_00", "out/scene0000_00", SegmentConfig(student="student/"))

Formats live in :mod:`geopurify.outputs`, options and their defaults in the stages' config dataclasses
(composed into run configs in :mod:`geopurify.config`), domain rules in the stages. Each function takes
its command's config; keyword arguments override its fields (``api.query(out, ["sofa"], top=500)``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .config import InspectConfig, ReadOptions, SegmentConfig, TrainRunConfig, to_dict, updated
from .errors import ConfigError, InputError
from .eval.config import EvalConfig, SelectConfig
from .io import Scene, read_scene
from .outputs import (
    INSTANCES_FILE,
    QUERY_DIR,
    RUN_FILE,
    OutputWriter,
    SegmentFiles,
    SegmentOutput,
    check_out_file,
    check_out_path,
    check_unique_scenes,
    is_output,
    locked,
    open_writer,
    read_output,
    read_points,
    read_run,
    require_complete,
    scene_list,
    scene_pairs,
    scene_read_options,
    write_report,
)
from .segment.config import QueryConfig
from .synthetic.config import SynthConfig
from .utils.progress import bar_disable
from .utils.run import StageTimer, versions
from .viz.config import RenderConfig, ViewConfig

if TYPE_CHECKING:  # return types only: the stages load when their command runs
    from .checks import SceneReport
    from .encoders.encode import EncodeConfig, EncodeResult
    from .eval.instance import InstanceScores
    from .eval.select import Selection
    from .instances.config import InstanceConfig
    from .instances.group import InstanceSet
    from .student import AffinityNet
    from .viz.viewer import ViewerServer

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "EvalResult", "QueryResult", "SegmentResult", "encode", "evaluate", "evaluate_instances", "instances", "query",
    "inspect", "render", "segment", "segment_many", "select", "synth", "train", "view", "RUN_FILE",
]


def load_scene(path: str | Path, read: ReadOptions, lift=None, student=None) -> Scene:
    """Read a scene with normals (estimated when the file has none); with ``lift`` (a LiftOptions), the
    feature files are checked before any cloud is fused from depth (:func:`geopurify.checks.early_check`)."""
    import dataclasses
    from functools import partial

    from .checks import early_check

    if lift is not None:
        read = dataclasses.replace(read, before_fusion=partial(
            early_check, encoder=lift.encoder, text=lift.text,
            student_dim=student.config.in_dim - 6 if student is not None else None,
            student_file=student.source if student is not None else None))
    return read_scene(path, read).ensure_normals()


def encode(scene_path: str | Path, config: EncodeConfig | None = None, read: ReadOptions | None = None,
           **fields: Any) -> EncodeResult:
    """``geopurify encode``: 2D features of every frame into ``features_2d/`` (resumable); see
    :mod:`geopurify.encoders.encode`. ``config`` is an :class:`~geopurify.encoders.encode.EncodeConfig`
    (``fields`` override it, e.g. ``encoder="clip", classes=["chair"]``)."""
    from .encoders.encode import EncodeConfig, encode_scene
    from .encoders.scene import check_encoder

    cfg = updated(EncodeConfig, config, fields)
    # encode always runs the model (segment need not: it may read features encoded elsewhere), so its
    # missing --weights or unknown option is refused before any cloud is fused from depth
    check_encoder(cfg.encoder, cfg.encoder_options)
    return encode_scene(read_scene(scene_path, read or ReadOptions()), cfg)


def inspect(scene_path: str | Path, config: InspectConfig | None = None, **fields: Any) -> SceneReport:
    """Read a scene without lifting and check it (:func:`geopurify.checks.inspect_scene`); ``config``: an
    :class:`~geopurify.config.InspectConfig` (``fields`` override it, e.g. ``voxel_size=0.05``)."""
    from .checks import inspect_scene

    cfg = updated(InspectConfig, config, fields)
    return inspect_scene(read_scene(scene_path, cfg.read), cfg.voxel_size, cfg.encoder, cfg.k)


# --------------------------------------------------------------------------- segment
@dataclass
class SegmentResult:
    """What :func:`segment` produced. labels (N,) int64 indices into ``names``."""

    out_dir: Path
    labels: np.ndarray
    names: list[str]
    run: dict[str, Any]


def _segment_config(config: Any) -> SegmentConfig:
    if not isinstance(config, SegmentConfig):  # no default: purification needs a student
        raise ConfigError(f"segment: expected a SegmentConfig (e.g. SegmentConfig(student=PATH) or "
                          f"SegmentConfig(purify=False)), got {type(config).__name__}")
    return config


def _own_threads(fn: F) -> F:
    """Run a heavy command under :func:`geopurify.utils.device.cpu_threads`: torch's thread count is set
    for the command and restored after it (torch loads with the command, not with ``import geopurify``)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from .utils.device import cpu_threads

        with cpu_threads():
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


@_own_threads
def segment(scene_path: str | Path, out_dir: str | Path, config: SegmentConfig) -> SegmentResult:
    """Segment one scene: read, lift, (purify), classify, and write the output folder (:mod:`geopurify.outputs`)."""
    from .checks import after_lift, preflight
    from .encoders.scene import class_text, encoder_for_scene
    from .geometry import voxelize
    from .lifting import lift_scene
    from .segment import classify, purify_scene
    from .student import load as load_student
    from .utils.device import pick_device
    from .utils.linalg import backend as gemm_backend
    from .utils.memory import check_fits, estimate_segment_bytes
    from .viz.ply import palette

    cfg = _segment_config(config)
    t = StageTimer()
    check_out_path(out_dir, inputs=[scene_path, cfg.lift.text], command="segment")
    gemm_backend()  # a bad $GEOPURIFY_GEMM stops here, before any work
    student = load_student(cfg.student) if cfg.purify else None
    with t("read"):
        scene = load_scene(scene_path, cfg.read, cfg.lift, student)
    encoder = encoder_for_scene(scene, cfg.lift.encoder, cfg.lift.encoder_options, cfg.lift.classes)
    text = class_text(scene, cfg.lift.text, cfg.lift.classes, encoder)
    D, C = text.embeddings.shape[1], len(text.names)
    grid = voxelize(scene.points, cfg.voxel_size) if cfg.purify else None
    need = estimate_segment_bytes(scene.num_points, D, C, cfg.pool.k, cfg.purify, cfg.save_features,
                                  n_voxels=grid.num_voxels if grid is not None else None)
    check_fits(need, f"{scene.name}: {scene.num_points} points x {D}-d features",
               ("--no-features (pools the class logits only), " if cfg.save_features else "")
               + "a smaller -k, or split the scene", cfg.memory_limit)
    with t("check"):  # the cheap checks (student size, feature files, poses), before lifting
        report = preflight(scene, encoder.name if encoder is not None else "none", D,
                           student.config.in_dim - 6 if student is not None else None,
                           voxel_size=cfg.voxel_size, memory_bytes=need,
                           voxels=grid.num_voxels if grid is not None else None,
                           student_file=student.source if student is not None else None)
    with t("lift"):
        lifted = lift_scene(scene, encoder, text, cfg.lift)
    after_lift(report, lifted.stats.get("points_seen", scene.num_points), scene.num_points)
    with t("classify"):
        raw_labels = np.asarray(classify(lifted.features, text.normalized()), np.int64)
    counts: dict[str, Any] = {"points": scene.num_points, "classes": C, **lifted.stats, **report.counts()}
    features = lifted.features if cfg.save_features else None
    labels = raw_labels
    if student is not None:  # labels and features per voxel, then per point
        pur = purify_scene(scene, grid, lifted.features, text.normalized(), student, cfg.pool, cfg.save_features,
                           pick_device(cfg.device))  # fmt: skip
        for stage, sec in pur.seconds.items():
            t.add(stage, sec)
        counts["voxels"] = grid.num_voxels
        labels = np.asarray(grid.expand(pur.labels), np.int64)
        features = grid.expand(pur.features) if pur.features is not None else None

    with open_writer(out_dir, inputs=[scene_path]) as w:
        with t("write"):  # the result files; run.json is written last, so it can hold this stage's time
            w.segment(SegmentFiles(scene.points, scene.colors, labels, list(text.names), palette(C),
                                   text.embeddings, raw_labels if student is not None else None, features))
        run = {
            "command": "segment",
            "scene": str(scene_path),
            "scene_name": scene.name,
            "config": to_dict(cfg),
            "versions": versions(),
            "counts": counts,
            "seconds": t.seconds,
            "label_histogram": {n: int(c) for n, c in zip(text.names, np.bincount(labels, minlength=C))},
        }
        w.finish(run)
    log.info("%s: %d points labelled -> %s", scene.name, scene.num_points, out_dir)
    return SegmentResult(Path(out_dir), labels, list(text.names), read_run(out_dir) or run)


def segment_many(
    scenes: list[str], out_root: str | Path, config: SegmentConfig, rank: int = 0, world_size: int = 1
) -> dict[str, str]:
    """Segment this rank's share of a batch (``scenes[rank::world_size]``), skipping outputs that are
    complete for the same scene and the same config. Output folders are named by :func:`batch_names`.

    Returns {scene: "done" | "skipped" | "failed: <reason>"} for this rank's scenes; a failed scene is
    logged with its reason and the others still run.
    """
    from tqdm import tqdm

    from .errors import GeoPurifyError
    from .outputs import batch_names, same_run

    config = _segment_config(config)
    scenes = scene_list(scenes)
    out_root = Path(out_root)
    check_out_path(out_root, inputs=scenes)
    names = batch_names(scenes)
    status: dict[str, str] = {}
    for s in tqdm(scenes[rank::world_size], desc=f"scenes (rank {rank})", disable=bar_disable()):
        out = out_root / names[s]
        if not config.overwrite and same_run(out, s, to_dict(config)):
            status[s] = "skipped"
            continue
        try:
            segment(s, out, config)
            status[s] = "done"
        except GeoPurifyError as exc:
            log.error("%s: failed: %s", s, exc)
            status[s] = f"failed: {exc}"
    return status


# --------------------------------------------------------------------------- train
def prepare_training_scene(path: str | Path, cfg: TrainRunConfig, teacher):
    """Read, lift and voxelise one scene: a :class:`geopurify.distill.TrainScene` and its lifting counts."""
    from .checks import after_lift, preflight
    from .distill import build_train_scene
    from .encoders.scene import class_text, encoder_for_scene
    from .geometry import voxelize
    from .lifting import lift_scene

    scene = load_scene(path, cfg.read, cfg.lift)
    encoder = encoder_for_scene(scene, cfg.lift.encoder, cfg.lift.encoder_options, cfg.lift.classes)
    text = class_text(scene, cfg.lift.text, cfg.lift.classes, encoder)
    grid = voxelize(scene.points, cfg.train.voxel_size)  # once: counted by the checks, used for training
    report = preflight(scene, encoder.name if encoder is not None else "none", int(text.embeddings.shape[1]), None,
                       voxel_size=cfg.train.voxel_size, voxels=grid.num_voxels)
    lifted = lift_scene(scene, encoder, text, cfg.lift)
    after_lift(report, lifted.stats.get("points_seen", scene.num_points), scene.num_points)
    lifted.stats.update(report.counts())
    return build_train_scene(scene, lifted.features, teacher, cfg.train.voxel_size, grid=grid), lifted.stats


@_own_threads
def train(scenes: list[str], out_dir: str | Path, config: TrainRunConfig | None = None,
          resume: bool = True) -> AffinityNet:
    """Label-free distillation of a student on ``scenes``; writes ``student.safetensors`` and run.json.

    Under torchrun: one process group (gloo on CPU, NCCL on GPUs), each rank prepares its share of the
    scenes, gradients are all-reduced, rank 0 alone writes (see :func:`geopurify.distill.train`).
    """
    from .distill import check_resume, ddp
    from .distill import train as distill_train
    from .teachers import build_teacher
    from .utils.linalg import backend as gemm_backend

    cfg = updated(TrainRunConfig, config, {})
    scenes = scene_list(scenes)
    check_unique_scenes(scenes)
    out_dir = check_out_path(out_dir, inputs=scenes, command="train")
    gemm_backend()  # a bad $GEOPURIFY_GEMM stops here, before any work
    t = StageTimer()
    teacher = build_teacher(cfg.teacher, **cfg.teacher_options)
    with ddp.process_group(cfg.train.device) as info:
        # a checkpoint in out_dir of other settings is refused before the scenes are prepared
        ddp.on_main(lambda: check_resume(out_dir, cfg.train, _train_context(cfg), resume), info)
        with t("prepare"):
            prepared = ddp.map_shard(scenes, lambda s: prepare_training_scene(s, cfg, teacher), info)
        stats = ddp.gather_dict({ts.name: {"voxels": ts.num_voxels, **st} for ts, st in filter(None, prepared)}, info)
        with t("train"):
            model = distill_train([p and p[0] for p in prepared], cfg.train, out_dir=out_dir, resume=resume,
                                  context=_train_context(cfg))
        if info.is_main:
            OutputWriter(out_dir).finish({
                "command": "train", "scenes": [str(s) for s in scenes],
                "config": to_dict(cfg), "world_size": info.world_size, "versions": versions(), "counts": stats,
                "seconds": t.seconds,
            })
    return model


def _train_context(cfg: TrainRunConfig) -> dict[str, Any]:
    """What a resumed checkpoint must share besides the training settings: the teacher, lifting and
    reading settings the scenes were prepared with (not the frame batch size nor a Python hook)."""
    ctx = {k: v for k, v in to_dict(cfg).items() if k != "train"}
    ctx["lift"].pop("batch_size", None)
    ctx["read"].pop("before_fusion", None)
    return ctx


# --------------------------------------------------------------------------- evaluate
@dataclass
class EvalResult:
    """Scores (a :class:`geopurify.eval.Scores`) plus the confusion matrix (C + 1, C + 1) int64."""

    scores: Any
    confusion: np.ndarray
    scenes: list[str]
    json_path: Path | None = None


def evaluate(out: str | Path, gt: str | Path, config: EvalConfig | None = None, json_path: str | Path | None = None,
             **fields: Any) -> EvalResult:
    """Score one output folder against one scene, or a folder of outputs against a folder of scenes.

    With folders, outputs and scenes pair by name and the confusion is summed over the dataset.
    ``json_path`` (e.g. ``OUT/eval.json``) receives the scores. ``config``: protocol, label set, reading
    (:class:`~geopurify.eval.config.EvalConfig`); ``fields`` override it (``protocol="openscene"``).
    """
    from .eval import scores
    from .eval.gt import PointSample, gt_indices, prediction_confusion
    from .labels import get_label_set

    cfg = updated(EvalConfig, config, fields)
    out, gt = Path(out), Path(gt)
    if json_path is not None:
        json_path = check_out_file(json_path, "--json")
    lset = get_label_set(cfg.label_set)
    pairs = scene_pairs(out, gt, is_output, "no segment outputs found")
    # all checked before scoring; only the labels, class names and a sample of the points are kept
    outputs = [(r.labels, r.names, PointSample.of(r.points))
               for r in (read_output(o, allow_incomplete=cfg.allow_incomplete) for o, _ in pairs)]
    conf = np.zeros((len(lset.names) + 1,) * 2, np.int64)
    names_done = []
    for (labels, names, sample), (o, g) in zip(outputs, pairs):
        scene = read_scene(g, cfg.read)  # labels only: no normals needed
        sample.check(scene, o, g)
        conf += prediction_confusion(labels, names, gt_indices(scene, cfg.label_set), lset.names)
        names_done.append(scene.name)
    sc = scores(conf, list(lset.names), protocol=cfg.protocol, split=lset.split, outside=True)
    if json_path is not None:
        write_report(json_path, {**sc.to_dict(), "scenes": names_done, "label_set": cfg.label_set,
                                 "confusion": conf.tolist()}, out)
    return EvalResult(sc, conf, names_done, json_path)


def evaluate_instances(out: str | Path, gt: str | Path, config: EvalConfig | None = None,
                       json_path: str | Path | None = None, **fields: Any) -> InstanceScores:
    """Instance AP (:class:`geopurify.eval.instance.InstanceScores`) of ``instances.json`` against the GT
    instances of one scene, or of a folder of outputs against a folder of scenes (paired by name);
    ``config``'s label set and reading options (``fields`` override them)."""
    from .eval.gt import PointSample, gt_indices, name_mapping
    from .eval.instance import InstanceEvaluator, predictions, thing_classes
    from .instances import read_instances
    from .labels import get_label_set

    cfg = updated(EvalConfig, config, fields)
    cfg.check_for_instances()
    out, gt = Path(out), Path(gt)
    if json_path is not None:
        json_path = check_out_file(json_path, "--json")
    lset = get_label_set(cfg.label_set)
    pairs = scene_pairs(out, gt, lambda p: (p / INSTANCES_FILE).is_file(),
                        f"no {INSTANCES_FILE} found (run `geopurify instances OUT` first)", lacks=is_output)
    for o, _ in pairs:  # cheap checks before any scene is read
        require_complete(o, cfg.allow_incomplete)
    ev = InstanceEvaluator(len(lset.names), thing_classes(lset.names))
    for o, g in pairs:
        found = read_instances(o)
        # only the points (completeness was checked above): labels, colours, names are not needed here
        sample = PointSample.of(read_points(o))
        scene = read_scene(g, cfg.read)
        sample.check(scene, o, g)  # the output's own scene, before what its GT holds
        if "instance" not in scene.meta:
            raise InputError(f"{g}: no GT instances (instance.npy, or an 'instance' property in the labels PLY)")
        if found.num_points != scene.num_points:  # instances.json of another output than its folder's points
            raise InputError(f"{o}: instances of {found.num_points} points but the scene {g} has {scene.num_points}")
        pred = predictions(found, name_mapping(found.names, lset.names))
        ev.add(gt_indices(scene, cfg.label_set), scene.meta["instance"], pred)
    sc = ev.result(lset.names, split=lset.split)
    if json_path is not None:
        write_report(json_path, {**sc.to_dict(), "label_set": cfg.label_set,
                                 "scenes_evaluated": [str(p[1]) for p in pairs]}, out)
    return sc


# --------------------------------------------------------------------------- query / render / view
@dataclass
class QueryResult:
    """scores (N, Q) float32 cosine similarity per phrase; masks: phrase -> (M,) int64 point indices;
    files: what was written, per phrase."""

    scores: np.ndarray
    phrases: list[str]
    masks: dict[str, np.ndarray]
    files: dict[str, list[Path]] = field(default_factory=dict)
    objects: dict[str, list] = field(default_factory=dict)  # phrase -> ranked instances.ObjectMatch (--objects)


def query(out_dir: str | Path, phrases: list[str], config: QueryConfig | None = None, **fields: Any) -> QueryResult:
    """Per-point cosine similarity of ``features.npy`` to each phrase; writes a heat-map PLY and PNG per phrase.

    Files: ``query/<slug>.ply``, ``query/<slug>.png``, ``query/<slug>.npy`` (scores, float16) and with
    ``threshold``/``top`` also ``query/<slug>_mask.txt`` (point indices). With ``objects``, instead: the
    instances of ``instances.json`` ranked per phrase in ``query/<slug>_objects.json`` (``QueryResult.objects``).
    ``config``: a :class:`~geopurify.segment.config.QueryConfig`; ``fields`` override it (``top=500``).
    """
    from .segment.query import check_phrases, mask_from_scores, phrase_embeddings, phrase_slugs, query_scores
    from .viz.ply import heatmap_colors
    from .viz.render import ColorBar, render_png

    cfg = updated(QueryConfig, config, fields)
    phrases = check_phrases(phrases)
    res = read_output(out_dir, allow_incomplete=cfg.allow_incomplete, features=True)
    if cfg.objects:
        from .instances import read_instances, write_object_ranking

        found = read_instances(res.path)  # before a text encoder loads
    emb = phrase_embeddings(res.path, res.run, phrases, cfg.text, cfg.encoder, cfg.weights)
    if emb.shape[1] != res.features.shape[1]:
        raise InputError(f"phrase embeddings are {emb.shape[1]}-d but {res.path / 'features.npy'} is "
                         f"{res.features.shape[1]}-d")
    qdir = res.path / QUERY_DIR
    slugs = phrase_slugs(list(phrases))  # distinct phrases never share files
    if cfg.objects:
        with locked(res.path):
            ranked = {ph: write_object_ranking(qdir / f"{slugs[j]}_objects.json", found, res.features,
                                               emb[j], ph) for j, ph in enumerate(phrases)}  # fmt: skip
        files = {ph: [qdir / f"{slugs[j]}_objects.json"] for j, ph in enumerate(phrases)}
        return QueryResult(np.zeros((res.num_points, 0), np.float32), list(phrases), {}, files, ranked)
    scores = query_scores(np.asarray(res.features, np.float32), emb)
    masks: dict[str, np.ndarray] = {}
    files: dict[str, list[Path]] = {}
    with locked(res.path):
        w = OutputWriter(res.path)
        for j, ph in enumerate(phrases):
            s = scores[:, j]
            if cfg.threshold is not None or cfg.top is not None:
                masks[ph] = mask_from_scores(s, threshold=cfg.threshold, top=cfg.top)
            colors = heatmap_colors(s)
            paths = w.query(slugs[j], res.points, s, colors, masks.get(ph))
            render_png(paths[2], res.points, colors, legend=None, view="top", title=f'"{ph}"',
                       colorbar=ColorBar(float(np.min(s)), float(np.max(s))))
            files[ph] = paths
            log.info("query %r: max similarity %.3f -> %s", ph, float(s.max()), paths[0])
    return QueryResult(scores, list(phrases), masks, files)


def instances(out_dir: str | Path, config: InstanceConfig | None = None, **fields: Any) -> InstanceSet:
    """Object proposals of a segment output folder; writes ``instances.json`` and ``instances.ply`` into it
    (``config``: an :class:`~geopurify.instances.config.InstanceConfig`; ``fields`` override it, e.g.
    ``min_points=50``)."""
    from .instances import instances_from_output
    from .instances.config import InstanceConfig

    cfg = updated(InstanceConfig, config, fields)
    return instances_from_output(read_output(out_dir), cfg)


def render(out_dir: str | Path, gt: str | Path | None = None, config: RenderConfig | None = None,
           **fields: Any) -> list[Path]:
    """PNG pictures of a segment output (GT | raw | purified side by side when available), or with
    ``color="rgb"`` the points' own colours (``render_rgb_<view>.png``); ``config``: a
    :class:`~geopurify.viz.config.RenderConfig` (``fields`` override it, e.g. ``view="top"``)."""
    from .eval.gt import PointSample, gt_in_classes, gt_indices
    from .labels import get_label_set
    from .viz.ply import label_colors, palette
    from .viz.render import UNLABELLED, Panel, class_legend, render_panels

    cfg = updated(RenderConfig, config, fields)
    res: SegmentOutput = read_output(out_dir, allow_incomplete=cfg.allow_incomplete)
    pal = res.class_colors if res.class_colors is not None else palette(len(res.names))  # names.json's, as view
    shown: list[tuple[str, np.ndarray]] = []  # (title, class indices) per panel
    if gt is not None:
        scene = read_scene(gt, scene_read_options(res.run, gt))  # the cloud the output was made from
        PointSample.of(res.points).check(scene, res.path, gt)  # another scene's GT would be drawn beside it
        g = gt_indices(scene, cfg.label_set)
        shown.append(("ground truth", gt_in_classes(g, get_label_set(cfg.label_set).names, res.names)))
    if res.raw_labels is not None:
        shown += [("raw fusion", res.raw_labels), ("purified", res.labels)]
    else:
        shown.append(("prediction", res.labels))
    panels = [Panel(title, label_colors(lab, pal, unlabelled=UNLABELLED)) for title, lab in shown]
    legend = class_legend(res.names, pal, *(lab for _, lab in shown))
    if cfg.color == "rgb":
        panels, legend = [Panel("RGB", res.colors)], None
    paths = []
    with locked(res.path):
        for vw in (["top", "persp"] if cfg.view == "both" else [cfg.view]):
            p = res.path / (f"render_rgb_{vw}.png" if cfg.color == "rgb" else f"render_{vw}.png")
            render_panels(p, panels, res.points, legend=legend, view=vw)
            paths.append(p)
    return paths


def view(out_dir: str | Path, config: ViewConfig | None = None, block: bool = True,
         **fields: Any) -> ViewerServer:
    """Serve the interactive viewer (``config``: port and host, :class:`~geopurify.viz.config.ViewConfig`)
    until interrupted, or with ``block=False`` return the running :class:`~geopurify.viz.viewer.ViewerServer`
    at once (its ``.url`` is where it listens: the next free port when ``port`` is taken; ``.wait()`` blocks)."""
    from .instances import read_instances
    from .viz.viewer import serve

    cfg = updated(ViewConfig, config, fields)
    found = read_instances(out_dir) if (Path(out_dir) / INSTANCES_FILE).is_file() else None
    return serve(Path(out_dir), port=cfg.port, host=cfg.host, block=block, instances=found)


# --------------------------------------------------------------------------- select / synth
def select(root: str | Path, out_dir: str | Path, config: SelectConfig | None = None,
           **fields: Any) -> Selection:
    """The paper's data-efficient subset of a dataset's scenes; writes selection.txt and scores.json
    (``config``: a :class:`~geopurify.eval.config.SelectConfig`; ``fields`` override it, e.g. ``n=10``)."""
    from tqdm import tqdm

    from .eval.gt import gt_indices
    from .eval.select import select_scenes
    from .labels import get_label_set
    from .utils.atomic import write_json, write_text

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset root not found")
    cfg = updated(SelectConfig, config, fields)
    # inside the root it would write into the user's dataset, and read as one more (bad) scene next time
    out_dir = check_out_path(out_dir, inputs=[root])
    C = len(get_label_set(cfg.label_set).names)
    hist = {}
    for d in tqdm(sorted(p for p in root.iterdir() if p.is_dir()), desc="scenes", disable=bar_disable()):
        try:
            scene = read_scene(d)
        except InputError as exc:
            log.warning("skipping %s: %s", d, exc)
            continue
        if scene.labels is None:
            log.warning("skipping %s: no GT labels", d)
            continue
        g = gt_indices(scene, cfg.label_set)
        hist[scene.name] = np.bincount(g[g >= 0], minlength=C)
    if not hist:
        raise InputError(f"{root}: no scenes with GT labels")
    sel = select_scenes(hist, n=cfg.n, gamma=cfg.gamma, seed=cfg.seed)
    write_text(out_dir / "selection.txt", "\n".join(sel.chosen) + "\n")
    write_json(out_dir / "scores.json", sel.to_dict())
    return sel


def synth(out_dir: str | Path, config: SynthConfig | None = None, **fields: Any) -> list[Path]:
    """Write ``n`` synthetic rooms (ScanNet export layout) under ``out_dir``; with ``from_scan``, the
    scene folder ``out_dir`` rendered from that labelled scan (see :mod:`geopurify.synthetic.scan`).
    ``config``: a :class:`~geopurify.synthetic.config.SynthConfig`; ``fields`` override it (``n=3, seed=5``)."""
    from .synthetic import make_scene, render_scan
    from .synthetic.scene import check_scene_folder

    cfg = updated(SynthConfig, config, fields)
    out_dir = check_out_path(out_dir, inputs=[cfg.from_scan] if cfg.from_scan is not None else [])
    if cfg.from_scan is not None:
        return [render_scan(cfg.from_scan, out_dir, cfg.scan()).path]
    names = [f"synth{cfg.seed + i:04d}_00" for i in range(cfg.n)]
    configs = [cfg.room(i) for i in range(cfg.n)]  # a bad --points or --frames before any room
    for name in names:  # a folder in the way of any room before the first is written
        check_scene_folder(out_dir / name)
    return [make_scene(out_dir, name, c) for name, c in zip(names, configs)]
