"""How much does purification fix? One table on the two real ScanNet scans and on procedural rooms.

    python benchmarks/quality.py                      # real scans (when ../shared is there) + procedural rooms
    python benchmarks/quality.py --steps 300 --procedural-test 3 --teachers combined superpoint descriptor

Every row is scored in the same run, on the same rooms, with the confusion summed over the rooms of a
group before the means (ScanNet-20, paper protocol: otherfurniture ignored):

* raw fusion, ``mean`` (OpenScene) and ``consensus`` (paper; the input every pooling row starts from);
* uniform kNN pooling (K = 96, T = 18, equal weights);
* bilateral pooling: weights from normal and colour differences, no learning; its sharpness is tuned on
  the evaluated rooms themselves (best of a grid), which flatters it;
* the untrained student (the exact initial weights training starts from);
* the trained student, one per teacher;
* the oracle affinity (weights only between voxels of the same ground-truth class): the ceiling.

Real scans: ``synth --from-scan`` renders the scans (default camera path and simulated VLM); the student
scored on one scan is trained on the other (two folds; ``--train-fraction`` trains on the middle slab
of the other scan only, for time), so no student sees the scan it is scored on.
Procedural rooms: students train on ``--procedural-train`` rooms and are scored on other seeds.

``--scannet200``: after (or, with its students already trained, instead of) the table, segment each real
scan raw and with its fold's trained ``combined`` student (``api.segment``, the defaults) and score the
ScanNet-20 predictions against the scans' ScanNet200 labels (``segment200.npy``) by class name
(``api.evaluate(label_set="scannet200")``): head / common / tail mIoU and f-mIoU. The simulator only
writes the 20 ScanNet classes' text and mask embeddings, so every ScanNet200 class outside those 20
(e.g. "kitchen cabinets", "office chair") is never predicted: the figures compare raw with purified on
the same footing, they are not ScanNet200 results of an open-vocabulary model.

Writes ``benchmarks/results/quality.md`` and ``quality.json`` (``quality_scannet200.md`` / ``.json``).
:func:`prepare_room` and :func:`score_methods`
are meant for reuse (ablations iterate on the same table).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "quality"
SHARED = HERE.parent.parent / "shared" / "data" / "scannet-scene0011-pointcept"
REAL_SCANS = ("scene0011_00", "scene0011_01")
SHARPNESS_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
BILATERAL = "bilateral pooling (normal + colour, sharpness tuned)"
ORACLE = "oracle affinity (GT class)"

log = logging.getLogger("quality")


@dataclass
class Room:
    """One evaluation room, lifted and voxelised once for every method.

    Attributes:
        path: scene folder; name: its name.
        gt: (N,) int64 ScanNet-20 GT per point (-1 ignore); gt_voxel: (V,) int64 majority GT per voxel.
        raw_mean, raw_consensus: (N,) int64 labels of the two fusions.
        grid: the voxel grid; inputs: (V, D+6) float32 student inputs; logits: (V, C) float32 consensus
            class logits per voxel; normals, colors: (V, 3) float32; nbr: (V, K) int64 neighbours.
    """

    path: Path
    name: str
    gt: np.ndarray
    gt_voxel: np.ndarray
    raw_mean: np.ndarray
    raw_consensus: np.ndarray
    grid: object
    inputs: np.ndarray
    logits: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    nbr: np.ndarray


def prepare_room(path: Path, voxel_size: float = 0.02, k: int = 96) -> Room:
    """Lift (consensus and mean), voxelise and find the kNN graph of one scene folder."""
    from geopurify import api
    from geopurify.config import SegmentConfig
    from geopurify.distill import voxel_inputs
    from geopurify.encoders.scene import class_text, encoder_for_scene
    from geopurify.eval.gt import gt_indices
    from geopurify.lifting import lift_scene
    from geopurify.pooling import PoolConfig, neighbors
    from geopurify.segment import classify

    cfg = SegmentConfig(purify=False)
    scene = api.load_scene(path, cfg.read)
    enc = encoder_for_scene(scene, cfg.lift.encoder, cfg.lift.encoder_options, cfg.lift.classes)
    text = class_text(scene, cfg.lift.text, cfg.lift.classes, enc)
    T = text.normalized()
    lifted = lift_scene(scene, enc, text, cfg.lift)
    mean_opts = dataclasses.replace(cfg.lift, fusion="mean")
    enc_mean = encoder_for_scene(scene, mean_opts.encoder, mean_opts.encoder_options, mean_opts.classes)
    lifted_mean = lift_scene(scene, enc_mean, text, mean_opts)
    grid, inputs, vfeat = voxel_inputs(scene, lifted.features, voxel_size)
    gt = gt_indices(scene, "scannet20")
    from geopurify.labels import get_label_set

    names = list(text.names)
    if names != list(get_label_set("scannet20").names):
        raise SystemExit(f"{path}: quality.py expects the 20 ScanNet classes in benchmark order as text classes")
    C = len(names)
    onehot = np.zeros((scene.num_points, C + 1), np.float32)
    onehot[np.arange(scene.num_points), np.where(gt >= 0, gt, C)] = 1
    gv = grid.reduce(onehot).argmax(1)
    gt_voxel = np.where(gv == C, -1, gv).astype(np.int64)
    vn = grid.reduce(scene.normals)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    nbr = neighbors(grid.centers, PoolConfig(k=k))
    return Room(
        path=Path(path), name=scene.name, gt=gt, gt_voxel=gt_voxel,
        raw_mean=np.asarray(classify(lifted_mean.features, T), np.int64),
        raw_consensus=np.asarray(classify(lifted.features, T), np.int64),
        grid=grid, inputs=inputs, logits=(vfeat @ T.T).astype(np.float32),
        normals=vn.astype(np.float32), colors=grid.reduce(scene.colors).astype(np.float32), nbr=nbr,
    )  # fmt: skip


def pooled_labels(room: Room, A, steps: int = 18) -> np.ndarray:
    """(N,) labels after ``steps`` products with the affinity ``A`` (pooling the class logits)."""
    from geopurify.pooling import propagate

    out = propagate(A, room.logits, steps)
    return room.grid.expand(np.asarray(out.argmax(1)))


def student_affinity(room: Room, model, sharpen: float = 20.0):
    import torch

    from geopurify.pooling.baselines import embedding_affinity

    model = model.eval()
    with torch.no_grad():
        emb = model(torch.from_numpy(room.grid.coords), torch.from_numpy(room.inputs)).float()
    return embedding_affinity(room.nbr, emb, sharpen)


def confusion_of(room: Room, labels: np.ndarray) -> np.ndarray:
    from geopurify.eval import confusion

    C = 20
    return confusion(room.gt, np.asarray(labels, np.int64), C)


def miou_of(conf: np.ndarray) -> tuple[float, dict[str, float | None]]:
    from geopurify.eval import scores
    from geopurify.labels import get_label_set

    names = list(get_label_set("scannet20").names)
    sc = scores(conf, names, protocol="paper")
    per = {n: (None if v is None or not np.isfinite(v) else float(v)) for n, v in zip(sc.names, sc.iou)}
    return float(sc.miou), per


def score_methods(rooms: list[Room], students: dict[str, list], steps: int = 18,
                  sharpness_grid=SHARPNESS_GRID) -> dict[str, dict]:  # fmt: skip
    """Summed confusions and mIoU of every method over ``rooms``.

    Args:
        students: {row name: [model for room 0, model for room 1, ...]} (per-room models allow folds).
    Returns:
        {method: {"miou": float, "per_class": {...}, "confusion": list, ...}}.
    """
    from geopurify.pooling.baselines import BilateralConfig, bilateral_affinity, oracle_affinity, uniform_affinity

    rows: dict[str, np.ndarray] = {}

    def add(name: str, room_labels):
        rows[name] = sum(confusion_of(r, lab) for r, lab in zip(rooms, room_labels))

    add("raw fusion (mean)", [r.raw_mean for r in rooms])
    add("raw fusion (consensus)", [r.raw_consensus for r in rooms])
    add("uniform kNN pooling", [pooled_labels(r, uniform_affinity(r.nbr), steps) for r in rooms])
    best = None
    for s in sharpness_grid:
        conf = sum(confusion_of(r, pooled_labels(r, bilateral_affinity(r.nbr, r.normals, r.colors,
                                                                       BilateralConfig(sharpness=s)), steps))
                   for r in rooms)  # fmt: skip
        m = miou_of(conf)[0]
        log.info("bilateral sharpness %.2f: mIoU %.1f", s, 100 * m)
        if best is None or m > best[0]:
            best = (m, s, conf)
    rows[BILATERAL] = best[2]
    for name, models in students.items():
        add(name, [pooled_labels(r, student_affinity(r, m), steps) for r, m in zip(rooms, models)])
    add(ORACLE, [pooled_labels(r, oracle_affinity(r.nbr, r.gt_voxel), steps) for r in rooms])
    raw = miou_of(rows["raw fusion (consensus)"])[0]
    oracle = miou_of(rows[ORACLE])[0]
    out = {}
    for name, conf in rows.items():
        m, per = miou_of(conf)
        gap = (m - raw) / (oracle - raw) if oracle > raw else None
        out[name] = {"miou": m, "gap_closed": gap, "per_class": per, "confusion": conf.tolist()}
    out[BILATERAL]["sharpness"] = best[1]
    return out


def real_rooms(n_frames: int | None) -> list[Path]:
    from geopurify.synthetic import ScanRenderConfig, render_scan

    paths = []
    for s in REAL_SCANS:
        out = WORK / "real" / s
        if not (out / "synthetic.json").is_file():
            cfg = ScanRenderConfig() if n_frames is None else ScanRenderConfig(n_frames=n_frames)
            render_scan(SHARED / s, out, cfg)
        paths.append(out)
    return paths


def real_train_rooms(fraction: float, n_frames: int | None) -> list[Path]:
    """Training rooms for the two folds: the middle ``fraction`` of each scan (a slab across its longer
    floor axis, every point), rendered with another camera seed; fold i trains on the other scan's slab."""
    from geopurify.synthetic import LabelledScan, ScanRenderConfig, read_labelled_scan, render_scan

    paths = []
    for s in REAL_SCANS:
        out = WORK / "real_train" / f"{s}_slab"
        if not (out / "synthetic.json").is_file():
            scan = read_labelled_scan(SHARED / s)
            axis = int(np.argmax(np.ptp(scan.points[:, :2], axis=0)))
            lo, hi = np.quantile(scan.points[:, axis], [0.5 - fraction / 2, 0.5 + fraction / 2])
            m = (scan.points[:, axis] >= lo) & (scan.points[:, axis] < hi)
            slab = LabelledScan(out.name, scan.points[m], scan.colors[m], scan.normals[m], scan.labels[m],
                                scan.instance[m])  # fmt: skip
            cfg = ScanRenderConfig(seed=7) if n_frames is None else ScanRenderConfig(seed=7, n_frames=n_frames)
            render_scan(slab, out, cfg)
        paths.append(out)
    return paths


def procedural_rooms(seeds: list[int], points: int | None = None) -> list[Path]:
    from geopurify.synthetic import SyntheticConfig, make_scene

    paths = []
    over = {} if points is None else {"target_points": points}
    for seed in seeds:
        name = f"synth{seed:04d}_00"
        if not (WORK / "procedural" / name / "synthetic.json").is_file():
            make_scene(WORK / "procedural", name, dataclasses.replace(SyntheticConfig(), seed=seed, **over))
        paths.append(WORK / "procedural" / name)
    return paths


def train_student(scenes: list[Path], out: Path, variant: str, steps: int):
    from geopurify import api, load
    from geopurify.config import TrainRunConfig
    from geopurify.distill import TrainConfig

    if not (out / "student.safetensors").is_file():
        api.train([str(s) for s in scenes], out, TrainRunConfig(teacher="geometric",
                  teacher_options={"variant": variant}, train=TrainConfig(**({"steps": steps} if steps else {}))),
                  resume=False)  # fmt: skip
    return load(out)


def main() -> None:
    global WORK
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="training steps per student")
    ap.add_argument("--teachers", nargs="+", default=["combined", "superpoint", "descriptor"])
    ap.add_argument("--procedural-train", type=int, default=2)
    ap.add_argument("--procedural-test", type=int, default=3)
    ap.add_argument("--frames", type=int, default=None, help="views per real scan (default: ScanRenderConfig's)")
    ap.add_argument("--points", type=int, default=None, help="points per procedural room (default: SyntheticConfig's)")
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="train real-scan students on this middle fraction of the other scan (1 = all of it)")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--scannet200", action="store_true",
                    help="also score raw vs purified (combined teacher) against the real scans' ScanNet200 labels")
    ap.add_argument("--scannet200-only", action="store_true", help="only that (students trained by an earlier run)")
    ap.add_argument("--work", type=Path, default=WORK, help="where rooms, students and outputs are kept")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from geopurify.pooling.baselines import untrained_student

    WORK = a.work
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if a.scannet200_only:
        scannet200_rows(a.steps, a.train_fraction, a.frames)
        return
    groups: dict[str, dict] = {}
    setups = []
    if not a.no_real and (SHARED / REAL_SCANS[0] / "coord.npy").is_file():
        real = real_rooms(a.frames)
        # fold i: scored on scan i, trained on (a slab of) the other scan
        train = real_train_rooms(a.train_fraction, a.frames) if a.train_fraction < 1 else real
        setups.append(("real ScanNet scans (2, summed)", real, [[train[1]], [train[0]]]))
    proc_train = procedural_rooms(list(range(200, 200 + a.procedural_train)), a.points)
    proc_test = procedural_rooms(list(range(300, 300 + a.procedural_test)), a.points)
    setups.append((f"procedural rooms ({a.procedural_test}, summed)", proc_test, [proc_train] * len(proc_test)))
    train_seconds: dict[str, float] = {}
    prepared = []
    for gname, test, train_sets in setups:
        rooms = [prepare_room(p) for p in test]
        untrained = {"untrained student": [untrained_student(rooms[0].inputs.shape[1])] * len(rooms)}
        groups[gname] = {"rooms": [r.name for r in rooms], "rows": score_methods(rooms, untrained)}
        prepared.append((gname, rooms, train_sets))
        write_tables(groups, a, train_seconds, t0)  # the student-free rows first
    for v in a.teachers:
        for gname, rooms, train_sets in prepared:
            models, cache = [], {}
            for tr in train_sets:
                key = tuple(str(p) for p in tr)
                if key not in cache:
                    tag = "_".join(p.name for p in tr)
                    ts = time.perf_counter()
                    cache[key] = train_student(tr, WORK / "students" / f"{v}_{a.steps}_{tag}", v, a.steps)
                    train_seconds[f"{v} on {tag}"] = round(time.perf_counter() - ts, 1)
                models.append(cache[key])
            add_student_rows(groups[gname]["rows"], rooms, {f"trained student (geometric/{v})": models})
            write_tables(groups, a, train_seconds, t0)
            log.info("%s: teacher %s done", gname, v)
    if a.scannet200 and not a.no_real:
        scannet200_rows(a.steps, a.train_fraction, a.frames)


def scannet200_rows(steps: int, fraction: float, n_frames: int | None, variant: str = "combined") -> dict:
    """Raw vs purified (fold students of ``variant``) on the real scans, scored on their ScanNet200 labels."""
    from geopurify import api
    from geopurify.config import SegmentConfig

    real = real_rooms(n_frames)
    train = real_train_rooms(fraction, n_frames) if fraction < 1 else real
    out: dict[str, dict] = {}
    for tag in ("raw", "purified"):
        for i, scene in enumerate(real):
            other = train[1 - i]
            student = WORK / "students" / f"{variant}_{steps}_{other.name}"
            if tag == "purified" and not (student / "student.safetensors").is_file():
                raise SystemExit(f"{student}: not trained yet (run quality.py --teachers {variant} first)")
            cfg = SegmentConfig(purify=False) if tag == "raw" else SegmentConfig(student=str(student))
            api.segment(scene, WORK / "s200" / tag / scene.name, dataclasses.replace(cfg, save_features=False,
                                                                                    overwrite=True))  # fmt: skip
        row = {}
        for lset in ("scannet20", "scannet200"):
            sc = api.evaluate(WORK / "s200" / tag, SHARED, label_set=lset).scores
            row[lset] = {"miou": sc.miou, "fmiou": sc.fmiou, "split": dict(sc.split_miou or {})}
        out[tag] = row
        log.info("scannet200 %s: %s", tag, row)
    lines = ["| labels | ScanNet-20 mIoU | ScanNet200 mIoU | head | common | tail | ScanNet200 f-mIoU |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    for tag, row in out.items():
        s200 = row["scannet200"]
        sp = s200["split"] or {}
        lines.append(f"| {tag} | {pct(row['scannet20']['miou'])} | {pct(s200['miou'])} | {pct(sp.get('head'))} | "
                     f"{pct(sp.get('common'))} | {pct(sp.get('tail'))} | {pct(s200['fmiou'])} |")  # fmt: skip
    text = (f"Real scans {', '.join(REAL_SCANS)} summed; purified = fold students (geometric/{variant}, {steps} "
            f"steps, trained on the other scan); ScanNet-20 predictions mapped to ScanNet200 by name "
            f"({time.strftime('%Y-%m-%d %H:%M')})\n\n" + "\n".join(lines) + "\n")
    (HERE / "results" / "quality_scannet200.md").write_text(text)
    (HERE / "results" / "quality_scannet200.json").write_text(json.dumps(out, indent=1))
    print(text, flush=True)
    return out


def add_student_rows(rows: dict, rooms: list[Room], students: dict[str, list], steps: int = 18) -> None:
    """Score more students on rooms already in ``rows`` (same raw and oracle for the gap)."""
    raw, oracle = rows["raw fusion (consensus)"]["miou"], rows[ORACLE]["miou"]
    for name, models in students.items():
        conf = sum(confusion_of(r, pooled_labels(r, student_affinity(r, m), steps)) for r, m in zip(rooms, models))
        m, per = miou_of(conf)
        rows[name] = {"miou": m, "gap_closed": (m - raw) / (oracle - raw) if oracle > raw else None,
                      "per_class": per, "confusion": conf.tolist()}  # fmt: skip


def write_tables(groups: dict, a, train_seconds: dict, t0: float) -> None:
    first = next(iter(groups.values()))["rows"]
    names = [n for n in first if n != ORACLE] + [ORACLE]
    head = ["method"] + [f"{g} mIoU" for g in groups] + [f"{g.split(' (')[0]}: gap closed" for g in groups]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        cells = [n]
        for g in groups.values():
            cells.append(f"{100 * g['rows'][n]['miou']:.1f}" if n in g["rows"] else "-")
        for g in groups.values():
            gap = g["rows"][n]["gap_closed"] if n in g["rows"] else None
            cells.append("-" if gap is None else f"{100 * gap:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    meta = (f"{platform.machine()} {platform.platform()}, {time.strftime('%Y-%m-%d %H:%M')}; ScanNet-20 paper protocol "
            f"(otherfurniture ignored), confusion summed per group; {a.steps} training steps per student; "
            f"gap closed = (mIoU - raw consensus) / (oracle - raw consensus); {time.perf_counter() - t0:.0f} s so far")
    rooms_line = "; ".join(f"{g}: {', '.join(v['rooms'])} (bilateral sharpness {v['rows'][BILATERAL]['sharpness']:g})"
                           for g, v in groups.items())  # fmt: skip
    text = meta + "\n\nrooms: " + rooms_line + "\n\n" + "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "quality.md").write_text(text)
    (HERE / "results" / "quality.json").write_text(json.dumps(
        {"meta": meta, "args": {k: str(v) for k, v in vars(a).items()}, "train_seconds": train_seconds,
         "groups": groups}, indent=1))  # fmt: skip
    print(text, flush=True)


if __name__ == "__main__":
    main()
