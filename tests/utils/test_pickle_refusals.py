"""A file that would need pickle to load is refused in one line that says so, never relaying torch.load's
"set weights_only to False" or np.load's "allow_pickle" advice (which would let the file run code)."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from geopurify.errors import GeoPurifyError

ADVICE = re.compile(r"weights_only|allow_pickle|arbitrary code|trusted source", re.I)


class _Code:
    def __reduce__(self):
        return (os.getcwd, ())


def _evil_pt(path: Path) -> Path:
    torch.save({"config": {"in_dim": 3}, "model": _Code(), "step": 1, "optimizer": {}}, path)
    return path


def _script_pt(path: Path) -> Path:
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    return path


def _object_npy(path: Path) -> Path:
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


def _object_npz(path: Path, *keys: str) -> Path:
    obj = np.array([{"a": 1}], dtype=object)
    np.savez(path, **{k: obj for k in keys})
    return path


def _refused(fn) -> str:
    with pytest.raises(GeoPurifyError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg
    assert not ADVICE.search(msg), msg
    assert "refused" in msg and "pickle" in msg and "could run code" in msg, msg
    return msg


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("make", [_evil_pt, _script_pt])
def test_torch_checkpoints(tmp_path, make):
    from geopurify.student import load

    train = importlib.import_module("geopurify.distill.train")
    f = make(tmp_path / "x.pt")
    assert _refused(lambda: load(f)).startswith(str(f))
    _refused(lambda: train._read_checkpoint(f))
    if make is _evil_pt:
        assert "it names" in _refused(lambda: load(f))


def test_numpy_readers(tmp_path):
    from geopurify import outputs
    from geopurify.encoders.masks import read_mask_file
    from geopurify.encoders.precomputed import read_feature_file
    from geopurify.encoders.text import load_text_embeddings
    from geopurify.io import pointcept, pointcloud
    from geopurify.io.registry import ReadOptions
    from geopurify.teachers.precomputed import PrecomputedTeacher

    npy = _object_npy(tmp_path / "obj.npy")
    npz = _object_npz(tmp_path / "obj.npz", "coord", "names", "embeddings", "feat")
    (tmp_path / "m").mkdir()
    _object_npz(tmp_path / "m" / "0.npz", "masks")
    (tmp_path / "m1").mkdir()
    _object_npy(tmp_path / "m1" / "0.npy")
    (tmp_path / "s").mkdir()
    _object_npy(tmp_path / "s" / "normal.npy")
    scene = types.SimpleNamespace(name="s", num_points=1, teacher_features=None)
    for fn in (
        lambda: pointcept._load(npy, None, None, "coordinates"),
        lambda: pointcloud.PointCloudReader().read(npy, ReadOptions()),
        lambda: pointcloud.PointCloudReader().read(npz, ReadOptions()),
        lambda: pointcloud._sibling(tmp_path / "s" / "x.ply", "normal"),
        lambda: PrecomputedTeacher(str(npy)).features(scene, None),
        lambda: read_mask_file(tmp_path / "m", "0"),
        lambda: read_mask_file(tmp_path / "m1", "0"),
        lambda: load_text_embeddings(npz),
        lambda: read_feature_file(npz),
        lambda: outputs._load_npy(npy),
        lambda: outputs._load_npy(npy, mmap=True),
    ):
        _refused(fn)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("make", [_evil_pt, _script_pt])
def test_clip_pytorch_model_bin(clip_dir, tmp_path, make):
    from geopurify.encoders import build_encoder

    d = tmp_path / "clip"
    shutil.copytree(clip_dir, d)
    (d / "model.safetensors").unlink()
    make(d / "pytorch_model.bin")
    _refused(lambda: build_encoder("clip", weights=str(d), device="cpu"))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("make", [_evil_pt, _script_pt])
def test_sonata_checkpoint(monkeypatch, tmp_path, make):
    from geopurify.teachers import build_teacher

    fake = types.ModuleType("sonata")
    fake.model = types.SimpleNamespace(MODELS=["sonata"])
    fake.load = lambda name, **kw: torch.load(name, weights_only=True)  # as sonata.load reads a local file
    monkeypatch.setitem(sys.modules, "sonata", fake)
    f = make(tmp_path / "sonata.pth")
    _refused(lambda: build_teacher("sonata", weights=str(f), device="cpu")._load())
