"""The CPU matrix product: oneDNN equals torch.mm to float tolerance, and every fallback takes torch.mm."""

from __future__ import annotations

import logging

import pytest
import torch

from geopurify.errors import ConfigError
from geopurify.utils import linalg


@pytest.fixture(autouse=True)
def _fresh_choice(monkeypatch):
    monkeypatch.delenv(linalg.ENV, raising=False)
    linalg.reset()
    yield
    linalg.reset()  # later tests decide again from their own environment


def _use(monkeypatch, name: str) -> str:
    monkeypatch.setenv(linalg.ENV, name)
    linalg.reset()
    return linalg.backend()


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4) -> None:
    """Max error within ``rtol`` of the values' scale: holds across summation orders."""
    assert got.shape == want.shape
    assert float((got.double() - want.double()).abs().max()) <= rtol * float(want.abs().max())


def _cases():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4097, 64, generator=g)
    w = torch.randn(64, 48, generator=g)
    y = torch.randn(4097, 48, generator=g)
    # rows @ weight, rows @ a transposed (column-major) weight, and the weight gradient x.T @ y
    return [(x, w), (y, w.T), (x.T, y), (x[:3], w)]


@pytest.mark.parametrize("name", ["torch", "onednn"])
def test_products_match_float64(name, monkeypatch):
    got = _use(monkeypatch, name)
    if name == "onednn" and got != name:
        pytest.skip("oneDNN's product is not usable with this torch")
    assert got == name
    for a, b in _cases():
        _close(linalg.mm(a, b), a.double() @ b.double())
    out = torch.empty(4097, 48)
    a, b = _cases()[0]
    _close(linalg.mm(a, b, out=out), a.double() @ b.double())


def test_torch_backend_never_calls_onednn(monkeypatch):
    def boom(a, b):
        raise AssertionError("oneDNN called")

    assert _use(monkeypatch, "torch") == "torch"
    monkeypatch.setattr(linalg, "_onednn_mm", boom)  # after the choice: the self-check must not run
    a, b = _cases()[0]
    _close(linalg.mm(a, b), a.double() @ b.double())


def test_missing_op_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(linalg, "_op", lambda: None)
    assert _use(monkeypatch, "auto") == "torch"
    with caplog.at_level(logging.WARNING, logger=linalg.__name__):
        assert _use(monkeypatch, "onednn") == "torch"
    assert "unavailable" in caplog.text
    a, b = _cases()[2]
    _close(linalg.mm(a, b), a.double() @ b.double())


@pytest.mark.parametrize("broken", ["wrong", "raises", "transposed-left"])
def test_self_check_rejects_a_wrong_op(broken, monkeypatch):
    real = linalg._onednn_mm

    def bad(a, b):
        if broken == "raises":
            raise RuntimeError("no kernel")
        if broken == "transposed-left" and not a.is_contiguous():
            return real(a.contiguous(), b) + 1e-3  # only the weight-gradient stride is wrong
        return real(a, b) * (1.0 if broken == "transposed-left" else 1.001)

    if linalg._op() is None:
        monkeypatch.setattr(linalg, "_op", lambda: object())
    monkeypatch.setattr(linalg, "_onednn_mm", bad)
    assert _use(monkeypatch, "auto") == "torch"


def test_unknown_backend_is_a_config_error(monkeypatch):
    monkeypatch.setenv(linalg.ENV, "blas")
    with pytest.raises(ConfigError, match="GEOPURIFY_GEMM"):
        linalg.backend()


def test_recorded_products_keep_autograd(monkeypatch):
    _use(monkeypatch, "auto")
    a = torch.randn(8, 4, requires_grad=True)
    b = torch.randn(4, 3)
    out = linalg.mm(a, b)
    assert out.grad_fn is not None
    out.sum().backward()
    torch.testing.assert_close(a.grad, b.sum(1).expand(8, 4))


@pytest.mark.parametrize("name", ["torch", "onednn"])
def test_linear_matches_float64(name, monkeypatch):
    got = _use(monkeypatch, name)
    if name == "onednn" and got != name:
        pytest.skip("oneDNN's product is not usable with this torch")
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(3001, 70, generator=g), torch.randn(33, 70, generator=g), torch.randn(33, generator=g)
    _close(linalg.linear(x, w, b), x.double() @ w.double().T + b.double())
    _close(linalg.linear(x, w), x.double() @ w.double().T)
    wg = w.clone().requires_grad_(True)
    out = linalg.linear(x, wg, b)  # recorded by autograd: F.linear, with its gradient
    assert out.grad_fn is not None


def test_unit_rows_equals_normalize_in_values_and_gradients():
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(300, 17, generator=g) * torch.rand(300, 1, generator=g) * 10
    x0[5] = 0.0  # a zero row: F.normalize leaves it zero, its gradient is grad / eps
    x0[9] = 2e-13  # |row| = 8e-13 < eps: clamped as well, its projection term must be dropped
    grad = torch.randn(300, 17, generator=g)
    got_x, want_x = x0.clone().requires_grad_(True), x0.clone().requires_grad_(True)
    got, want = linalg.unit_rows(got_x), torch.nn.functional.normalize(want_x, dim=1)
    got.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    rows = [i for i in range(300) if i not in (5, 9)]
    _close(got_x.grad[rows], want_x.grad[rows])
    _close(got_x.grad[[5, 9]], want_x.grad[[5, 9]])  # (the 1e12-scale gradients of the clamped rows)


def test_unit_rows_gradcheck_float64():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(linalg.unit_rows, (x,))
