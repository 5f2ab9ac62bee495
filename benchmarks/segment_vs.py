"""Whole ``geopurify segment`` process: this tree against another (e.g. an older commit's checkout).

The two run in turn (A B A B ...), each a fresh process, after one warm-up each; wall and CPU seconds
come from the OS accounting of each finished child (``resource.getrusage``), and the ratio is taken
pair by pair, so drifting machine load hits both alike.

    git worktree add /tmp/c723067 c723067
    # SCENE: any scene folder (e.g. geopurify synth); S: a student whose input size matches its features
    python benchmarks/segment_vs.py SCENE --student S --vs /tmp/c723067/src --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def run_once(src: str, scene: str, student: str, out: str) -> tuple[float, float]:
    """(wall s, user + sys s) of one segment process with PYTHONPATH=src."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "geopurify", "-q", "segment", scene, "--student", student, "--out", out],
                   env={**os.environ, "PYTHONPATH": src}, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene")
    ap.add_argument("--student", required=True)
    ap.add_argument("--vs", required=True, help="PYTHONPATH of the other tree")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "segment_vs.md")
    a = ap.parse_args()
    here = str(HERE.parent / "src")
    load0 = os.getloadavg()[0]
    res: dict[str, list[tuple[float, float]]] = {"this": [], "vs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs + 1):
            for key, src in (("this", here), ("vs", a.vs)):
                r = run_once(src, a.scene, a.student, f"{tmp}/{key}")
                if i:  # the first pair warms caches
                    res[key].append(r)
    wall = [v[0] / t[0] for t, v in zip(res["this"], res["vs"])]
    cpu = [v[1] / t[1] for t, v in zip(res["this"], res["vs"])]
    med = {k: (np.median([r[0] for r in v]), np.median([r[1] for r in v])) for k, v in res.items()}
    lines = [f"# Whole `geopurify segment` process: this tree vs `{a.vs}`", "",
             "| tree | wall s (median) | CPU s (median) |", "| --- | --- | --- |",
             f"| this tree | {med['this'][0]:.1f} | {med['this'][1]:.1f} |",
             f"| `{a.vs}` | {med['vs'][0]:.1f} | {med['vs'][1]:.1f} |",
             f"| speed-up, paired (median, min-max) | {np.median(wall):.2f}x ({min(wall):.2f}-{max(wall):.2f}) "
             f"| {np.median(cpu):.2f}x ({min(cpu):.2f}-{max(cpu):.2f}) |", "",
             f"Scene `{a.scene}`, {a.runs} pairs after one warm-up pair; OMP_NUM_THREADS="
             f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; 1-min load average {load0:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs."]
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)


if __name__ == "__main__":
    main()
