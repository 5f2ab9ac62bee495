"""Output paths that something is in the way of: one line naming it and exit 3, never an internal error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from geopurify.cli import main
from geopurify.errors import ConfigError
from geopurify.utils.atomic import atomic_open, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from viz_fixtures import make_output  # noqa: E402


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
