"""Rooms and the three-way comparison behind the end-to-end quality gates (tests/e2e/test_gates.py).

Real branch (``../shared`` present): both ScanNet scans of scene0011 rendered whole (``synth
--from-scan``, as ``benchmarks/quality.py`` renders them: one camera path and one simulated VLM per
scan), then cut into spatial crops at full density (every point of an (x, y) box, full height, seen by
every view of the whole room). The 2 cm voxels, normals and K = 96 neighbourhoods are those of the real
scan; thinning the scans to every 12th-16th point instead made K = 96 span decimetres.
Training rooms: ``TRAIN_BOXES`` of scene0011_00 (3 m x 3 m). Held-out rooms: ``TEST_BOXES`` of
scene0011_01, three disjoint 2.5 m x 2.5 m boxes (18k-44k points each) holding the kitchen (cabinet,
counter, refrigerator, door, window) and the dining table and chairs; nine classes in all.
scene0011_01 is a separate scan of the same room, with its own world frame, camera path, sensor noise
and VLM draws; no point of it is seen in training (the physical room is the same, so this is held out
by scan, not by room).
Procedural branch: training rooms seeds 40-41, held-out rooms seeds 50-52.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "scannet-scene0011-pointcept"
#: training of each branch (TrainConfig fields over the defaults)
PROCEDURAL_TRAIN = dict(steps=120)
REAL_TRAIN = dict(steps=60, crop=1.5, crop_above=0)
SCAN_CFG: dict = {}  # the defaults benchmarks/quality.py renders with


def have_real() -> bool:
    return all((REAL / s / "coord.npy").is_file() for s in ("scene0011_00", "scene0011_01"))


#: (x0, y0, x1, y1) world boxes in metres (each scan's own frame), full height, every point inside
TRAIN_BOXES = ((1.6, 0.0, 4.6, 3.0), (2.6, 3.7, 5.6, 6.7))
TEST_BOXES = ((1.6, 5.7, 4.1, 8.2), (4.1, 3.2, 6.6, 5.7), (1.6, 1.9, 4.1, 4.4))


def crop_rendered(scene: Path, box: tuple[float, float, float, float], out: Path) -> Path:
    """A scene folder holding the points of ``scene`` inside ``box`` (in file order) and all its frames.

    The frames (colour, depth, poses, simulated VLM masks) are the whole room's, so occlusion and the
    VLM's errors are those of a capture of the whole room; only the points to label are the crop's.
    """
    import shutil

    from plyfile import PlyData, PlyElement

    out.mkdir(parents=True, exist_ok=True)
    for part in ("color", "depth", "pose", "intrinsic", "features_2d", "text_embeddings.npz"):
        src = scene / part
        if not (out / part).exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, out / part)
    keep = None
    for suffix in ("_vh_clean_2.ply", "_vh_clean_2.labels.ply"):
        v = PlyData.read(str(scene / f"{scene.name}{suffix}"))["vertex"].data
        if keep is None:
            x0, y0, x1, y1 = box
            keep = (v["x"] >= x0) & (v["x"] < x1) & (v["y"] >= y0) & (v["y"] < y1)
        PlyData([PlyElement.describe(v[keep], "vertex")], byte_order="<").write(str(out / f"{out.name}{suffix}"))
    return out


def real_rooms(root: Path) -> tuple[list[Path], list[Path]]:
    from geopurify.synthetic import ScanRenderConfig, render_scan

    whole = {s: render_scan(REAL / s, root / "whole" / s, ScanRenderConfig(seed=100 + i, **SCAN_CFG)).path
             for i, s in enumerate(("scene0011_00", "scene0011_01"))}  # fmt: skip
    train = [crop_rendered(whole["scene0011_00"], b, root / f"train0011a{i}_00") for i, b in enumerate(TRAIN_BOXES)]
    held = root / "test"
    test = [crop_rendered(whole["scene0011_01"], b, held / f"test0011b{i}_00") for i, b in enumerate(TEST_BOXES)]
    return train, test


def procedural_rooms(root: Path) -> tuple[list[Path], list[Path]]:
    from geopurify.synthetic import SyntheticConfig, make_scene

    small = dataclasses.replace(SyntheticConfig(), target_points=8_000, n_frames=20, room_size=(3.0, 4.0))
    train = [make_scene(root, f"synth{s:04d}_00", dataclasses.replace(small, seed=s)) for s in (40, 41)]
    test = [make_scene(root, f"synth{s:04d}_00", dataclasses.replace(small, seed=s)) for s in (50, 51, 52)]
    return train, test


def compare(root: Path, train: list[Path], test: list[Path], train_options: dict | None = None,
            break_student: str | None = None) -> dict[str, float]:  # fmt: skip
    """Train on ``train``; segment ``test`` raw, with the untrained and with the trained student; summed mIoU.

    ``train_options``: TrainConfig fields over the defaults (the branch's ``*_TRAIN``).
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
        run = TrainRunConfig(train=TrainConfig(**(train_options or {})))
        api.train([str(p) for p in train], trained, run, resume=False)
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
