"""An out-of-memory error gets one line whose advice names only options of the command that ran."""

from __future__ import annotations

import re

import pytest

from geopurify import cli


@pytest.mark.parametrize("command", ["segment", "train"])
def test_out_of_memory_hint_names_only_the_commands_own_options(command, monkeypatch, capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    own = {o for act in sub._actions for o in act.option_strings}

    def boom(a):
        raise MemoryError

    real_parse = parser.parse_args

    def parse(argv):
        ns = real_parse(argv)
        ns._command = type("C", (), {"run": staticmethod(boom), "name": command})
        return ns

    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", parse)
    assert cli.main([command, "x", "--out", "y"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory" in err[0]
    named = set(re.findall(r"--[a-z][a-z-]*", err[0]))
    assert named, err[0]
    assert named <= own, f"{command}: the hint names {sorted(named - own)}, which {command} does not have"
