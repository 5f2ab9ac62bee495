"""The sparse convolution equals a dense conv3d read at the active sites (forward and backward)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geopurify.student.sparse_conv import OFFSETS, build_kernel_map, submanifold_conv3d
from geopurify.utils import linalg


def _random_sites(shape=(6, 5, 7), density=0.35, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) < density
    coords = mask.nonzero()
    perm = torch.randperm(coords.shape[0], generator=g)  # order must not matter
    return mask, coords[perm]


def _dense_reference(coords, x, weight, shape):
    """Scatter x to a dense grid (zeros elsewhere), conv3d with padding 1, read back at the sites."""
    cin = x.shape[1]
    dense = torch.zeros((1, cin, *shape), dtype=x.dtype)
    dense[0, :, coords[:, 0], coords[:, 1], coords[:, 2]] = x.T
    w = weight.permute(2, 1, 0).reshape(weight.shape[2], cin, 3, 3, 3)  # (Cout, Cin, 3, 3, 3)
    out = F.conv3d(dense, w, padding=1)
    return out[0, :, coords[:, 0], coords[:, 1], coords[:, 2]].T


def test_offsets_order_matches_conv3d_layout():
    assert OFFSETS.shape == (27, 3)
    assert OFFSETS[13].tolist() == [0, 0, 0]
    assert OFFSETS[0].tolist() == [-1, -1, -1] and OFFSETS[26].tolist() == [1, 1, 1]
    assert OFFSETS[1].tolist() == [-1, -1, 0]  # z fastest, like the last kernel axis of conv3d


def test_kernel_map_pairs_are_real_neighbours():
    _, coords = _random_sites(seed=3)
    kmap = build_kernel_map(coords)
    keyset = {tuple(c) for c in coords.tolist()}
    for k in range(27):
        if k == 13:
            continue
        d = OFFSETS[k]
        assert torch.equal(coords[kmap.in_idx[k]], coords[kmap.out_idx[k]] + d)
        # every site whose neighbour exists is listed (completeness)
        expect = sum(1 for c in coords.tolist() if tuple(int(a + b) for a, b in zip(c, d.tolist())) in keyset)
        assert kmap.in_idx[k].numel() == expect


@pytest.fixture
def gemm(monkeypatch):
    """Select the matrix-product backend for one test (skips when oneDNN's is not usable here)."""

    def use(name: str) -> None:
        monkeypatch.setenv(linalg.ENV, name)
        linalg.reset()
        if name == "onednn" and linalg.backend() != name:
            pytest.skip("oneDNN's product is not usable with this torch")
        assert linalg.backend() == name

    yield use
    monkeypatch.delenv(linalg.ENV, raising=False)
    linalg.reset()


@pytest.mark.parametrize("backend", ["torch", "onednn"])
@pytest.mark.parametrize("seed,row_block,bias", [(0, 4096, False), (1, 4096, True), (0, 5, True)])
def test_forward_and_backward_match_dense_conv3d(seed, row_block, bias, backend, gemm, monkeypatch):
    from geopurify.student import sparse_conv

    gemm(backend)
    monkeypatch.setattr(sparse_conv, "ROW_BLOCK", row_block)  # 5: every offset in several pieces
    shape = (6, 5, 7)
    _, coords = _random_sites(shape, seed=seed)
    g = torch.Generator().manual_seed(10 + seed)
    x = torch.randn(coords.shape[0], 4, generator=g, requires_grad=True)
    w = torch.randn(27, 4, 3, generator=g, requires_grad=True)
    b = torch.randn(3, generator=g, requires_grad=True) if bias else None
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = w.detach().clone().requires_grad_(True)
    b_ref = b.detach().clone().requires_grad_(True) if bias else torch.zeros(3)

    out = submanifold_conv3d(x, w, build_kernel_map(coords), b)
    ref = _dense_reference(coords, x_ref, w_ref, shape) + b_ref
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)

    grad = torch.randn(out.shape, generator=g)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-5, atol=1e-5)
    if bias:
        torch.testing.assert_close(b.grad, b_ref.grad, rtol=1e-5, atol=1e-5)


def _scaled_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4) -> None:
    """Max error within ``rtol`` of the values' scale (holds across summation orders)."""
    assert float((got.double() - want.double()).abs().max()) <= rtol * float(want.abs().max())


@pytest.mark.parametrize("row_block", [4096, 101])
def test_onednn_backend_equals_torch_backend_at_student_width(row_block, gemm, monkeypatch):
    """64 channels, offsets of several hundred pairs: oneDNN's products give torch.mm's values and
    gradients, and both the float64 dense reference's."""
    from geopurify.student import sparse_conv

    monkeypatch.setattr(sparse_conv, "ROW_BLOCK", row_block)
    shape = (9, 8, 7)
    _, coords = _random_sites(shape, density=0.6, seed=7)
    kmap = build_kernel_map(coords)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(coords.shape[0], 64, generator=g)
    w0 = torch.randn(27, 64, 64, generator=g) / 40
    grad = torch.randn(coords.shape[0], 64, generator=g)
    results = {}
    for name in ("torch", "onednn"):
        gemm(name)
        x, w = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        out = submanifold_conv3d(x, w, kmap)
        out.backward(grad)
        results[name] = (out.detach(), x.grad, w.grad)
    xd, wd = x0.double().requires_grad_(True), w0.double().requires_grad_(True)
    ref = _dense_reference(coords, xd, wd, shape)
    ref.backward(grad.double())
    for got_t, got_o, want in zip(results["torch"], results["onednn"], (ref.detach(), xd.grad, wd.grad)):
        _scaled_close(got_o, got_t)
        _scaled_close(got_o, want)
        _scaled_close(got_t, want)


def test_gradcheck_float64():
    _, coords = _random_sites((4, 4, 4), density=0.5, seed=5)
    kmap = build_kernel_map(coords)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(coords.shape[0], 3, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(27, 3, 2, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w_, b_: submanifold_conv3d(a, w_, kmap, b_), (x, w, b))


def test_isolated_site_sees_only_itself():
    coords = torch.tensor([[0, 0, 0], [5, 5, 5]])
    x = torch.tensor([[1.0], [2.0]])
    w = torch.ones(27, 1, 1)
    out = submanifold_conv3d(x, w, build_kernel_map(coords))
    assert out.flatten().tolist() == [1.0, 2.0]


def test_duplicates_and_negative_coords_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        build_kernel_map(torch.tensor([[1, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match="coords must lie"):
        build_kernel_map(torch.tensor([[-1, 0, 0]]))
