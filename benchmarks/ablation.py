"""Purifier ablations on the real-scan rooms: which teacher, student input, sampler and pooling gave what.

    python benchmarks/ablation.py                       # every variant, both real scans
    python benchmarks/ablation.py --variants default crop3

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
import warnings
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
    note: str = ""


VARIANTS: dict[str, Variant] = {
    "default": Variant(note="the defaults of `geopurify train` / `segment` (3 m crops)"),
    "teacher-multiscale": Variant(teacher={"levels": 3, "desc_scales": 2}, note="3 superpoint levels, 2 PCA scales"),
    "positives-local": Variant(train={"local_positives": True}, note="positive among the 96 spatial neighbours"),
    "teacher-descriptor": Variant(teacher={"variant": "descriptor"}, note="descriptor teacher only"),
    "blocks5": Variant(train={"blocks": 5}, note="receptive field 21 voxels instead of 13"),
    "teacher-superpoint": Variant(teacher={"variant": "superpoint"}, note="superpoint teacher only"),
    "whole-scene": Variant(train={"crop": 0.0}, note="no crops: every step sees whole rooms"),
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


def load_rooms(paths: list[Path]) -> list[Room]:
    from geopurify import api
    from geopurify.config import SegmentConfig
    from geopurify.distill import voxel_inputs
    from geopurify.encoders.scene import class_text, encoder_for_scene
    from geopurify.eval.gt import gt_indices
    from geopurify.lifting import lift_scene

    cfg = SegmentConfig(purify=False)
    rooms = []
    for p in paths:
        sc = api.load_scene(p, cfg.read)
        enc = encoder_for_scene(sc, cfg.lift.encoder, cfg.lift.encoder_options, cfg.lift.classes)
        text = class_text(sc, cfg.lift.text, cfg.lift.classes, enc)
        lifted = lift_scene(sc, enc, text, cfg.lift)
        grid, inputs, vf = voxel_inputs(sc, lifted.features, 0.02)
        gt = gt_indices(api.load_scene(SCANS / p.name, cfg.read), "scannet20")
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


def _csr(nbr: np.ndarray, w: np.ndarray) -> torch.Tensor:
    v, k = nbr.shape
    order = np.argsort(nbr, axis=1)
    cols = np.take_along_axis(nbr, order, 1)
    w = np.take_along_axis(w, order, 1)
    w = w / np.maximum(w.sum(1, keepdims=True), 1e-30)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(torch.arange(0, v * k + 1, k), torch.from_numpy(cols.reshape(-1)),
                                       torch.from_numpy(w.reshape(-1).astype(np.float32)), size=(v, v))  # fmt: skip


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
    rows["uniform kNN"] = score(rooms, pool_with(rooms, lambda r, n: _csr(n, np.ones(n.shape)), pool_cfg))

    def bilateral(s):
        def aff(r, n):
            dn = np.sum((r.normals[n] - r.normals[:, None]) ** 2, 2) / 0.5**2
            dc = np.sum((r.colors[n] - r.colors[:, None]) ** 2, 2) / 0.15**2
            e = -s * (dn + dc)
            return _csr(n, np.exp(e - e.max(1, keepdims=True)))

        return aff

    best = None
    for s in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0):
        m = score(rooms, pool_with(rooms, bilateral(s), pool_cfg))
        rows[f"bilateral s={s}"] = m
        if best is None or m["miou"] > best[1]["miou"]:
            best = (s, m)
    rows["bilateral (best)"] = {**best[1], "sharpness": best[0]}
    rows["oracle"] = score(rooms, pool_with(rooms, lambda r, n: _csr(n, np.where(
        r.gt_voxel[n] == r.gt_voxel[:, None], 1.0, 1e-6)), pool_cfg))  # fmt: skip
    return rows


def run_variant(name: str, var: Variant, rooms: list[Room]) -> dict:
    from geopurify.distill import TrainConfig, TrainScene
    from geopurify.distill import train as distill_train
    from geopurify.pooling import PoolConfig
    from geopurify.pooling.pool import affinity_from_neighbors
    from geopurify.student import AffinityNet, StudentConfig
    from geopurify.teachers import build_teacher

    tcfg = dataclasses.replace(TrainConfig(device="cpu"), **var.train)
    pcfg = dataclasses.replace(PoolConfig(), **var.pool)
    teacher = build_teacher("geometric", **var.teacher)
    scenes = [TrainScene(r.name, r.grid.coords, r.grid.centers, r.inputs, teacher.features(r.scene, r.grid))
              for r in rooms]  # fmt: skip
    torch.manual_seed(tcfg.seed)
    untrained = AffinityNet(StudentConfig(in_dim=rooms[0].inputs.shape[1], width=tcfg.width,
                                          out_dim=tcfg.out_dim, blocks=tcfg.blocks))  # fmt: skip
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    model = distill_train(scenes, tcfg)
    seconds = time.perf_counter() - t0
    load1 = os.getloadavg()[0]

    def rows_of(net):
        return score(rooms, pool_with(rooms, lambda r, n: affinity_from_neighbors(
            n, net.embed(r.grid.coords, r.inputs), pcfg), pcfg))  # fmt: skip

    return {"note": var.note, "train": var.train, "teacher": var.teacher, "pool": var.pool,
            "untrained": rows_of(untrained), "trained": rows_of(model), "train_s": round(seconds, 1),
            "load_before": round(load0, 1), "load_after": round(load1, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(a.threads)
    if not SCANS.is_dir():
        raise SystemExit(f"{SCANS} not found: the real scans are needed")
    from geopurify.pooling import PoolConfig

    WORK.mkdir(parents=True, exist_ok=True)
    rooms = load_rooms(render_rooms())
    res_path = HERE / "results" / "ablation.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    results["baselines"] = baselines(rooms, PoolConfig())
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, " \
                         f"{a.threads} threads, {time.strftime('%Y-%m-%d %H:%M')}"  # fmt: skip
    res_path.write_text(json.dumps(results, indent=2))
    for name in a.variants:
        log.info("variant %s", name)
        results.setdefault("variants", {})[name] = run_variant(name, VARIANTS[name], rooms)
        res_path.write_text(json.dumps(results, indent=2))  # after every row: a killed run keeps what it had
        log.info("%s: %s", name, results["variants"][name])
    write_markdown(results)


def write_markdown(results: dict) -> None:
    b = results["baselines"]
    raw, oracle, bil = b["raw fusion"]["miou"], b["oracle"]["miou"], b["bilateral (best)"]["miou"]
    lines = [f"Machine: {results['machine']}. Paper protocol, confusion summed over {', '.join(ROOMS)}.", "",
             "| affinity | mIoU | f-mIoU |", "|---|---|---|"]  # fmt: skip
    for k, v in b.items():
        if not k.startswith("bilateral s="):
            lines.append(f"| {k} | {v['miou']:.1f} | {v['fmiou']:.1f} |")
    lines += ["", "| variant | change | untrained | trained | trained - untrained | trained - raw | "
              "trained - best bilateral | gap closed | train s (load before/after) |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, v in results.get("variants", {}).items():
        u, t = v["untrained"]["miou"], v["trained"]["miou"]
        change = v["note"] or json.dumps({k: v[k] for k in ("train", "teacher", "pool") if v[k]})
        lines.append(f"| {name} | {change} | {u:.1f} | {t:.1f} | {t - u:+.1f} | {t - raw:+.1f} | {t - bil:+.1f} | "
                     f"{100 * (t - raw) / max(oracle - raw, 1e-9):.0f} % | {v['train_s']} "
                     f"({v['load_before']}/{v['load_after']}) |")  # fmt: skip
    (HERE / "results" / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
