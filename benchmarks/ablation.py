"""Purifier ablations on the real-scan rooms: which teacher, student input, sampler and pooling gave what.

    python benchmarks/ablation.py                       # every variant, both real scans
    python benchmarks/ablation.py --variants default crop3
    python benchmarks/ablation.py --rooms gate --variants default steps120   # fast: the e2e gate's crops

Rooms: ``geopurify synth --from-scan`` renders of the two real ScanNet scans in
``../shared/data/scannet-scene0011-pointcept/`` (real geometry, the calibrated simulated VLM), written
once under ``benchmarks/_work/ablation/``. Each variant trains a student label-free on both rooms (as a
user runs ``geopurify train`` on their scans, then ``segment`` on the same scans) and purifies them;
scores are the paper protocol (19 classes, otherfurniture ignored) on the confusion summed over the
rooms. Every row is measured beside, in the same run, raw fusion, uniform kNN pooling, the bilateral
(normal + colour) affinity with its sharpness tuned on these very rooms (the strongest version of that
rival), the untrained student of the variant's architecture and inputs, and the oracle affinity (same
ground-truth class). Nothing of the student's is tuned on these rooms: the variants are fixed lists,
and every one measured is reported.

``--rooms gate``: the real-scan rooms of the end-to-end gate (``tests/e2e/_gate_rooms.py``: full-density
crops of the whole-room renders), inductive: students train on the two crops of scene0011_00 with the
gate's training options (60 steps of 1.5 m crops) and are scored on the three held-out crops of
scene0011_01. A fast screen (a minute of training per row); a change is kept only if it also helps on
the whole scans.

Training time is wall time on this machine, with the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "ablation"
SCANS = HERE.parent.parent / "shared" / "data" / "scannet-scene0011-pointcept"
ROOMS = ("scene0011_00", "scene0011_01")

log = logging.getLogger("ablation")


@dataclass
class Variant:
    """One row: overrides of the defaults (empty = the defaults ``geopurify train`` gives)."""

    train: dict = field(default_factory=dict)  # TrainConfig fields
    teacher: dict = field(default_factory=dict)  # geometric teacher options
    pool: dict = field(default_factory=dict)  # PoolConfig fields
    inputs: str = ""  # student input change: "" (none) or "lab" (colour as CIE Lab, not RGB)
    fusion: str = ""  # LiftConfig.fusion of the rooms: "" (the default, consensus) or "mean"; own baselines
    note: str = ""


VARIANTS: dict[str, Variant] = {
    "default": Variant(note="no change: the defaults of `train` / `segment` (with --rooms gate: the gate's options)"),
    "teacher-multiscale": Variant(teacher={"levels": 3, "desc_scales": 2}, note="3 superpoint levels, 2 PCA scales"),
    "positives-local": Variant(train={"local_positives": True}, note="positive among the 96 spatial neighbours"),
    "teacher-descriptor": Variant(teacher={"variant": "descriptor"}, note="descriptor teacher only"),
    "blocks5": Variant(train={"blocks": 5}, note="receptive field 21 voxels instead of 13"),
    "teacher-superpoint": Variant(teacher={"variant": "superpoint"}, note="superpoint teacher only"),
    "whole-scene": Variant(train={"crop": 0.0}, note="no crops: every step sees whole rooms"),
    "steps30": Variant(train={"steps": 30}, note="30 steps (steps vs mIoU)"),
    "steps120": Variant(train={"steps": 120}, note="120 steps (steps vs mIoU)"),
    "steps240": Variant(train={"steps": 240}, note="240 steps (steps vs mIoU)"),
    "lr-low": Variant(train={"lr": 1e-3, "warmup": 10}, note="lr 1e-3, 10 warm-up steps"),
    "temp0.1": Variant(train={"temperature": 0.1}, note="InfoNCE temperature 0.1"),
    "temp0.04": Variant(train={"temperature": 0.04}, note="InfoNCE temperature 0.04"),
    "micro-heavy": Variant(train={"macro_negatives": 32, "micro_negatives": 32},
                           note="32 macro + 32 micro negatives (was 48 + 16)"),  # fmt: skip
    "micro-light": Variant(train={"macro_negatives": 56, "micro_negatives": 8},
                           note="56 macro + 8 micro negatives (was 48 + 16)"),  # fmt: skip
    "sharpen10": Variant(pool={"sharpen": 10.0}, note="pooling sharpen 10 (was 20)"),
    "sharpen40": Variant(pool={"sharpen": 40.0}, note="pooling sharpen 40 (was 20)"),
    "pool-T9": Variant(pool={"steps": 9}, note="9 pooling iterations (was 18)"),
    "pool-T36": Variant(pool={"steps": 36}, note="36 pooling iterations (was 18)"),
    "pool-K48": Variant(pool={"k": 48}, note="48 neighbours (was 96)"),
    "teacher-semantic0.3": Variant(teacher={"variant": "semantic", "sem_weight": 0.3},
                                   note="descriptor + superpoint-mean lifted features (PCA 32), b 0.3"),  # fmt: skip
    "teacher-semantic0.6": Variant(teacher={"variant": "semantic", "sem_weight": 0.6},
                                   note="descriptor + superpoint-mean lifted features (PCA 32), b 0.6"),  # fmt: skip
    "teacher-semantic0.9": Variant(teacher={"variant": "semantic", "sem_weight": 0.9},
                                   note="descriptor + superpoint-mean lifted features (PCA 32), b 0.9"),  # fmt: skip
    "teacher-appearance": Variant(teacher={"variant": "appearance"},
                                  note="teacher: unit [normal, 2 Lab/100], the best weight-free affinity"),  # fmt: skip
    "local0.5": Variant(train={"local_weight": 0.5}, note="0.5 InfoNCE + 0.5 KL of local softmax(20 cos) affinities"),
    "appearance-local0.5": Variant(teacher={"variant": "appearance"}, train={"local_weight": 0.5},
                                   note="appearance teacher, 0.5 InfoNCE + 0.5 local affinity KL"),  # fmt: skip
    "appearance-local0.9": Variant(teacher={"variant": "appearance"}, train={"local_weight": 0.9},
                                   note="appearance teacher, 0.1 InfoNCE + 0.9 local affinity KL"),  # fmt: skip
    "inputs-lab": Variant(inputs="lab", note="student colour in CIE Lab ((L-50)/50, a/128, b/128), not 2 RGB - 1"),
    "fusion-mean": Variant(fusion="mean", note="mean fusion (OpenScene) of the lifted features instead of consensus; "
                           "every baseline of the row recomputed on the mean-fused rooms"),
    "anchors-superpoint": Variant(train={"anchor_spread": "superpoint"},
                                  note="anchors spread over the teacher's superpoints (each as likely)"),  # fmt: skip
}


@dataclass
class Room:
    name: str
    grid: object  # geopurify.geometry.VoxelGrid
    scene: object  # geopurify.io.Scene (the rendered room)
    inputs: np.ndarray  # (V, C) student inputs
    logits: np.ndarray  # (V, 20) cosine logits of the lifted features
    colors: np.ndarray  # (V, 3) in [0, 1]
    normals: np.ndarray  # (V, 3) unit
    gt: np.ndarray  # (N,) ScanNet-20 indices, -1 ignored
    gt_voxel: np.ndarray  # (V,) majority GT per voxel (20 = unlabelled)
    names: list


def render_rooms() -> list[Path]:
    from geopurify import api

    out = []
    for r in ROOMS:
        dst = WORK / "scenes" / r
        if not (dst / "synthetic.json").is_file():
            api.synth(dst, from_scan=SCANS / r)
        out.append(dst)
    return out


def gate_rooms() -> tuple[list[Path], list[Path], dict]:
    """The e2e gate's real-scan rooms (train crops of scene0011_00, held-out crops of scene0011_01)."""
    import sys

    sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
    import _gate_rooms

    root = WORK / "gate"
    if (root / "test").is_dir():
        train = [root / f"train0011a{i}_00" for i in range(len(_gate_rooms.TRAIN_BOXES))]
        test = [root / "test" / f"test0011b{i}_00" for i in range(len(_gate_rooms.TEST_BOXES))]
    else:
        train, test = _gate_rooms.real_rooms(root)
    return train, test, dict(_gate_rooms.REAL_TRAIN)


def load_rooms(paths: list[Path], own_gt: bool = False, fusion: str = "") -> list[Room]:
    """``own_gt``: GT from the rendered scene's labels (crops), else from the Pointcept scan of that name;
    ``fusion``: the lifting's fusion rule (empty: LiftConfig's default)."""
    from geopurify import api
    from geopurify.config import SegmentConfig
    from geopurify.distill import voxel_inputs
    from geopurify.encoders.scene import class_text, encoder_for_scene
    from geopurify.eval.gt import gt_indices
    from geopurify.lifting import lift_scene

    cfg = SegmentConfig(purify=False)
    if fusion:
        cfg = dataclasses.replace(cfg, lift=dataclasses.replace(cfg.lift, fusion=fusion))
    rooms = []
    for p in paths:
        sc = api.load_scene(p, cfg.read)
        enc = encoder_for_scene(sc, cfg.lift.encoder, cfg.lift.encoder_options, cfg.lift.classes)
        text = class_text(sc, cfg.lift.text, cfg.lift.classes, enc)
        lifted = lift_scene(sc, enc, text, cfg.lift)
        grid, inputs, vf = voxel_inputs(sc, lifted.features, 0.02)
        gt = gt_indices(sc if own_gt else api.load_scene(SCANS / p.name, cfg.read), "scannet20")
        onehot = np.zeros((len(gt), 21), np.float32)
        onehot[np.arange(len(gt)), np.where(gt < 0, 20, gt)] = 1
        vn = grid.reduce(sc.normals)
        rooms.append(Room(p.name, grid, sc, inputs, vf @ text.normalized().T, grid.reduce(sc.colors),
                          vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12), gt,
                          grid.reduce(onehot).argmax(1), list(text.names)))  # fmt: skip
    return rooms


def score(rooms: list[Room], labels_v: list[np.ndarray]) -> dict:
    from geopurify.eval import confusion, scores

    conf = sum(confusion(r.gt, r.grid.expand(lv), len(r.names)) for r, lv in zip(rooms, labels_v))
    s = scores(conf, rooms[0].names, protocol="paper")
    return {"miou": round(100 * float(s.miou), 2), "fmiou": round(100 * float(s.fmiou), 2)}


def pool_with(rooms: list[Room], affinity, pool_cfg) -> list[np.ndarray]:
    """Labels per room after ``steps`` products with the affinity ``affinity(room, nbr) -> CSR``."""
    from geopurify.pooling import neighbors, propagate

    out = []
    for r in rooms:
        nbr = neighbors(r.grid.centers, pool_cfg)
        out.append(np.asarray(propagate(affinity(r, nbr), r.logits, pool_cfg.steps)).argmax(1))
    return out


def baselines(rooms: list[Room], pool_cfg) -> dict:
    """Raw, uniform, bilateral (sharpness tuned here), oracle."""
    rows = {"raw fusion": score(rooms, [r.logits.argmax(1) for r in rooms])}
    rows["uniform kNN"] = score(rooms, pool_with(rooms, _uniform, pool_cfg))

    best = None
    for s in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0):
        m = score(rooms, pool_with(rooms, _bilateral(s), pool_cfg))
        rows[f"bilateral s={s}"] = m
        if best is None or m["miou"] > best[1]["miou"]:
            best = (s, m)
    rows["bilateral (best)"] = {**best[1], "sharpness": best[0]}
    rows["oracle"] = score(rooms, pool_with(rooms, _oracle, pool_cfg))
    return rows


# The baselines are the library's (pooling.baselines), so the benchmark scores what users get.
def _uniform(r: Room, n: np.ndarray) -> torch.Tensor:
    from geopurify.pooling.baselines import uniform_affinity

    return uniform_affinity(n)


def _bilateral(s: float):
    """``bilateral_affinity`` at sharpness ``s`` (its default sigmas: normal 0.5, colour 0.15)."""
    from geopurify.pooling.baselines import BilateralConfig, bilateral_affinity

    cfg = BilateralConfig(sharpness=s)
    return lambda r, n: bilateral_affinity(n, r.normals, r.colors, cfg)


def _oracle(r: Room, n: np.ndarray) -> torch.Tensor:
    from geopurify.pooling.baselines import oracle_affinity

    return oracle_affinity(n, r.gt_voxel)


def student_inputs_of(r: Room, var: Variant) -> np.ndarray:
    """(V, C) float32 student inputs of ``r`` under the variant's input change (columns -6:-3 are colour)."""
    if not var.inputs:
        return r.inputs
    from geopurify.teachers import rgb_to_lab

    x = r.inputs.copy()
    x[:, -6:-3] = (rgb_to_lab(r.colors) - np.array([50.0, 0, 0], np.float32)) / np.array([50.0, 128, 128], np.float32)
    return x


def run_variant(name: str, var: Variant, rooms: list[Room], test: list[Room] | None = None,
                base: dict | None = None, tag: str = "real") -> dict:  # fmt: skip
    """Train on ``rooms`` (TrainConfig = defaults, then ``base``, then the variant's), score on ``test``
    (default: the same rooms); the student is kept under ``WORK/students/<tag>_<name>.safetensors``."""
    from geopurify.distill import TrainConfig, TrainScene
    from geopurify.distill import train as distill_train
    from geopurify.pooling import PoolConfig
    from geopurify.pooling.pool import affinity_from_neighbors
    from geopurify.student import AffinityNet, StudentConfig, load, save
    from geopurify.teachers import build_teacher

    test = rooms if test is None else test
    tcfg = dataclasses.replace(TrainConfig(device="cpu"), **{**(base or {}), **var.train})
    pcfg = dataclasses.replace(PoolConfig(), **var.pool)
    teacher = build_teacher("geometric", **var.teacher)
    scenes, direct = [], {}  # direct: the teacher's features of the scored rooms, its own affinity
    scored = {id(r) for r in test}
    for r in [*rooms, *(r for r in test if all(r is not t for t in rooms))]:
        # per-point lifted features for a teacher that reads them: the voxels' unit features, expanded
        feats = teacher.features(r.scene, r.grid, r.grid.expand(r.inputs[:, :-6]))
        if any(r is t for t in rooms):
            scenes.append(TrainScene(r.name, r.grid.coords, r.grid.centers, student_inputs_of(r, var), feats,
                                     teacher.last_segments))  # fmt: skip
        if id(r) in scored:
            direct[r.name] = feats
    torch.manual_seed(tcfg.seed)
    untrained = AffinityNet(StudentConfig(in_dim=rooms[0].inputs.shape[1], width=tcfg.width,
                                          out_dim=tcfg.out_dim, blocks=tcfg.blocks))  # fmt: skip
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    shared = WORK / "students" / f"{tag}_default.safetensors"
    # a pooling-only row: the default student
    if not (var.train or var.teacher or var.inputs or var.fusion) and shared.is_file():
        model = load(shared)
    else:
        model = distill_train(scenes, tcfg)
    seconds = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    (WORK / "students").mkdir(parents=True, exist_ok=True)
    save(model, WORK / "students" / f"{tag}_{name}.safetensors")

    def rows_of(net):
        return score(test, pool_with(test, lambda r, n: affinity_from_neighbors(
            n, net.embed(r.grid.coords, student_inputs_of(r, var)), pcfg), pcfg))  # fmt: skip

    row = {"note": var.note, "train": var.train, "teacher": var.teacher, "pool": var.pool, "inputs": var.inputs,
           "untrained": rows_of(untrained), "trained": rows_of(model), "train_s": round(seconds, 1),
           "load_before": round(load0, 1), "load_after": round(load1, 1)}  # fmt: skip
    if direct:
        row["teacher_direct"] = score(test, pool_with(test, lambda r, n: affinity_from_neighbors(
            n, direct[r.name], pcfg), pcfg))  # fmt: skip
    if var.pool:  # the weight-free rivals on the same changed pooling (sharpness 1 and 2: the best at the default)
        row["bilateral"] = {f"s={s:g}": score(test, pool_with(test, _bilateral(s), pcfg)) for s in (1.0, 2.0)}
        row["oracle"] = score(test, pool_with(test, _oracle, pcfg))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rooms", choices=("real", "gate"), default="real",
                    help="real: both whole scans, transductive; gate: the e2e gate's crops, inductive")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(a.threads)
    if not SCANS.is_dir():
        raise SystemExit(f"{SCANS} not found: the real scans are needed")
    from geopurify.pooling import PoolConfig

    WORK.mkdir(parents=True, exist_ok=True)
    if a.rooms == "gate":
        train_paths, test_paths, base = gate_rooms()
    else:
        train_paths, base = render_rooms(), {}
        test_paths = train_paths

    def rooms_of(fusion: str = "") -> tuple[list[Room], list[Room]]:
        tr = load_rooms(train_paths, own_gt=a.rooms == "gate", fusion=fusion)
        return tr, (tr if test_paths is train_paths else load_rooms(test_paths, own_gt=True, fusion=fusion))

    rooms, test = rooms_of()
    res_path = HERE / "results" / ("ablation.json" if a.rooms == "real" else "ablation_gate.json")
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    results["baselines"] = baselines(test, PoolConfig())
    results["base"] = base  # TrainConfig fields every variant starts from (gate: the gate's options)
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, " \
                         f"{a.threads} threads, {time.strftime('%Y-%m-%d %H:%M')}"  # fmt: skip
    res_path.write_text(json.dumps(results, indent=2))
    for name in a.variants:
        log.info("variant %s", name)
        var = VARIANTS[name]
        if var.fusion:  # other lifted features: the row's own rooms, and its own baselines beside it
            rooms_v, test_v = rooms_of(var.fusion)
            row = run_variant(name, var, rooms_v, test_v, base, a.rooms)
            row["baselines"] = baselines(test_v, dataclasses.replace(PoolConfig(), **var.pool))
        else:
            row = run_variant(name, var, rooms, test, base, a.rooms)
        results.setdefault("variants", {})[name] = row
        res_path.write_text(json.dumps(results, indent=2))  # after every row: a killed run keeps what it had
        log.info("%s: %s", name, results["variants"][name])
    write_markdown(results, res_path.with_suffix(".md"), [r.name for r in test])


def write_markdown(results: dict, path: Path, rooms: list[str]) -> None:
    b = results["baselines"]
    raw, oracle, bil = b["raw fusion"]["miou"], b["oracle"]["miou"], b["bilateral (best)"]["miou"]
    lines = [f"Machine: {results['machine']}. Paper protocol, confusion summed over {', '.join(rooms)}. "
             f"Training: TrainConfig defaults{' with ' + json.dumps(results['base']) if results.get('base') else ''}"
             ", then each variant's change.", "",
             "| affinity | mIoU | f-mIoU |", "|---|---|---|"]  # fmt: skip
    for k, v in b.items():
        if not k.startswith("bilateral s="):
            lines.append(f"| {k} | {v['miou']:.1f} | {v['fmiou']:.1f} |")
    lines += ["", "| variant | change | untrained | trained | trained - untrained | trained - raw | "
              "trained - best bilateral | gap closed | teacher direct | train s (load before/after) |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    own = []
    for name, v in results.get("variants", {}).items():
        u, t = v["untrained"]["miou"], v["trained"]["miou"]
        raw, oracle, bil = b["raw fusion"]["miou"], b["oracle"]["miou"], b["bilateral (best)"]["miou"]
        if "baselines" in v:  # a row on other lifted features is compared with its own baselines
            vb = v["baselines"]
            raw, oracle, bil = vb["raw fusion"]["miou"], vb["oracle"]["miou"], vb["bilateral (best)"]["miou"]
            own.append(f"{name}: raw fusion {raw:.1f}, uniform kNN {vb['uniform kNN']['miou']:.1f}, bilateral (best, "
                       f"s = {vb['bilateral (best)']['sharpness']:g}) {bil:.1f}, oracle {oracle:.1f}")  # fmt: skip
        td = f"{v['teacher_direct']['miou']:.1f}" if "teacher_direct" in v else "-"
        change = v["note"] or json.dumps({k: v[k] for k in ("train", "teacher", "pool") if v[k]})
        lines.append(f"| {name} | {change} | {u:.1f} | {t:.1f} | {t - u:+.1f} | {t - raw:+.1f} | {t - bil:+.1f} | "
                     f"{100 * (t - raw) / max(oracle - raw, 1e-9):.0f} % | {td} | {v['train_s']} "
                     f"({v['load_before']}/{v['load_after']}) |")  # fmt: skip
    if own:
        lines += ["", "Rows on other lifted features, their own baselines (the row's differences are against these): "
                  + "; ".join(own) + "."]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
