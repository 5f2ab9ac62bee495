"""Which weight-free teacher purifies best? Train one student per teacher variant on synthetic rooms
and score purified labels on held-out rooms, beside raw fusion and two student-free baselines.

    python benchmarks/teachers.py --train 2 --test 2

Baselines: ``plain-knn`` pools with uniform weights over the K neighbours (no affinities at all);
``input-affinity`` uses the student's own inputs [lifted | rgb | normal] as the embedding (no training).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "teachers"


def miou_of(out: Path, scene: Path) -> float:
    from geopurify import api

    return float(api.evaluate(out, scene).scores.miou)


def baseline(scene: Path, out: Path, kind: str) -> float:
    """Pool without a trained student; same pipeline otherwise."""
    import torch

    from geopurify import api
    from geopurify.config import SegmentConfig
    from geopurify.distill import student_voxel_inputs
    from geopurify.encoders.scene import class_text, encoder_for_scene
    from geopurify.geometry import voxelize
    from geopurify.lifting import lift_scene
    from geopurify.outputs import open_writer
    from geopurify.pooling import PoolConfig, purify

    cfg = SegmentConfig(purify=False)
    sc = api.load_scene(scene, cfg.read)
    enc = encoder_for_scene(sc, cfg.lift.encoder, cfg.lift.encoder_options)
    text = class_text(sc, cfg.lift.text, cfg.lift.classes, enc)
    lifted = lift_scene(sc, enc, text, cfg.lift)
    grid = voxelize(sc.points, cfg.voxel_size)
    inputs, vfeat = student_voxel_inputs(sc, grid, lifted.features)
    emb = np.ones((grid.num_voxels, 1), np.float32) if kind == "plain-knn" else inputs
    logits = vfeat @ text.normalized().T
    res = purify(torch.from_numpy(grid.centers), torch.from_numpy(emb), torch.from_numpy(logits), PoolConfig())
    labels = grid.expand(np.asarray(res.values).argmax(1))
    with open_writer(out) as w:
        w.labels("labels.txt", labels)
        w.json("names.json", list(text.names))
        w.npy("points.npy", sc.points.astype(np.float32))
        w.finish({"command": "benchmarks/teachers.py baseline", "kind": kind, "scene": str(scene)})
    return miou_of(out, scene)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=2)
    ap.add_argument("--test", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=["combined", "superpoint", "descriptor"])
    ap.add_argument("--steps", type=int, default=None)
    a = ap.parse_args()

    from geopurify import api
    from geopurify.config import SegmentConfig, TrainRunConfig
    from geopurify.distill import TrainConfig
    from geopurify.synthetic import SyntheticConfig, make_scene

    WORK.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i in range(a.train + a.test):
        name = f"synth{100 + i:04d}_00"
        if not (WORK / name / f"{name}_vh_clean_2.ply").is_file():
            make_scene(WORK, name, dataclasses.replace(SyntheticConfig(), seed=100 + i))
        scenes.append(WORK / name)
    train, test = scenes[: a.train], scenes[a.train :]
    rows = {}
    raw = []
    for s in test:
        api.segment(s, WORK / "out" / "raw" / s.name, SegmentConfig(purify=False))
        raw.append(miou_of(WORK / "out" / "raw" / s.name, s))
    rows["raw fusion"] = {"miou": raw, "train_s": 0.0}
    for kind in ("plain-knn", "input-affinity"):
        rows[kind] = {"miou": [baseline(s, WORK / "out" / kind / s.name, kind) for s in test], "train_s": 0.0}
    for v in a.variants:
        t0 = time.perf_counter()
        student = WORK / f"student_{v}"
        api.train([str(s) for s in train], student,
                  TrainRunConfig(teacher="geometric", teacher_options={"variant": v},
                                 train=TrainConfig(**({"steps": a.steps} if a.steps else {}))), resume=False)
        t_train = time.perf_counter() - t0
        m = []
        for s in test:
            api.segment(s, WORK / "out" / v / s.name, SegmentConfig(student=str(student), save_features=False))
            m.append(miou_of(WORK / "out" / v / s.name, s))
        rows[f"geometric/{v}"] = {"miou": m, "train_s": round(t_train, 1)}
        print(v, m, flush=True)
    lines = ["| method | " + " | ".join(s.name for s in test) + " | mean mIoU | train s |",
             "|---|" + "---|" * (len(test) + 2)]
    for k, r in rows.items():
        lines.append(f"| {k} | " + " | ".join(f"{100 * x:.1f}" for x in r["miou"])
                     + f" | {100 * np.mean(r['miou']):.1f} | {r['train_s']} |")
    meta = f"{platform.machine()} {platform.platform()}, {time.strftime('%Y-%m-%d')}; paper protocol (19 classes)"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "teachers.md").write_text(meta + "\n\n" + "\n".join(lines) + "\n")
    (HERE / "results" / "teachers.json").write_text(json.dumps(rows, indent=2))
    print(meta)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
