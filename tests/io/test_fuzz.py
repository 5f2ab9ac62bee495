"""Fuzzing (hypothesis): the PLY and .npz readers and the CLI parser raise only the project's errors."""

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geopurify.cli import build_parser
from geopurify.errors import GeoPurifyError
from geopurify.io.ply import read_ply

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_ply() -> bytes:
    from plyfile import PlyData, PlyElement

    v = np.zeros(5, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    f = np.zeros(2, dtype=[("vertex_indices", "i4", (3,))])
    f["vertex_indices"] = [[0, 1, 2], [2, 3, 4]]
    buf = io.BytesIO()
    PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")]).write(buf)
    return buf.getvalue()


VALID = _valid_ply()


@FUZZ
@given(data=st.data())
def test_ply_reader_mutations(tmp_path, data):
    kind = data.draw(st.sampled_from(["random", "truncate", "flip", "header"]))
    if kind == "random":
        blob = data.draw(st.binary(max_size=400))
    elif kind == "truncate":
        blob = VALID[: data.draw(st.integers(0, len(VALID)))]
    elif kind == "flip":
        pos = data.draw(st.lists(st.integers(0, len(VALID) - 1), min_size=1, max_size=8))
        b = bytearray(VALID)
        for p in pos:
            b[p] = data.draw(st.integers(0, 255))
        blob = bytes(b)
    else:
        header = data.draw(st.text(alphabet="plyformatascielmnvrxyzfoud 0123456789\n", max_size=200))
        blob = ("ply\n" + header + "\nend_header\n").encode() + data.draw(st.binary(max_size=100))
    p = tmp_path / "f.ply"
    p.write_bytes(blob)
    try:
        out = read_ply(p)
    except GeoPurifyError:
        return
    assert np.isfinite(out.points).all() and len(out.points) > 0
    if out.faces is not None and len(out.faces):
        assert out.faces.min() >= 0 and out.faces.max() < len(out.points)


@FUZZ
@given(data=st.data())
def test_text_embedding_npz_reader(tmp_path, data):
    from geopurify.encoders import load_text_embeddings

    p = tmp_path / "t.npz"
    if data.draw(st.booleans()):
        p.write_bytes(data.draw(st.binary(max_size=300)))
    else:
        arrays = {}
        for key in data.draw(st.lists(st.sampled_from(["names", "embeddings", "other"]), max_size=3, unique=True)):
            shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
            dtype = data.draw(st.sampled_from([np.float32, np.int64, np.float16, "U5"]))
            arrays[key] = np.zeros(shape, dtype=dtype) if dtype != "U5" else np.full(shape, "ab", dtype=dtype)
            if dtype == np.float32 and data.draw(st.booleans()):
                arrays[key] = arrays[key] + np.nan
        np.savez(p, **arrays)
    try:
        te = load_text_embeddings(p)
    except GeoPurifyError:
        return
    assert te.embeddings.ndim == 2 and len(te.names) == te.embeddings.shape[0] > 0
    assert np.isfinite(te.embeddings).all()


@FUZZ
@given(argv=st.lists(st.sampled_from(
    ["segment", "train", "eval", "query", "--out", "o", "--k", "-1", "x", "--steps", "abc", "--fusion", "mean",
     "--fusion", "bogus", "--no-purify", "--student", "--gt", "--top", "3", "--threshold", "0.5", "--encoder-opt",
     "a=b", "--text", "--frame-skip", "0", "--classes", "chair", "--view", "side", "\x00", "--port", "99999"]),
    max_size=10))
def test_cli_parser_raises_only_config_errors(argv):
    try:
        build_parser().parse_args(argv)
    except GeoPurifyError as exc:
        assert exc.exit_code == 3
    except SystemExit as exc:  # only --help exits
        assert exc.code == 0
