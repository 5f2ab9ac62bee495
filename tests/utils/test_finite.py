"""all_finite: the one-pass aminmax check agrees with torch.isfinite for every kind of non-finite entry."""

from __future__ import annotations

import pytest
import torch

from geopurify.utils.finite import all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), -float("inf")])
def test_matches_isfinite(dtype, bad):
    t = torch.randn(37, 11).to(dtype)
    for pos in [(0, 0), (36, 10), (17, 3)] if bad is not None else [None]:
        x = t.clone()
        if pos is not None:
            x[pos] = bad
        assert all_finite(x) == bool(torch.isfinite(x).all())
        assert all_finite(x.T) == bool(torch.isfinite(x).all())  # any strides


def test_nan_beside_infinities_and_edge_cases():
    assert not all_finite(torch.tensor([float("nan"), 1.0, float("inf")]))
    assert not all_finite(torch.tensor([-float("inf"), float("inf")]))
    assert all_finite(torch.empty(0, 3))
    assert all_finite(torch.arange(5))  # integers are always finite
    assert not all_finite(torch.tensor([1 + 1j, complex(float("nan"), 0)]))
    assert all_finite(torch.tensor([3.4e38, -3.4e38]))  # large but finite
