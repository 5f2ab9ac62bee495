"""Rooms and the three-way comparison behind the end-to-end quality gates (tests/e2e/test_gates.py).

Real branch (``../shared`` present): both ScanNet scans of scene0011, thinned to keep the test fast.
Training rooms: the two halves of scene0011_00 (split along its longer floor axis, every 16th point).
Held-out rooms: the three thirds of scene0011_01 (every 12th point): a separate scan of the same room,
with its own world frame, camera paths, sensor noise and VLM draws; no point of scene0011_01 is seen
in training (the physical room is the same, so this is held out by scan, not by room).
Procedural branch: training rooms seeds 40-41, held-out rooms seeds 50-52.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "scannet-scene0011-pointcept"
STEPS = 120
SCAN_CFG = dict(n_frames=30, color_hw=(120, 160), depth_hw=(96, 128), feature_hw=(60, 80))


def have_real() -> bool:
    return all((REAL / s / "coord.npy").is_file() for s in ("scene0011_00", "scene0011_01"))


def _slabs(scan, parts: int, stride: int, prefix: str):
    from geopurify.synthetic import LabelledScan

    keep = np.arange(0, scan.num_points, stride)
    p = scan.points[keep]
    axis = int(np.argmax(np.ptp(p[:, :2], axis=0)))
    edges = np.quantile(p[:, axis], np.linspace(0, 1, parts + 1))
    edges[-1] += 1e-3
    out = []
    for i in range(parts):
        m = keep[(p[:, axis] >= edges[i]) & (p[:, axis] < edges[i + 1])]
        out.append(LabelledScan(f"{prefix}{i}_00", scan.points[m], scan.colors[m], scan.normals[m], scan.labels[m],
                                scan.instance[m]))  # fmt: skip
    return out


def real_rooms(root: Path) -> tuple[list[Path], list[Path]]:
    from geopurify.synthetic import ScanRenderConfig, read_labelled_scan, render_scan

    train = _slabs(read_labelled_scan(REAL / "scene0011_00"), 2, 16, "train0011a")
    test = _slabs(read_labelled_scan(REAL / "scene0011_01"), 3, 12, "test0011b")
    paths = []
    for i, s in enumerate(train + test):
        paths.append(render_scan(s, root / s.name, ScanRenderConfig(seed=100 + i, **SCAN_CFG)).path)
    return paths[:2], paths[2:]


def procedural_rooms(root: Path) -> tuple[list[Path], list[Path]]:
    from geopurify.synthetic import SyntheticConfig, make_scene

    small = dataclasses.replace(SyntheticConfig(), target_points=8_000, n_frames=20, room_size=(3.0, 4.0))
    train = [make_scene(root, f"synth{s:04d}_00", dataclasses.replace(small, seed=s)) for s in (40, 41)]
    test = [make_scene(root, f"synth{s:04d}_00", dataclasses.replace(small, seed=s)) for s in (50, 51, 52)]
    return train, test


def compare(root: Path, train: list[Path], test: list[Path], steps: int = STEPS, break_student: str | None = None
            ) -> dict[str, float]:  # fmt: skip
    """Train on ``train``; segment ``test`` raw, with the untrained and with the trained student; summed mIoU.

    ``break_student``: "zero" (trained weights zeroed) or "untrained" (the untrained student passed as
    trained): the broken versions the gates must catch.
    """
    import torch

    from geopurify import api
    from geopurify.config import SegmentConfig, TrainRunConfig
    from geopurify.distill import TrainConfig
    from geopurify.pooling.baselines import untrained_student
    from geopurify.student import load, save

    trained = root / "student"
    if not (trained / "student.safetensors").is_file():
        api.train([str(p) for p in train], trained, TrainRunConfig(train=TrainConfig(steps=steps)), resume=False)
    model = load(trained)
    cfg = model.config
    untrained = untrained_student(cfg.in_dim, cfg.width, cfg.out_dim, cfg.blocks, seed=0)
    save(untrained, root / "untrained")
    used = trained
    if break_student == "zero":
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        save(model, root / "broken")
        used = root / "broken"
    elif break_student == "untrained":
        used = root / "untrained"
    out: dict[str, float] = {}
    for tag, seg in (("raw", SegmentConfig(purify=False, save_features=False)),
                     ("untrained", SegmentConfig(student=str(root / "untrained"), save_features=False)),
                     ("trained", SegmentConfig(student=str(used), save_features=False))):  # fmt: skip
        for s in test:
            api.segment(s, root / "out" / tag / s.name, dataclasses.replace(seg, overwrite=True))
        out[tag] = float(api.evaluate(root / "out" / tag, test[0].parent).scores.miou)
    return out
