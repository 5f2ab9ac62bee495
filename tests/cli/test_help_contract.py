"""The CLI explains itself (issue #14): every subcommand has an example, every option has help text and
shows its default, --version answers, --layout lists the layouts, and help agrees with the README."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import geopurify
from geopurify.cli import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_each_subcommand_has_an_example_and_every_option_has_help(name, capsys):
    sp = _subparsers()[name]
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"geopurify {name}" in out.split("example:", 1)[1], name
    for action in sp._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings or action.dest)


def test_defaults_are_shown(capsys):
    from geopurify.pooling.config import PoolConfig

    assert main(["segment", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"(default: {PoolConfig().k})" in out and f"(default: {PoolConfig().steps})" in out


def test_train_options_get_their_own_help(capsys):
    """The TrainConfig docstring had "lr, weight_decay: AdamW. warmup: ..." on one line: --lr's help
    described the warm-up, --warmup's was the bare word "warmup" and --scenes-per-step's "scenes per step"
    while --steps carried its "(0 = all of them)"."""
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())

    def help_of(flag):
        return out.split(f"{flag} {flag.lstrip('-').replace('-', '_').upper()} ", 1)[1].split(" --", 1)[0]

    assert "warm-up" not in help_of("--lr") and "learning rate" in help_of("--lr")
    assert "warm-up" in help_of("--warmup")
    assert "0 = all" not in help_of("--steps") and "0 = all" in help_of("--scenes-per-step")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert geopurify.__version__ in capsys.readouterr().out


def test_layout_lists_the_layouts(capsys):
    from geopurify.io.registry import READERS

    assert main(["segment", "--help"]) == 0
    out = capsys.readouterr().out
    for name in READERS.names():
        assert name in out, name


def test_error_prefix_is_not_doubled(capsys):
    assert main(["segment", "x", "--out", "o", "--no-purify", "--k", "notanint"]) == 3
    err = capsys.readouterr().err
    assert "geopurify: error: geopurify" not in err and err.startswith("geopurify: error: ")


def test_help_and_readme_agree_on_tum_cameras():
    from geopurify.io import rgbd

    text = README.read_text()
    cams = [c for c in rgbd.TUM_INTRINSICS if c.startswith("freiburg")]
    assert len(cams) == 3
    for cam in cams:
        assert cam in text, cam


def test_demo_help_names_the_training_steps_it_uses(capsys):
    """`demo --help` said '--steps (default: None)'; it trains train's default number of steps."""
    from geopurify.cli import main
    from geopurify.distill.config import TrainConfig

    assert main(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {TrainConfig.steps})" in text and "(default: None)" not in text
