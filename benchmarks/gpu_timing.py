"""Segment and a training step on each device, side by side in one run (GPU against CPU).

Usage: python benchmarks/gpu_timing.py [--devices cuda cpu] [--points 70000] [--frames 20]
       [--train-steps 5] [--repeat 3] [--json OUT.json]
One synthetic room (ScanNet layout), purified by an untrained student of the default architecture. Per device:
``api.segment`` wall seconds (on CUDA after one warm-up run; the median of ``--repeat``; stage seconds
from its run.json) and seconds per distillation step (``distill.train`` of 1 + S steps minus 1 step, over S,
median of ``--repeat``). Run by ``benchmarks/gpu_check.sh`` (``--tiny`` in its dry run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from geopurify import api
from geopurify.config import SegmentConfig, TrainRunConfig
from geopurify.distill import TrainConfig
from geopurify.distill import train as distill_train
from geopurify.student import AffinityNet, StudentConfig
from geopurify.student import save as save_student
from geopurify.teachers import build_teacher

log = logging.getLogger("benchmarks.gpu_timing")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_segment(room: Path, student: Path, device: str, repeat: int, work: Path) -> dict:
    """Median wall seconds of ``api.segment`` on ``device`` after one warm-up run, and its stage seconds."""
    walls, stages = [], []
    warm = 1 if device.startswith("cuda") else 0  # a CUDA context, kernels and caches to warm up
    for i in range(repeat + warm):
        _sync(device)
        t0 = time.perf_counter()
        res = api.segment(room, work / f"seg-{device}-{i}", SegmentConfig(student=str(student), device=device))
        _sync(device)
        if i >= warm:
            walls.append(time.perf_counter() - t0)
            stages.append(res.run["seconds"])
    median_stages = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    return {"segment_s": statistics.median(walls), "segment_runs_s": walls, "segment_stages_s": median_stages}


def time_train_step(scene, device: str, steps: int, repeat: int, base: TrainConfig) -> dict:
    """Seconds per distillation step on ``device``: (time of 1 + steps) - (time of 1), over steps."""

    def run(n: int) -> float:
        cfg = dataclasses.replace(base, steps=n, device=device, checkpoint_every=0, log_every=10**6)
        _sync(device)
        t0 = time.perf_counter()
        distill_train([scene], cfg)  # returns the model on the CPU: the device's queue is drained
        return time.perf_counter() - t0

    run(1)  # warm-up: the first optimiser imports torch._dynamo; CUDA kernels
    per_step = [(run(1 + steps) - run(1)) / steps for _ in range(repeat)]
    return {"train_step_s": statistics.median(per_step), "train_step_runs_s": per_step}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    p.add_argument("--points", type=int, default=70_000)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="smallest sizes (the dry run's check that this runs)")
    p.add_argument("--json", default=None, help="write the figures here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if a.tiny:
        a.points, a.frames, a.train_steps, a.repeat = 1000, 3, 1, 1
    result: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "points_target": a.points,
        "frames": a.frames,
        "devices": {},
    }
    with tempfile.TemporaryDirectory(prefix="gpu_timing_") as tmp:
        work = Path(tmp)
        room = api.synth(work / "rooms", n=1, seed=11, points=a.points, frames=a.frames)[0]
        cfg = TrainRunConfig(train=TrainConfig(device="cpu"))
        scene, _ = api.prepare_training_scene(room, cfg, build_teacher(cfg.teacher, **cfg.teacher_options))
        # an untrained student of the default architecture: the time does not depend on the weights
        # --tiny: a small student too (the dry run checks that this runs, not how fast)
        tc = TrainConfig(anchors=256, width=8, out_dim=16, blocks=1) if a.tiny else TrainConfig()
        student = save_student(
            AffinityNet(StudentConfig(in_dim=scene.inputs.shape[1], width=tc.width, out_dim=tc.out_dim,
                                      blocks=tc.blocks)),
            work / "student",
        )
        result["voxels"] = scene.num_voxels
        for dev in a.devices:
            if dev.startswith("cuda") and not torch.cuda.is_available():
                result["devices"][dev] = {"skipped": "torch sees no CUDA device"}
                log.warning("%s: skipped, torch sees no CUDA device", dev)
                continue
            figures = time_segment(room, student, dev, a.repeat, work)
            figures.update(time_train_step(scene, dev, a.train_steps, a.repeat, tc))
            result["devices"][dev] = figures
            if figures["train_step_s"] <= 0:  # a difference of two timings: noise can exceed a tiny step
                log.warning("%s: train step below the timing noise (%.4f s); raise --train-steps", dev,
                            figures["train_step_s"])
            log.info("%s: segment %.3f s, train step %.4f s", dev, figures["segment_s"], figures["train_step_s"])
    timed = {d: f for d, f in result["devices"].items() if "segment_s" in f}
    if "cpu" in timed:
        for dev, f in timed.items():
            if dev != "cpu":
                f["segment_speedup_vs_cpu"] = timed["cpu"]["segment_s"] / f["segment_s"]
                if f["train_step_s"] > 0:
                    f["train_step_speedup_vs_cpu"] = timed["cpu"]["train_step_s"] / f["train_step_s"]
    text = json.dumps(result, indent=2)
    if a.json:
        Path(a.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
