"""Unit rows of a numpy array: the one normalisation numpy stages share (torch's is ``linalg.unit_rows``)."""

from __future__ import annotations

import numpy as np


def unit_rows_np(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Each row of ``x`` (N, D) divided by its Euclidean norm, as (N, D) float32.

    The division is done in ``x``'s own dtype and cast afterwards, so float64 input is normalised in
    float64. Rows shorter than ``eps`` are divided by ``eps`` instead (a zero row stays zero).

    >>> unit_rows_np(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    """
    x = np.asarray(x)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)).astype(np.float32, copy=False)
