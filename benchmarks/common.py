"""Shared helpers for the benchmarks: isolated worker runs, peak memory, markdown tables."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from geopurify.utils.memory import available_bytes, peak_rss_bytes

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return peak_rss_bytes() / 2**20


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (from ``/proc/self/status``; 0 if unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def mem_available_gb() -> float:
    """``MemAvailable`` of the machine in GiB (inf when unknown)."""
    have = available_bytes()
    return float("inf") if have is None else have / 2**30


def run_worker(args: Sequence[str], timeout: float | None = None) -> dict:
    """Run ``python <args>`` in a fresh process; return the JSON object it prints on its last line.

    A fresh process per measurement keeps each ``ru_maxrss`` peak separate from the others.
    """
    cmd = [sys.executable, *args]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"worker {' '.join(args)} printed no JSON result:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
