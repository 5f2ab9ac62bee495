"""AffinityNet shapes, invariances and the safetensors / torch checkpoint round trips."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

import geopurify
from geopurify.errors import ConfigError, InputError
from geopurify.student import AffinityNet, StudentConfig, build_kernel_map, load, save, student_inputs


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return AffinityNet(StudentConfig(in_dim=7, width=8, out_dim=5, blocks=2, **kw))


def _data(v=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, 6, (v, 3), generator=g), dim=0)
    feats = torch.randn(coords.shape[0], 7, generator=g)
    return coords, feats


def test_forward_unit_rows_and_permutation_equivariance():
    model = _model().eval()
    coords, feats = _data()
    out = model(coords, feats)
    assert out.shape == (coords.shape[0], 5)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(out.shape[0]))
    perm = torch.randperm(coords.shape[0])
    torch.testing.assert_close(model(coords[perm], feats[perm]), out[perm], rtol=1e-5, atol=1e-5)
    # a passed kernel map gives the same result as building one
    torch.testing.assert_close(model(coords, feats, build_kernel_map(coords)), out)


def test_forward_rejects_wrong_width():
    coords, feats = _data()
    with pytest.raises(ValueError, match=r"\(V, 7\)"):
        _model()(coords, feats[:, :3])


def test_student_inputs_layout():
    lifted = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    colors = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]], np.float32)
    normals = np.array([[0, 0, 1], [1, 0, 0]], np.float32)
    x = student_inputs(lifted, colors, normals)
    assert x.dtype == np.float32 and x.shape == (2, 8)
    np.testing.assert_allclose(x[0], [0.6, 0.8, 1.0, 0.0, -1.0, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(x[1, :2], [0, 0])
    with pytest.raises(ValueError, match="shapes"):
        student_inputs(lifted, colors[:1], normals)


def test_safetensors_round_trip_file_and_folder(tmp_path):
    model = _model(seed=3).eval()
    coords, feats = _data()
    path = save(model, tmp_path / "m.safetensors")
    assert path.is_file()
    back = load(path)
    assert back.config == model.config
    torch.testing.assert_close(back(coords, feats), model(coords, feats))
    save(model, tmp_path / "run")
    assert (tmp_path / "run" / "student.safetensors").is_file()
    back2 = geopurify.load(tmp_path / "run")
    torch.testing.assert_close(back2(coords, feats), model(coords, feats))


def test_truncated_and_mismatched_files_rejected(tmp_path):
    path = save(_model(), tmp_path / "m.safetensors")
    data = path.read_bytes()
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.safetensors"):
        load(bad)
    # weights of one architecture, config of another
    from safetensors.torch import save_file

    other = AffinityNet(StudentConfig(in_dim=7, width=4, out_dim=5, blocks=2))
    meta = {"geopurify_student": _model().config.to_json()}
    mism = tmp_path / "mismatch.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(mism), metadata=meta)
    with pytest.raises(InputError, match="mismatch.safetensors.*do not match"):
        load(mism)
    nometa = tmp_path / "nometa.safetensors"
    save_file({"a": torch.zeros(1)}, str(nometa))
    with pytest.raises(InputError, match="nometa.safetensors"):
        load(nometa)
    with pytest.raises(InputError, match="no student checkpoint"):
        load(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="student.safetensors"):
        load(tmp_path)  # folder without the file
    text = tmp_path / "notes.pt"  # not a zip nor a pickle: torch raised KeyError, an internal error here
    text.write_text("hello this is text\n")
    with pytest.raises(InputError, match="notes.pt: not a readable torch file"):
        load(text)


def test_torch_file_with_config_loads(tmp_path):
    model = _model(seed=4).eval()
    p = tmp_path / "foreign.pt"
    torch.save({"config": {"in_dim": 7, "width": 8, "out_dim": 5, "blocks": 2}, "model": model.state_dict()}, p)
    back = load(p)
    coords, feats = _data()
    torch.testing.assert_close(back(coords, feats), model(coords, feats))


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EVIL_MARKER']}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the crafted file is protocol 4 on purpose
def test_code_running_pickle_is_refused_and_not_run(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    p = tmp_path / "evil.pth"
    with open(p, "wb") as f:
        pickle.dump({"config": {"in_dim": 7}, "model": _Evil()}, f)
    with pytest.raises(ConfigError, match="evil.pth.*refused"):
        load(p)
    assert not marker.exists()
    # sanity: the crafted pickle really would run code if loaded unsafely
    with open(p, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_bad_config_rejected(tmp_path):
    with pytest.raises(ConfigError):
        StudentConfig(in_dim=0)
    with pytest.raises(ConfigError, match="unknown"):
        StudentConfig.from_dict({"in_dim": 3, "colour": 1})
    p = tmp_path / "future.pt"
    torch.save({"config": {"in_dim": 7, "format_version": 99}, "model": {}}, p)
    with pytest.raises(ConfigError, match="future.pt.*newer"):
        load(p)


def test_weights_with_nan_are_refused_on_loading(tmp_path):
    model = _model()
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")  # what a diverged run used to save
    path = save(model, tmp_path / "m.safetensors")
    with pytest.raises(InputError, match="NaN or infinite"):
        load(path)
