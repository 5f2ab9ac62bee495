"""``make demo``: synthetic rooms -> train a student -> segment raw and purified -> score -> pictures."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .config import SegmentConfig, TrainRunConfig
from .distill import TrainConfig
from .utils.atomic import write_json

if TYPE_CHECKING:
    from .synthetic import SyntheticConfig

log = logging.getLogger(__name__)


def run_demo(out: str | Path, steps: int | None = None, n_train: int = 2, seed: int = 0,
             scene_config: SyntheticConfig | None = None) -> dict:
    """Run the whole pipeline on synthetic rooms and return (and write) the scores.

    Writes ``OUT/scenes/`` (data), ``OUT/student/``, ``OUT/raw/`` and ``OUT/purified/`` (segment outputs,
    with ``labels.ply`` and ``render_*.png``), and ``OUT/summary.json``. ``scene_config`` (a
    :class:`~geopurify.synthetic.SyntheticConfig`) changes the rooms, e.g. smaller ones for a quick run.
    """
    from . import api
    from .outputs import check_out_path
    from .synthetic import SyntheticConfig, make_scene

    # the cheap refusals first: a bad --steps (0 too: it used to mean the default) or --out, before any room
    train_cfg = TrainRunConfig(train=TrainConfig(**({"steps": steps} if steps is not None else {})))
    out = check_out_path(out)
    t0 = time.perf_counter()
    base = scene_config or SyntheticConfig()
    scenes = []
    for i in range(n_train + 1):
        name = f"synth{seed + i:04d}_00"
        path = out / "scenes" / name
        if not (path / f"{name}_vh_clean_2.ply").is_file():
            log.info("generating synthetic room %s", name)
            make_scene(out / "scenes", name, dataclasses.replace(base, seed=seed + i))
        scenes.append(path)
    train_scenes, test_scene = scenes[:n_train], scenes[n_train]

    log.info("training the student on %d scenes", len(train_scenes))
    api.train([str(s) for s in train_scenes], out / "student", train_cfg)

    log.info("segmenting %s without and with purification", test_scene.name)
    api.segment(test_scene, out / "raw", SegmentConfig(purify=False))
    api.segment(test_scene, out / "purified", SegmentConfig(student=str(out / "student")))
    raw = api.evaluate(out / "raw", test_scene, json_path=out / "raw" / "eval.json")
    pur = api.evaluate(out / "purified", test_scene, json_path=out / "purified" / "eval.json")
    pictures = api.render(out / "purified", gt=test_scene)
    summary = {
        "scene": test_scene.name,
        "protocol": "paper (19 ScanNet classes, otherfurniture ignored)",
        "raw_miou": raw.scores.miou,
        "purified_miou": pur.scores.miou,
        "raw_macc": raw.scores.macc,
        "purified_macc": pur.scores.macc,
        "seconds": round(time.perf_counter() - t0, 1),
        "pictures": [str(p) for p in pictures],
        "ply": str(out / "purified" / "labels.ply"),
    }
    write_json(out / "summary.json", summary)
    print(
        f"\n{test_scene.name}: raw fusion mIoU {100 * raw.scores.miou:.1f}  ->  "
        f"GeoPurify mIoU {100 * pur.scores.miou:.1f}   (mAcc {100 * raw.scores.macc:.1f} -> "
        f"{100 * pur.scores.macc:.1f})\n"
        f"coloured PLY: {summary['ply']}\npictures: {', '.join(summary['pictures'])}\n"
        f"total {summary['seconds']} s"
    )
    return summary
