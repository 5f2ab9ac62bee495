"""benchmarks/gpu_check.sh --dry-run: the plan, the files it calls, its python parts on the CPU."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import geopurify

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils timeout")


def _env(tmp_path: Path) -> dict:
    src = str(Path(geopurify.__file__).resolve().parents[1])
    return dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, PYTHONPATH=src, OMP_NUM_THREADS="1")


def test_dry_run_checks_the_plan_and_runs_the_cpu_side(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "plan: 1 venv" in proc.stdout and "cuda-marked tests collected: 4" in proc.stdout
    report = (tmp_path / "gpu_check_report.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in report.splitlines()
            if line.startswith("| ") and not line.startswith("| step") and not line.startswith("| device")}
    assert rows["files"] == "ok" and rows["venv"] == "skipped" and rows["tests"] == "ok" and rows["timing"] == "ok"
    timing = json.loads((tmp_path / "gpu_timing.json").read_text())
    cpu = timing["devices"]["cpu"]
    # train_step_s is a difference of two timings: at --tiny, machine load can make it <= 0, so only finite
    assert cpu["segment_s"] > 0 and math.isfinite(cpu["train_step_s"]) and timing["voxels"] > 100
    assert "| cpu |" in report
    # the cuda tests were collected, not run: nothing in the log says they passed or were skipped
    log = (tmp_path / "gpu_check.log").read_text()
    assert "tests/gpu/test_cuda.py::test_sparse_conv_forward_and_backward_match_cpu" in log
    assert "tests/pooling/test_pool.py::test_gpu_matches_cpu" in log


def test_bad_argument_is_exit_3(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--bogus"], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 3 and "unknown argument --bogus" in proc.stderr
