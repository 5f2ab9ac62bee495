"""Every command's options come from its stage's config dataclass (issue 15): each field is an option,
the defaults the CLI builds are the dataclass's own, and a bad value is refused (exit 3) before any work."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from geopurify.cli import build_config, build_parser, main
from geopurify.config import InspectConfig, SegmentConfig, TrainRunConfig, sections
from geopurify.encoders.encode import EncodeConfig
from geopurify.eval.config import EvalConfig, SelectConfig
from geopurify.instances.config import InstanceConfig
from geopurify.segment.config import QueryConfig
from geopurify.synthetic.config import SynthConfig
from geopurify.viz.config import RenderConfig, ViewConfig

# command -> (config class, the positionals it needs, options needed to build a valid config)
COMMANDS = {
    "segment": (SegmentConfig, ["s", "--out", "o"], ["--no-purify"]),
    "train": (TrainRunConfig, ["s", "--out", "o"], []),
    "inspect": (InspectConfig, ["s"], []),
    "encode": (EncodeConfig, ["s"], []),
    "instances": (InstanceConfig, ["o"], []),
    "eval": (EvalConfig, ["o", "--gt", "g"], []),
    "query": (QueryConfig, ["o", "chair"], []),
    "render": (RenderConfig, ["o"], []),
    "view": (ViewConfig, ["o"], []),
    "select": (SelectConfig, ["root"], []),
    "synth": (SynthConfig, ["o"], []),
}


def _leaves(cls: type, prefix: str = "") -> list[str]:
    subs = sections(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in subs:
            out += _leaves(subs[f.name], f"{prefix}{f.name}__")
        elif f.init and f.name != "before_fusion":  # a callable hook, not an option
            out.append(prefix + f.name)
    return out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_field_is_an_option_and_the_defaults_are_the_dataclass_own(command):
    cls, positionals, needed = COMMANDS[command]
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    dests = {a.dest.split("__", 1)[1] for a in sub._actions if a.dest.startswith(("cfg__", "cfgkv__"))}
    assert set(_leaves(cls)) <= dests, sorted(set(_leaves(cls)) - dests)
    a = parser.parse_args([command, *positionals, *needed])
    built = build_config(cls, a)
    want = cls(purify=False) if cls is SegmentConfig else cls()
    assert built == want


@pytest.mark.parametrize("argv, message", [
    (["eval", "missing_out", "--gt", "missing_scene", "--label-set", "bogus"], "unknown label set 'bogus'"),
    (["render", "missing_out", "--view", "top", "--label-set", "nyu4"], "unknown label set 'nyu4'"),
    (["query", "missing_out", "chair", "--top", "5", "--threshold", "0.3"], "exclude each other"),
    (["query", "missing_out", "chair", "--top", "0"], "--top must be >= 1"),
    (["select", "missing_root", "--n", "0"], "--n must be >= 1"),
    (["select", "missing_root", "--gamma", "nan"], "--gamma must be a finite number"),
    (["synth", "o", "--from-scan", "missing_scan", "--n", "2"], "drop --n and --points"),
    (["synth", "o", "--frames", "0"], "--frames must be >= 1"),
    (["view", "missing_out", "--port", "70000"], "--port must be in 1..65535"),
    (["inspect", "missing_scene", "-k", "0"], "k must be a positive integer"),
])
def test_a_bad_value_is_a_config_error_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing named in argv exists: reaching any work would be exit 2
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
