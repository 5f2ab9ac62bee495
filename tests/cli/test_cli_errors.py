import subprocess
import sys

import pytest

from geopurify.cli import build_parser, main

COMMANDS = ["train", "segment", "eval", "query", "render", "view", "select", "synth", "demo"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_subcommand_has_help(cmd, capsys):
    assert main([cmd, "--help"]) == 0
    assert "usage: geopurify " + cmd in capsys.readouterr().out


def test_bad_arguments_exit_3_with_one_line(capsys):
    assert main(["segment", "x", "--out", "o", "--no-purify", "--k", "notanint"]) == 3
    err = capsys.readouterr().err.strip()
    assert err == "geopurify: error: segment: argument -k/--k: invalid int value: 'notanint'"
    assert main(["frobnicate"]) == 3
    assert main([]) == 3


def test_segment_needs_student_or_no_purify(tmp_path, capsys):
    assert main(["segment", str(tmp_path), "--out", str(tmp_path / "o")]) == 3
    assert "--student" in capsys.readouterr().err


def test_missing_scene_exit_2_no_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "geopurify", "segment", str(tmp_path / "missing"), "--no-purify", "--out",
         str(tmp_path / "o")], capture_output=True, text=True,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{tmp_path / 'missing'}: no such file or folder" in r.stderr
    assert not (tmp_path / "o").exists()


def test_debug_shows_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "geopurify", "--debug", "segment", str(tmp_path / "missing"), "--no-purify",
         "--out", str(tmp_path / "o")], capture_output=True, text=True,
    )
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_parser_defaults_follow_the_paper():
    from geopurify.cli import build_config
    from geopurify.config import SegmentConfig

    a = build_parser().parse_args(["segment", "s", "--out", "o", "--student", "st"])
    c = build_config(SegmentConfig, a)
    assert (c.voxel_size, c.pool.k, c.pool.sharpen, c.pool.steps, c.lift.fusion, c.lift.top_views) == \
        (0.02, 96, 20.0, 18, "consensus", 3)
    a = build_parser().parse_args(["segment", "s", "--out", "o", "--student", "st", "-k", "8", "-T", "2"])
    assert (build_config(SegmentConfig, a).pool.k, build_config(SegmentConfig, a).pool.steps) == (8, 2)


def test_unknown_encoder_or_teacher_option_is_a_config_error(tmp_path, capsys):
    from _fixtures import write_tiny_scannet

    d = write_tiny_scannet(tmp_path)
    assert main(["segment", str(d), "--no-purify", "--encoder", "precomputed", "--encoder-opt", "bogus=1",
                 "--out", str(tmp_path / "o")]) == 3
    assert "encoder 'precomputed' has no option bogus" in capsys.readouterr().err
    assert main(["train", str(d), "--out", str(tmp_path / "s"), "--teacher-opt", "varient=superpoint"]) == 3
    err = capsys.readouterr().err
    assert "teacher 'geometric' has no option varient" in err and "variant" in err
