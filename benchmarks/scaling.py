"""How segment's cost grows with scene size: seconds per stage and peak RSS, 50k to 3M points.

Each size runs ``geopurify segment`` (purified, features saved) in its own process, so the peak RSS is
that run's alone. Synthetic rooms come from :mod:`geopurify.synthetic`; the student is a trained one
(``--student``) or, by default, a randomly initialised one of the default size (same cost).

    python benchmarks/scaling.py --sizes 50000 200000 1000000 3000000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
RESULTS = HERE / "results"


def make_student(path: Path, in_dim: int) -> Path:
    from geopurify.student import AffinityNet, StudentConfig, save

    if not path.is_file():
        save(AffinityNet(StudentConfig(in_dim=in_dim)), path)
    return path


def run_one(scene: Path, student: Path, out: Path, extra: list[str]) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "geopurify",
        "-q",
        "segment",
        str(scene),
        "--student",
        str(student),
        "--out",
        str(out),
        *extra,
    ]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if r.returncode != 0:
        raise SystemExit(f"segment failed on {scene}: {r.stderr.strip()}")
    run = json.loads((out / "run.json").read_text())
    # ru_maxrss of children is the max over all children so far: sizes run in increasing order
    return {"wall_s": wall, "peak_rss_mib": max(peak, before) / 1024, "run": run}


def generate_and_segment(scene: Path, make, out: Path, a) -> tuple[float, dict]:
    """Generate ``scene`` with ``make()`` unless an earlier run finished it (``run_ok``), then segment it
    with ``--student`` or a random student of its feature size: (generation seconds, :func:`run_one`)."""
    import numpy as np

    t0 = time.perf_counter()
    if not (scene / "run_ok").is_file():
        make()
        (scene / "run_ok").write_text("ok")
    gen = time.perf_counter() - t0
    dim = int(np.load(scene / "text_embeddings.npz")["embeddings"].shape[1])
    student = Path(a.student) if a.student else make_student(WORK / f"student_random_{dim}.safetensors", dim + 6)
    return gen, run_one(scene, student, out, a.extra)


def flat_main(a) -> None:
    """``--flat-rooms``: multi-room flats (geopurify.synthetic.flat), which keep growing past one room."""
    from geopurify.synthetic import SyntheticConfig
    from geopurify.synthetic.flat import make_flat

    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sorted(a.flat_rooms):
        name = f"flat{n}_00"
        cfg = dataclasses.replace(SyntheticConfig(), target_points=a.room_points, n_frames=a.frames)
        gen, res = generate_and_segment(WORK / name, partial(make_flat, WORK, name, rooms=n, config=cfg),
                                        WORK / f"out_flat{n}", a)  # fmt: skip
        c, s = res["run"]["counts"], res["run"]["seconds"]
        rows.append({"rooms": n, "points": c["points"], "voxels": c.get("voxels"), "frames": c.get("frames_used"),
                     "generate_s": round(gen, 1), "wall_s": round(res["wall_s"], 1),
                     "peak_rss_mib": round(res["peak_rss_mib"]), **{f"{k}_s": v for k, v in s.items()}})
        print(json.dumps(rows[-1]), flush=True)
    stages = ["read", "lift", "student", "knn", "pool", "classify", "write"]
    lines = ["| rooms | points | voxels | frames | " + " | ".join(f"{st} s" for st in stages)
             + " | total s | peak RSS MiB |", "|" + "---|" * (len(stages) + 6)]
    for r in rows:
        lines.append(f"| {r['rooms']} | {r['points']:,} | {r['voxels'] or 0:,} | {r['frames']} | "
                     + " | ".join(f"{r.get(st + '_s', 0):.2f}" for st in stages)
                     + f" | {r['wall_s']:.1f} | {r['peak_rss_mib']:,} |")
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        lines += ["", f"From {lo['voxels']:,} to {hi['voxels']:,} voxels ({hi['voxels'] / lo['voxels']:.2f}x): "
                      f"total time {hi['wall_s'] / lo['wall_s']:.2f}x, peak RSS {hi['peak_rss_mib']:,} MiB."]
    import os

    import torch

    meta = (f"`python benchmarks/scaling.py --flat-rooms {' '.join(map(str, sorted(a.flat_rooms)))} "
            f"--room-points {a.room_points}`: {platform.machine()}, torch {torch.__version__}, "
            f"{os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f} at the end; "
            f"date {time.strftime('%Y-%m-%d')}. "
            "Each size is one `geopurify segment` process (purified, features written, thread policy of "
            "geopurify.utils.device.configure_threads); wall seconds of the whole process.")
    (RESULTS / "scaling_flat.md").write_text(f"{meta}\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "scaling_flat.json").write_text(json.dumps(rows, indent=2))
    print(meta)
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000, 3_000_000])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--student", default=None)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more segment options")
    ap.add_argument("--flat-rooms", type=int, nargs="+", default=None,
                    help="multi-room flats of these room counts instead of single rooms of --sizes points")
    ap.add_argument("--room-points", type=int, default=300_000, help="points per room of a flat")
    a = ap.parse_args()
    if a.flat_rooms:
        RESULTS.mkdir(parents=True, exist_ok=True)
        flat_main(a)
        return

    from geopurify.synthetic import SyntheticConfig, make_scene

    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sorted(a.sizes):
        name = f"scale{n}_00"
        cfg = dataclasses.replace(SyntheticConfig(), target_points=n, n_frames=a.frames)
        gen, res = generate_and_segment(WORK / name, partial(make_scene, WORK, name, cfg), WORK / f"out_{n}", a)
        c, s = res["run"]["counts"], res["run"]["seconds"]
        rows.append(
            {
                "points": c["points"],
                "voxels": c.get("voxels"),
                "frames": c.get("frames_used"),
                "generate_s": round(gen, 1),
                "wall_s": round(res["wall_s"], 1),
                "peak_rss_mib": round(res["peak_rss_mib"]),
                **{f"{k}_s": v for k, v in s.items()},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    stages = ["read", "lift", "student", "knn", "pool", "classify", "write"]
    head = "| points | voxels | " + " | ".join(f"{st} s" for st in stages) + " | total s | peak RSS MiB |"
    lines = [head, "|" + "---|" * (len(stages) + 4)]
    for r in rows:
        lines.append(
            f"| {r['points']:,} | {r['voxels'] or 0:,} | "
            + " | ".join(f"{r.get(st + '_s', 0):.2f}" for st in stages)
            + f" | {r['wall_s']:.1f} | {r['peak_rss_mib']:,} |"
        )
    import torch

    table = "\n".join(lines)
    meta = (
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{platform.platform()}, torch {torch.__version__}; date {time.strftime('%Y-%m-%d')}"
    )
    (RESULTS / "scaling.md").write_text(f"{meta}\n\n{table}\n")
    (RESULTS / "scaling.json").write_text(json.dumps(rows, indent=2))
    print(meta)
    print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [r["points"] for r in rows]
    bottom = [0.0] * len(rows)
    for st in stages:
        vals = [r.get(st + "_s", 0) for r in rows]
        ax1.bar(range(len(rows)), vals, bottom=bottom, label=st)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_xticks(range(len(rows)), [f"{x / 1e6:.2g}M" if x >= 1e6 else f"{x // 1000}k" for x in xs])
    ax1.set_ylabel("seconds")
    ax1.set_title("segment time per stage")
    ax1.legend(fontsize=8)
    ax2.plot(xs, [r["peak_rss_mib"] / 1024 for r in rows], "o-")
    ax2.axhline(4, color="r", ls="--", label="4 GiB target")
    ax2.set_xscale("log")
    ax2.set_xlabel("points")
    ax2.set_ylabel("peak RSS (GiB)")
    ax2.set_title("peak memory")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "scaling.png", dpi=110)


if __name__ == "__main__":
    main()
