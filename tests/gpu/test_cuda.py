"""CUDA against the CPU: sparse conv forward and backward, the student, a short train and segment on GPU.

Marked ``cuda``: skipped without a CUDA device (tests/conftest.py); ``benchmarks/gpu_check.sh`` runs
them on a lent GPU machine. The pooling GPU test is ``tests/pooling/test_pool.py::test_gpu_matches_cpu``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geopurify import api, load
from geopurify.cli import main
from geopurify.student import AffinityNet, StudentConfig
from geopurify.student.sparse_conv import build_kernel_map, submanifold_conv3d

pytestmark = pytest.mark.cuda


def _sites(v: int = 400, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, 12, (v, 3), generator=g), dim=0)
    return coords[torch.randperm(len(coords), generator=g)]


def test_sparse_conv_forward_and_backward_match_cpu():
    coords = _sites()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(coords), 16, generator=g)
    w = torch.randn(27, 16, 24, generator=g) * 0.1
    grad_out = torch.randn(len(coords), 24, generator=g)
    results = {}
    for dev in ("cpu", "cuda"):
        xd = x.to(dev).requires_grad_(True)
        wd = w.to(dev).requires_grad_(True)
        y = submanifold_conv3d(xd, wd, build_kernel_map(coords.to(dev)))
        y.backward(grad_out.to(dev))
        assert y.device.type == dev and xd.grad.device.type == dev
        results[dev] = (y.detach().cpu(), xd.grad.cpu(), wd.grad.cpu())
    for a, b in zip(results["cpu"], results["cuda"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)  # float32 sums in another order


def test_student_forward_and_backward_match_cpu():
    coords = _sites(seed=2)
    torch.manual_seed(0)
    net = AffinityNet(StudentConfig(in_dim=10, width=16, out_dim=32, blocks=2))
    feats = torch.randn(len(coords), 10)
    out = {}
    for dev in ("cpu", "cuda"):
        m = AffinityNet(net.config).to(dev)
        m.load_state_dict(net.state_dict())
        e = m(coords.to(dev), feats.to(dev))
        e.pow(3).sum().backward()
        out[dev] = (e.detach().cpu(), m.stem.weight.grad.cpu())
    for a, b in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    return api.synth(tmp_path_factory.mktemp("room"), n=1, seed=3, points=4000, frames=8)[0]


def test_train_and_segment_on_gpu(room, tmp_path):
    common = ["--steps", "4", "--width", "16"]
    assert main(["-q", "train", str(room), "--out", str(tmp_path / "gpu"), "--device", "cuda", *common]) == 0
    assert main(["-q", "train", str(room), "--out", str(tmp_path / "cpu"), "--device", "cpu", *common]) == 0
    gpu_log = json.loads((tmp_path / "gpu" / "train_log.json").read_text())
    cpu_log = json.loads((tmp_path / "cpu" / "train_log.json").read_text())
    assert gpu_log["losses"] == pytest.approx(cpu_log["losses"], rel=1e-2)  # same seeds, same samples
    student = tmp_path / "gpu"
    for dev in ("cuda", "cpu"):
        assert main(["-q", "segment", str(room), "--student", str(student), "--device", dev,
                     "--out", str(tmp_path / f"seg-{dev}")]) == 0
    a = np.loadtxt(tmp_path / "seg-cuda" / "labels.txt", dtype=int)
    b = np.loadtxt(tmp_path / "seg-cpu" / "labels.txt", dtype=int)
    assert len(a) == len(b) and (a == b).mean() > 0.99
    assert load(student).config.width == 16
