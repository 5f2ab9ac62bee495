"""One fp32 matrix product for the CPU hot paths: oneDNN's where it is available and correct, else torch's.

Why: torch's CPU wheel does float32 ``torch.mm`` through MKL sgemm, which on AMD CPUs takes its AVX2
path (about 75-95 GFLOP/s on one thread of the AVX-512 EPYC this was measured on). oneDNN, shipped in
the same wheel and reachable from dense tensors through the private op
``torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")`` (= ``x @ w.T``), does the same
strict float32 products (no bf16/tf32 down-conversion) 1.8-2.5x faster at the sparse convolution's
shapes, to float summation order.

The op is private, so it is guarded: it is used only on CPU float32 tensors, only when it exists, and
only after a one-time self-check against ``torch.mm`` on a small random case passed. Anything else
(CUDA/MPS tensors, other dtypes, a torch without the op, a failed check) takes ``torch.mm``.

The backend is chosen by ``$GEOPURIFY_GEMM``: ``auto`` (the default: oneDNN when the check passes),
``torch`` (always ``torch.mm``) or ``onednn`` (oneDNN when usable, with a warning when it is not).
"""

from __future__ import annotations

import logging
import os

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: environment variable naming the backend, and its accepted values (the first is the default)
ENV = "GEOPURIFY_GEMM"
BACKENDS = ("auto", "torch", "onednn")

_state: dict[str, str | None] = {"choice": None}


def _op():
    """The oneDNN linear op, or None when this torch lacks it."""
    try:  # torch.ops namespaces resolve lazily; a missing op raises here
        return getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    except (AttributeError, RuntimeError):
        return None


def _onednn_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")


def _onednn_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _onednn_linear(a, b.t(), None)


def _self_check() -> bool:
    """True when the oneDNN op exists, runs, and matches ``torch.mm`` on small random products.

    The cases cover the strides the callers use: contiguous rows, a transposed (column-major) left
    factor as in a weight gradient ``x.T @ g``, a transposed right factor, and a bias.
    """
    if _op() is None or not getattr(torch.backends.mkldnn, "is_available", lambda: False)():
        return False
    g = torch.Generator().manual_seed(0)
    a = torch.randn(67, 19, generator=g)
    b = torch.randn(19, 13, generator=g)
    c = torch.randn(67, 13, generator=g)
    bias = torch.randn(13, generator=g)
    cases = [(a, b, None), (a.t(), c, None), (a, b.t().contiguous().t(), None), (a, b, bias)]
    try:
        for x, y, z in cases:
            got = _onednn_mm(x, y) if z is None else _onednn_linear(x, y.t(), z)
            want = torch.mm(x, y) if z is None else torch.addmm(z, x, y)
            if got.shape != want.shape or got.dtype != want.dtype:
                return False
            scale = float(want.abs().max()) or 1.0
            if not bool(torch.isfinite(got).all()) or float((got - want).abs().max()) > 1e-5 * scale:
                return False
    except Exception as exc:  # the private op may be missing a kernel or reject these strides
        log.debug("oneDNN matrix product self-check raised %s: %s", type(exc).__name__, exc)
        return False
    return True


def backend() -> str:
    """The backend CPU float32 products take in this process: ``"onednn"`` or ``"torch"``.

    Decided once, at first use, from ``$GEOPURIFY_GEMM`` and the self-check (see the module docstring).

    Raises:
        ConfigError: ``$GEOPURIFY_GEMM`` is not one of :data:`BACKENDS`.
    """
    if _state["choice"] is None:
        want = os.environ.get(ENV, BACKENDS[0]).strip().lower() or BACKENDS[0]
        if want not in BACKENDS:
            raise ConfigError(f"${ENV} must be one of {', '.join(BACKENDS)}, got {want!r}")
        ok = want != "torch" and _self_check()
        if want == "onednn" and not ok:
            log.warning("$%s=onednn, but oneDNN's product is unavailable or failed its check: using torch.mm", ENV)
        _state["choice"] = "onednn" if ok else "torch"
        log.debug("CPU float32 matrix products: %s (%s=%s)", _state["choice"], ENV, want)
    return str(_state["choice"])


def reset() -> None:
    """Forget the backend choice (tests; the next product decides again)."""
    _state["choice"] = None


def _usable(*tensors: torch.Tensor) -> bool:
    """CPU float32 2-D (or 1-D bias) operands, none empty, that autograd would not record; oneDNN chosen."""
    record = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return (
        not record
        and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.numel() for t in tensors)
        and backend() == "onednn"
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``: x (M, K) float, weight (N, K), bias (N,) or None -> (M, N) = x @ weight.T + bias.

    Through oneDNN for CPU float32 2-D operands outside autograd (e.g. a student's inference forward);
    ``F.linear`` otherwise.
    """
    ops = (x, weight) if bias is None else (x, weight, bias)
    if x.ndim == 2 and weight.ndim == 2 and (bias is None or bias.ndim == 1) and _usable(*ops):
        return _onednn_linear(x, weight, bias if bias is None else bias.contiguous())
    return torch.nn.functional.linear(x, weight, bias)


def mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N), any strides; returns (M, N).

    ``out`` is scratch the ``torch.mm`` path writes into (avoiding an allocation); the oneDNN path
    returns a fresh tensor instead, so callers must use the returned tensor, not ``out``. The oneDNN op
    has no autograd formula, so a product that autograd would record always takes ``torch.mm``.
    """
    if a.ndim == 2 and b.ndim == 2 and _usable(a, b):
        return _onednn_mm(a, b)
    return torch.mm(a, b, out=out) if out is not None else torch.mm(a, b)


def addmm_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out += a @ b`` in place (``out`` (M, N), ``a`` (M, K), ``b`` (K, N)); returns ``out``.

    oneDNN's product then an add where :func:`mm` would use it, else ``out.addmm_`` (no temporary).
    """
    if a.ndim == 2 and b.ndim == 2 and _usable(a, b):
        return out.add_(_onednn_mm(a, b))
    return out.addmm_(a, b)


class _UnitRows(torch.autograd.Function):
    """y = x / max(|x|, eps) per row, with a hand-written backward (2 passes over x instead of ~8)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        clamped = norm <= eps
        inv = norm.clamp_min_(eps).reciprocal_()
        y = x * inv
        ctx.save_for_backward(y, inv, clamped)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        y, inv, clamped = ctx.saved_tensors
        # d(x/|x|) = (g - y (g . y)) / |x|; rows clamped at eps are x / eps, whose gradient is g / eps
        dot = torch.linalg.vecdot(grad, y, dim=1).unsqueeze(1).masked_fill_(clamped, 0.0)
        return (grad - y * dot).mul_(inv), None


def unit_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(x, dim=1, eps=eps)`` for 2-D ``x`` (N, D) float: rows scaled to unit length.

    The same values and gradients to float rounding, in fewer passes: F.normalize's autograd graph
    (norm, clamp, expand, divide and their backwards) took 40 ms per forward + backward of a
    (49,924 x 128) float32 matrix at 1 thread, this 14-16 ms.
    """
    if x.ndim != 2:
        return torch.nn.functional.normalize(x, dim=1, eps=eps)
    return _UnitRows.apply(x, eps)
