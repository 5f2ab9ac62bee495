"""`encode` refuses a missing --weights or an unknown encoder option before it reads the scene: reading
a capture without a mesh fuses a cloud from its depth first, which takes seconds to minutes."""

from __future__ import annotations

import pytest

from geopurify import api
from geopurify.cli import main


@pytest.fixture
def reads(monkeypatch):
    calls = []

    def read_scene(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the scene was read before the encoder's cheap checks")

    monkeypatch.setattr(api, "read_scene", read_scene)
    return calls


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--encoder", "clip"], "needs local weights"),
        (["--encoder", "clip", "--weights", "/nonexistent/clip"], "does not exist"),
        (["--encoder", "lseg"], "LSeg checkpoint"),
        (["--encoder", "xdecoder"], "X-Decoder"),
        (["--encoder", "lseg", "--encoder-opt", "wieghts=x.ckpt"], "has no option wieghts"),
        (["--encoder", "nosuch"], "unknown encoder 'nosuch'"),
    ],
)
def test_encode_refuses_before_reading_the_scene(args, said, reads, tmp_path, capsys):
    assert main(["encode", str(tmp_path), *args]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert reads == []
