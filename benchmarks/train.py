"""Distillation speed: seconds per training step and to build the contrastive table, this tree vs another.

A step = drawing a sample from the precomputed :class:`ContrastiveTable` (what training does for
rooms of this size) + forward + InfoNCE + backward + AdamW update, at the default settings (4096
anchors, 48 macro + 16 micro negatives; the default StudentConfig: width 64, 4 residual blocks = 8
submanifold convolutions). The table is the per-voxel positives and negatives of the teacher. The
room: the synthetic box room of ``--voxels`` voxels (2 cm) with random inputs and teacher features
(same cost as real ones).

With ``--vs SRC`` every measurement also runs with ``PYTHONPATH=SRC`` (e.g. a checkout of an older
commit), the two in turn in fresh processes, and the ratio is taken round by round.

    python benchmarks/train.py --vs /tmp/c723067/src      # writes benchmarks/results/train.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def synthetic_room(target_voxels: int, voxel: float = 0.02, seed: int = 0):
    """A box room whose surface has about ``target_voxels`` voxels: (coords, centers, inputs, teacher)."""
    from geopurify.geometry import voxelize

    rng = np.random.default_rng(seed)
    side = np.sqrt(target_voxels * voxel**2 / 3.0)
    g = np.arange(0, side, voxel) + voxel / 2
    gh = np.arange(0, side / 2, voxel) + voxel / 2
    a, b = np.meshgrid(g, g, indexing="ij")
    floor = np.stack([a.ravel(), b.ravel(), np.zeros(a.size)], 1)
    a, c = np.meshgrid(g, gh, indexing="ij")
    walls = [np.stack([a.ravel(), np.full(a.size, y), c.ravel()], 1) for y in (0.0, side)]
    walls += [np.stack([np.full(a.size, x), a.ravel(), c.ravel()], 1) for x in (0.0, side)]
    grid = voxelize(np.concatenate([floor, *walls]).astype(np.float32), voxel)
    v = grid.num_voxels
    return grid.coords, grid.centers, rng.standard_normal((v, 38)).astype(np.float32), \
        rng.standard_normal((v, 16)).astype(np.float32)


def worker(voxels: int, steps: int, threads: int | None) -> dict:
    import torch

    from geopurify.distill import ContrastiveTable, TrainConfig
    from geopurify.distill.sampler import info_nce
    from geopurify.student import AffinityNet, StudentConfig, build_kernel_map

    if threads:
        torch.set_num_threads(threads)
    coords, centers, inputs, teacher = synthetic_room(voxels)
    import scipy.spatial  # noqa: F401  (first use imports it; time the table, not the import)

    cfg = TrainConfig()
    t0, c0 = time.perf_counter(), time.process_time()
    table = ContrastiveTable.build(torch.from_numpy(teacher), centers, cfg.macro_negatives, cfg.micro_negatives,
                                   cfg.micro_pool)
    t_table, c_table = time.perf_counter() - t0, time.process_time() - c0
    torch.manual_seed(0)
    model = AffinityNet(StudentConfig(in_dim=inputs.shape[1]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    c, x = torch.from_numpy(coords.astype(np.int64)), torch.from_numpy(inputs)
    kmap = build_kernel_map(c)
    times, cpu = [], []
    for r in range(steps + 1):  # the first step warms up
        t0, c0 = time.perf_counter(), time.process_time()
        s = table.sample(cfg.anchors, torch.Generator().manual_seed(r))
        loss = info_nce(model(c, x, kmap), s, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if r:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return {"voxels": len(coords), "table_s": t_table, "step_s": float(np.median(times)),
            "table_cpu_s": c_table, "step_cpu_s": float(np.median(cpu)),
            "threads": torch.get_num_threads(), "loss": float(loss.detach())}


def run(src: str, args) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    cmd = [sys.executable, __file__, "--worker", "--voxels", str(args.voxels), "--steps", str(args.steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxels", type=int, default=50_000)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per process (median)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--vs", default=None, help="PYTHONPATH of the tree to compare with")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train.md")
    ap.add_argument("--worker", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.voxels, args.steps, args.threads)))
        return
    here = str(HERE.parent / "src")
    load0 = os.getloadavg()[0]
    rows = {"this": [], "vs": []}
    for _ in range(args.rounds):
        rows["this"].append(run(here, args))
        if args.vs:
            rows["vs"].append(run(args.vs, args))
        print(json.dumps({k: v[-1] for k, v in rows.items() if v}), flush=True)
    fields = ("table_s", "step_s", "table_cpu_s", "step_cpu_s")
    med = {k: {f: float(np.median([r[f] for r in v])) for f in fields} for k, v in rows.items() if v}

    def cells(m: dict) -> str:
        return " | ".join(f"{m[f]:.2f}" if f.startswith("table") else f"{m[f]:.3f}" for f in fields)

    lines = [f"# Distillation speed ({rows['this'][0]['voxels']:,} voxels, default TrainConfig)", "",
             "| tree | table wall s | step wall s | table CPU s | step CPU s |", "| --- | --- | --- | --- | --- |",
             f"| this tree | {cells(med['this'])} |"]
    if args.vs:
        lines.append(f"| `{args.vs}` | {cells(med['vs'])} |")
        ratios = []
        for f in fields:
            r = [b[f] / a[f] for a, b in zip(rows["this"], rows["vs"])]
            ratios.append(f"{np.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})")
        lines.append(f"| speed-up (median, min-max of {args.rounds} paired rounds) | {' | '.join(ratios)} |")
    lines += ["", f"Seconds: median over {args.rounds} rounds (each a fresh process per tree, the trees in turn); "
              f"a step is the median of {args.steps} steps after one warm-up; CPU s = the process's CPU time "
              f"(the table's KD-tree query uses every core in both trees). torch threads "
              f"{rows['this'][0]['threads']}; 1-min load average {load0:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end, on "
              f"{os.cpu_count()} CPUs (shared machine: quote the ratios)."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
