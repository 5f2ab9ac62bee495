"""Fuzz over the CLI's options (issue 13): any mix of option values gives exit 0, 2 or 3 with at most
one line on stderr, never exit 1 (a bug) or a traceback. The API is stubbed: this checks parsing and
the config validation that runs before any work."""

from __future__ import annotations

import argparse

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from geopurify.cli import build_parser, main  # noqa: E402


def _options(command: str) -> list[argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [a for a in sub._actions if a.option_strings and a.dest not in ("help", "config", "scenes")]


SEGMENT_OPTIONS = _options("segment")
VALUES = st.one_of(
    st.integers(-3, 200).map(str),
    st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e309", "", "4X", "4G", "0.5", "cuda", "cpu", "auto", "a=1",
                     "bogus", "=", "k=", "mean", "kdtree"]),
    st.text(alphabet="abcxyz019.=-_ ", max_size=6),
)


@st.composite
def argv(draw):
    out = []
    for action in draw(st.lists(st.sampled_from(SEGMENT_OPTIONS), max_size=5)):
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            out.append(flag)
        elif action.nargs == "+":
            out += [flag, *draw(st.lists(VALUES, min_size=1, max_size=3))]
        else:
            out += [flag, draw(VALUES)]
    return out


@pytest.fixture(scope="module")
def stub_api():
    """api.segment replaced by a stub that records the validated config."""
    from geopurify import api

    seen = []
    real = api.segment

    def fake(scene, out, cfg):
        from pathlib import Path

        import numpy as np

        Path(out).mkdir(parents=True, exist_ok=True)
        seen.append(cfg)
        return api.SegmentResult(Path(out), np.zeros(1, np.int64), ["a"], {})

    api.segment = fake
    yield seen
    api.segment = real


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=argv())
def test_segment_options_never_crash(args, stub_api, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("o") / "out"
    rc = main(["-q", "segment", "scene", "--out", str(out), *args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("geopurify:")]
    assert rc in (0, 2, 3), (args, err)
    assert "internal error" not in err and "Traceback" not in err, (args, err)
    assert rc == 0 or len(lines) == 1, (args, err)
