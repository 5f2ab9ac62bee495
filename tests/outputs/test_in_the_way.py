"""Output paths that something is in the way of: one line naming it and exit 3, never an internal error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from geopurify.cli import main
from geopurify.errors import ConfigError
from geopurify.utils.atomic import atomic_open, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from viz_fixtures import make_output  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def test_atomic_write_onto_a_folder_or_under_a_file_is_one_config_error(tmp_path):
    (tmp_path / "a.json").mkdir()
    with pytest.raises(ConfigError, match=r"a\.json: a folder is in the way"):
        write_json(tmp_path / "a.json", {"v": 1})
    (tmp_path / "sub").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"sub: exists and is not a folder, so .*sub/deeper/b\.txt cannot"):
        with atomic_open(tmp_path / "sub" / "deeper" / "b.txt") as f:
            f.write("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "sub"]  # no temporary file left
    assert not list((tmp_path / "a.json").iterdir())


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geopurify: error: "), err
    assert "internal error" not in err and "Traceback" not in err
    return lines[0]


def test_render_onto_a_folder_exits_3_naming_it(tmp_path, capsys):
    out = make_output(tmp_path / "out", n_floor=300, n_chair=100)
    (out / "render_persp.png").mkdir()
    assert main(["-q", "render", str(out)]) == 3
    line = _one_line(capsys.readouterr().err)
    assert "render_persp.png: a folder is in the way" in line
    assert not list(out.glob(".*.tmp"))


def test_query_when_the_query_folder_is_a_file_exits_3_naming_it(tmp_path, capsys):
    out = make_output(tmp_path / "out", n_floor=300, n_chair=100)
    (out / "query").write_text("a file where query/ goes")
    assert main(["-q", "query", str(out), "chair"]) == 3
    line = _one_line(capsys.readouterr().err)
    assert f"{out / 'query'}: exists and is not a folder" in line
    (out / "query").unlink()
    (out / "query" / "chair.ply").mkdir(parents=True)  # a folder where one of the phrase's files goes
    assert main(["-q", "query", str(out), "chair"]) == 3
    assert "chair.ply: a folder is in the way" in _one_line(capsys.readouterr().err)


def _unprivileged(cmd: list[str], probe: Path) -> list[str]:
    """``cmd`` run so that folder permissions apply: as it is for a user, and for root without the
    capability to override them (setpriv); skipped where neither makes ``probe`` unwritable."""
    import shutil
    import subprocess

    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: folder permissions do not apply")
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    if subprocess.run([*prefix, "touch", str(probe / "probe")], capture_output=True).returncode == 0:
        pytest.skip("setpriv could not drop root's permission override here")
    return [*prefix, *cmd]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("command", [["render"], ["query", "chair"], ["query-subfolder", "chair"]])
def test_a_read_only_output_folder_is_one_line_exit_3(tmp_path, command):
    import subprocess

    out = make_output(tmp_path / "out", n_floor=300, n_chair=100)
    locked_dir = out
    if command[0] == "query-subfolder":  # the folder is writable, its query/ is not
        command = ["query", *command[1:]]
        locked_dir = out / "query"
        locked_dir.mkdir()
    before = sorted(p.name for p in locked_dir.iterdir())
    locked_dir.chmod(0o555)
    try:
        cmd = _unprivileged([sys.executable, "-m", "geopurify", "-q", command[0], str(out), *command[1:]], locked_dir)
        env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    finally:
        locked_dir.chmod(0o755)
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert "cannot write there (permission denied)" in line and str(locked_dir) in line
    assert sorted(p.name for p in locked_dir.iterdir()) == before
