"""Bad values and files found by a bug hunt over every command: one line, the right exit code, no work."""

from __future__ import annotations

import pytest

from geopurify.cli import main


def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.startswith("geopurify:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv, message", [
    (["segment", "{scene}", "--no-purify", "--voxel-size", "inf"], "voxel_size must be a finite number"),
    (["inspect", "{scene}", "--voxel-size", "inf"], "voxel_size must be a finite number"),
    (["segment", "{scene}", "--no-purify", "--memory-mb", "inf"], "memory_mb must be a finite number"),
    (["segment", "{scene}", "--no-purify", "--depth-tolerance", "inf"], "depth_tolerance must be a finite number"),
    (["train", "{scene}", "--lr", "inf"], "lr must be a finite number"),
    (["train", "{scene}", "--voxel-size", "-1"], "voxel_size must be a finite number"),
    (["train", "{scene}", "--weight-decay", "nan"], "weight_decay must be a finite number"),
])
def test_infinite_or_negative_values_are_config_errors_before_reading(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    argv = [a.replace("{scene}", str(tmp_path / "missing")) for a in argv] + (
        [] if argv[0] == "inspect" else ["--out", str(out)])
    assert main(argv) == 3
    assert message in err_line(capsys)
    assert not out.exists()
