"""Start-up cost: ``import geopurify`` and every ``--help`` must not import torch or scipy.

torch alone costs about a second of start-up, so the heavy modules load only when a command needs
them (the stage modules import them; the CLI and the config dataclasses do not). Each check runs in
a fresh interpreter and reads ``sys.modules`` there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("torch", "scipy")

_PROBE = r"""
import json, runpy, sys
argv, heavy_names = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
if argv is None:
    import geopurify  # noqa: F401
else:
    sys.argv = ["geopurify", *argv]
    try:
        runpy.run_module("geopurify", run_name="__main__")
    except SystemExit:
        pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & heavy_names)
sys.stderr.write("LOADED " + json.dumps(heavy) + "\n")
"""


def _loaded(argv: list[str] | None) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("LOADED ")]
    assert line, f"probe failed (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(line[-1][len("LOADED "):])


def _subcommands() -> list[str]:
    sys.path.insert(0, str(SRC))
    from geopurify.cli import build_parser

    parser = build_parser()
    for action in parser._actions:  # the subparsers action holds every command by name
        if getattr(action, "choices", None) and isinstance(action.choices, dict):
            return sorted(action.choices)
    return []


def test_import_geopurify_loads_no_torch_or_scipy():
    assert _loaded(None) == []


def test_help_loads_no_torch_or_scipy():
    assert _loaded(["--help"]) == []


@pytest.mark.parametrize("command", _subcommands())
def test_subcommand_help_loads_no_torch_or_scipy(command):
    assert _loaded([command, "--help"]) == []
