"""Geometry-Guided Pooling: purify per-voxel features with student affinities.

For every voxel ``i`` take its ``k`` nearest voxel centres ``N(i)`` (itself included by default) and
weights ``a_ij = softmax_j(sharpen * cos(s_i, s_j))`` over ``j in N(i)``, where ``s`` are the student
embeddings. The row-stochastic sparse matrix ``A`` is applied ``steps`` times: ``X <- A X``.

Because ``X <- A X`` acts on every column independently, pooling commutes with any linear map of the
columns: ``A^t (X W) == (A^t X) W``. Classifying by cosine with text embeddings ``T`` only needs the
sign-free ordering of ``x . t_c / |x|`` per row, and the row norm is a positive scale, so

    argmax_c cos(A^t X, t_c) == argmax_c (A^t (X T_hat^T))_c      (T_hat: unit rows of T)

Pooling the ``C`` class logits ``X T_hat^T`` therefore gives exactly the labels of pooling the
``D``-dim features and classifying afterwards, at ``C / D`` of the cost (20 vs 518 columns for
ScanNet with X-Decoder features). The same holds for unit-normalised ``X``: normalise first, then
take logits. :func:`purify` accepts any ``X``; :func:`pool_logits` is the shortcut.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from ..geometry import knn
from ..utils.finite import all_finite
from .config import KNN_METHODS, PoolConfig  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor

_EPS = 1e-12


@dataclass
class PoolResult:
    """Output of :func:`purify`.

    Attributes:
        values: ``(V, C)`` float32 pooled values; a numpy array when ``X`` was numpy, else a tensor
            on ``X``'s device.
        seconds_knn: wall time of the neighbour search.
        seconds_pool: wall time of the affinities and the ``steps`` sparse products.
        nnz: stored entries of the affinity matrix (``V * k``).
    """

    values: ArrayLike
    seconds_knn: float
    seconds_pool: float
    nnz: int = 0


def _as_float_tensor(x: ArrayLike, name: str, device: torch.device | None = None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(t, torch.Tensor):
        raise InputError(f"pooling: {name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if t.ndim != 2:
        raise InputError(f"pooling: {name} must be 2-D, got shape {tuple(t.shape)}")
    t = t.detach().to(dtype=torch.float32)
    return t.to(device) if device is not None else t


def _check_finite(t: torch.Tensor, name: str) -> None:
    if not all_finite(t):
        raise InputError(f"pooling: {name} contains NaN or infinite values")


def _compute_device(device: torch.device) -> torch.device:
    # Sparse CSR products are not implemented on MPS; compute there on the CPU instead.
    return torch.device("cpu") if device.type == "mps" else device


def neighbors(centers: ArrayLike, config: PoolConfig, coords: ArrayLike | None = None) -> np.ndarray:
    """Indices ``(V, k')`` int64 of each voxel's nearest voxel centres (KD-tree, all cores).

    ``k' = min(k, V)`` with the voxel itself included, or ``min(k, V - 1)`` without it (the self hit
    is removed wherever it appears in the row, so duplicate centres are handled). With
    ``config.knn == "stencil"`` the neighbours come from the ``(V, 3)`` integer voxel ``coords``
    instead (:func:`.stencil.stencil_neighbors`).
    """
    if config.knn == "stencil":
        if coords is None:
            raise ConfigError("pooling: knn='stencil' needs the integer voxel coordinates (coords=)")
        from .stencil import stencil_neighbors

        if isinstance(coords, torch.Tensor):
            coords = coords.detach().cpu().numpy()
        return stencil_neighbors(np.asarray(coords), config.k, config.include_self)
    if isinstance(centers, torch.Tensor):
        centers = centers.detach().cpu().numpy()
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != 3 or len(centers) == 0:
        raise InputError(f"pooling: centers must have shape (V, 3) with V >= 1, got {centers.shape}")
    if not np.isfinite(centers).all():
        raise InputError("pooling: centers contain NaN or infinite coordinates")
    v = len(centers)
    if config.include_self:
        idx, _ = knn(centers, centers, config.k)
        return idx
    k = min(config.k, v - 1)
    if k < 1:
        raise InputError("pooling: include_self=False needs at least 2 voxels")
    idx, _ = knn(centers, centers, k + 1)
    if np.array_equal(idx[:, 0], np.arange(v)):
        return idx[:, 1:]  # the usual case, distinct centres: each voxel is its own first hit
    is_self = idx == np.arange(v)[:, None]
    # Rows where self was not returned (duplicates): drop the farthest hit instead.
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    # Only the first self hit per row is dropped, so each row loses exactly one entry.
    first = np.argmax(is_self, axis=1)
    keep = np.ones_like(is_self)
    keep[np.arange(v), first] = False
    return idx[keep].reshape(v, k)


def _sorted_columns(nbr: ArrayLike, device: torch.device) -> torch.Tensor:
    """``(V, k)`` integer neighbour indices sorted within each row, on ``device``, in their own dtype.

    Sorted columns make the CSR canonical and its products' gathers cache-friendlier. On the CPU the
    sort is numpy's (AVX-512 where available): 0.014-0.023 s against torch.sort's 0.20 s for 75k x 96.
    """
    if device.type == "cpu":
        arr = nbr.cpu().numpy() if isinstance(nbr, torch.Tensor) else np.asarray(nbr)
        arr = arr if np.issubdtype(arr.dtype, np.integer) else arr.astype(np.int64)
        return torch.from_numpy(np.sort(arr, axis=1))
    t = nbr if isinstance(nbr, torch.Tensor) else torch.from_numpy(np.asarray(nbr))
    return torch.sort(t.to(device=device, dtype=torch.int64), dim=1)[0]


def _neighbour_cosines(unit: torch.Tensor, rows: slice, cols: torch.Tensor, sampled: bool) -> torch.Tensor:
    """``(r, k)`` float32 cosines of the unit rows ``unit[rows]`` with their neighbours ``cols`` ``(r, k)``.

    With ``sampled`` (the CPU) this is a sampled dense product (``torch.sparse.sampled_addmm``:
    ``unit[rows] @ unit.T`` evaluated only at the neighbour entries), which reads each neighbour row
    once and writes nothing else: 0.07 s against 0.78 s for the gather + ``vecdot`` below on a
    75k-voxel ScanNet room (k = 96, E = 128, 1 thread), the same values up to float32 summation order.
    Elsewhere (not measured here: no GPU was available) the gather + ``vecdot`` form is kept.
    """
    r, k = cols.shape
    if sampled:
        crow = torch.arange(0, r * k + 1, k, dtype=cols.dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # "beta state" notice
            pattern = torch.sparse_csr_tensor(
                crow, cols.reshape(-1), torch.zeros(r * k), size=(r, unit.shape[0]), check_invariants=False
            )
        return torch.sparse.sampled_addmm(pattern, unit[rows], unit.T, beta=0.0).values().view(r, k)
    gathered = torch.index_select(unit, 0, cols.reshape(-1)).view(r, k, unit.shape[1])
    return torch.linalg.vecdot(gathered, unit[rows].unsqueeze(1))


def affinity_from_neighbors(nbr: ArrayLike, embeddings: ArrayLike, config: PoolConfig | None = None) -> torch.Tensor:
    """Row-stochastic sparse CSR ``(V, V)`` float32 from neighbour indices and student embeddings.

    Args:
        nbr: ``(V, k)`` int neighbour indices (row ``i`` lists the neighbours of voxel ``i``).
        embeddings: ``(V, E)`` student embeddings (any norm; cosine is used). The matrix is built on
            their device.
        config: pooling options (``sharpen``, chunking).

    Rows are processed ``config.rows_per_chunk`` at a time. Column indices are sorted within each row.
    """
    config = config or PoolConfig()
    emb = _as_float_tensor(embeddings, "embeddings")
    _check_finite(emb, "embeddings")
    device = _compute_device(emb.device)
    emb = emb.to(device)
    nbr = nbr if hasattr(nbr, "shape") else np.asarray(nbr)
    shape = tuple(nbr.shape)
    if len(shape) != 2 or shape[0] != emb.shape[0]:
        raise InputError(f"pooling: neighbours have shape {shape} but embeddings have {emb.shape[0]} rows")
    v, k = shape
    index_dtype = torch.int32 if v * k < 2**31 - 1 else torch.int64
    cols = _sorted_columns(nbr, device)
    # checked before narrowing to int32, which would wrap an index of 2^32 + i onto i
    if v and k and (int(cols[:, 0].min()) < 0 or int(cols[:, -1].max()) >= v):
        raise InputError(f"pooling: neighbour indices must lie in [0, {v})")
    cols = cols.to(index_dtype)
    unit = emb / emb.norm(dim=1, keepdim=True).clamp_min(_EPS)
    rows = config.rows_per_chunk(k)
    vals = torch.empty((v, k), dtype=torch.float32, device=device)
    for start in range(0, v, rows):
        stop = min(start + rows, v)
        cos = _neighbour_cosines(unit, slice(start, stop), cols[start:stop], sampled=device.type == "cpu")
        vals[start:stop] = torch.softmax(cos * config.sharpen, dim=1)
    crow = torch.arange(0, v * k + 1, k, dtype=index_dtype, device=device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # "beta state" notice
        return torch.sparse_csr_tensor(crow, cols.reshape(-1), vals.reshape(-1), size=(v, v), check_invariants=False)


def build_affinity(
    centers: ArrayLike, embeddings: ArrayLike, config: PoolConfig | None = None, coords: ArrayLike | None = None
) -> torch.Tensor:
    """Sparse CSR ``(V, V)`` float32 affinity; every row sums to 1.

    Args:
        centers: ``(V, 3)`` voxel centres (numpy or tensor; the KD-tree runs on the CPU).
        embeddings: ``(V, E)`` student embeddings; the matrix lives on their device.
        config: ``k`` neighbours (self included unless ``include_self=False``), ``sharpen``, chunking.
        coords: ``(V, 3)`` integer voxel coordinates, needed by ``config.knn == "stencil"``.

    Row ``i`` holds ``softmax(sharpen * cos(e_i, e_j))`` over the ``k`` nearest centres ``j``.
    """
    config = config or PoolConfig()
    n_emb = embeddings.shape[0] if hasattr(embeddings, "shape") else -1
    n_cen = centers.shape[0] if hasattr(centers, "shape") else -1
    if n_emb != n_cen:
        raise InputError(f"pooling: centers have {n_cen} rows but embeddings have {n_emb}")
    return affinity_from_neighbors(neighbors(centers, config, coords), embeddings, config)


_L3_BYTES = 32 * 2**20  # the development machine's L3; the block rule below was measured there


def column_block(rows: int, cols: int, device: torch.device, block: int | None = None) -> int:
    """Columns of ``X`` to carry through all products at once (see ``PoolConfig.block_columns``).

    On a GPU every column goes at once. On the CPU a block of columns that stays in cache across the
    18 products beats the whole ``(V, 512)`` matrix. Measured with the ``embedding_bag`` product
    (:func:`csr_product`, 1 thread, real ScanNet geometry, k = 96): 64 columns were fastest at 48k-88k
    voxels (32, 48, 96, 128 and 512 slower), 48 at 165k, where a 64-column block (42 MiB) outgrows the
    32 MiB L3 cache and a 48-column one (32 MiB) does not, and 128 at 330k and 1M voxels, where no
    block fits and wider blocks read the indices fewer times (5-10 % faster than 64).
    """
    if block is not None:
        return max(1, min(int(block), cols))
    if device.type != "cpu":
        return max(cols, 1)
    fits = [b for b in (64, 48) if rows * b * 4 <= _L3_BYTES]
    return max(1, min(fits[0] if fits else 128, cols))


def csr_product(A: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> A @ x`` for a ``(V, V)`` matrix, fastest form for its layout and device.

    A CPU float32 CSR matrix is applied as ``embedding_bag(col_indices, x, crow_indices[:-1],
    mode="sum", per_sample_weights=values)``: row ``i`` of the product is the weighted sum of the rows
    of ``x`` its entries name, which is what ``embedding_bag`` computes, with FBGEMM's generated
    gather-scale-add kernels. Measured against ``A @ x`` (MKL's sparse product) at k = 96 on real
    ScanNet geometry: 1.6-2.0x faster over a 64-column block, the same values up to float32
    summation order (max relative difference 5e-7). Anything else (COO, dense, GPU, float64) is ``A @ x``.

    >>> A = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.25, 0.0, 0.75]]).to_sparse_csr()
    >>> x = torch.tensor([[2.0], [4.0], [8.0]])
    >>> csr_product(A)(x).flatten().tolist()
    [3.0, 4.0, 6.5]
    """
    if A.layout != torch.sparse_csr or A.device.type != "cpu" or A.dtype != torch.float32:
        return lambda x: A @ x
    cols = A.col_indices()
    offsets = A.crow_indices()[:-1].to(cols.dtype)
    weights = A.values().contiguous()

    def product(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:
            return x.clone()
        return F.embedding_bag(cols, x, offsets, mode="sum", per_sample_weights=weights)

    return product


def propagate(A: torch.Tensor, X: ArrayLike, steps: int, block: int | None = None) -> torch.Tensor:
    """Apply ``X <- A X`` ``steps`` times.

    Args:
        A: ``(V, V)`` sparse (CSR or COO) or dense float32 matrix.
        X: ``(V, C)`` values; moved to ``A``'s device and cast to float32.
        steps: number of products (0 returns ``X`` as float32).
        block: columns propagated together through every step (``None``: :func:`column_block`).
            Columns are independent under ``X <- A X``, so the result is the same for any block.

    Returns:
        ``(V, C)`` float32 tensor on ``A``'s device.
    """
    if int(steps) != steps or steps < 0:
        raise ConfigError(f"propagate: steps must be an integer >= 0, got {steps!r}")
    x = _as_float_tensor(X, "X", A.device)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[1] != x.shape[0]:
        raise InputError(f"propagate: A has shape {tuple(A.shape)} but X has {x.shape[0]} rows")
    x = x.contiguous()
    product = csr_product(A)
    b = column_block(x.shape[0], x.shape[1], x.device, block)
    if b >= x.shape[1] or steps == 0:
        for _ in range(int(steps)):
            x = product(x)
        return x
    out = torch.empty_like(x)
    for j in range(0, x.shape[1], b):
        xb = x[:, j : j + b].contiguous()
        for _ in range(int(steps)):
            xb = product(xb)
        out[:, j : j + b] = xb
    return out


def purify(
    centers: ArrayLike, embeddings: ArrayLike, X: ArrayLike, config: PoolConfig | None = None,
    coords: ArrayLike | None = None,
) -> PoolResult:
    """Geometry-Guided Pooling of any per-voxel values ``X``.

    Args:
        centers: ``(V, 3)`` voxel centres.
        embeddings: ``(V, E)`` student embeddings.
        X: ``(V, C)`` values to purify: features (``C = D``) or, cheaper and equivalent for the final
            labels, class logits ``X_feat @ T_hat^T`` (see the module docstring).
        config: :class:`PoolConfig`.
        coords: ``(V, 3)`` integer voxel coordinates, needed by ``config.knn == "stencil"``.

    Returns:
        :class:`PoolResult`; ``values`` is numpy when ``X`` is numpy, else a tensor on ``X``'s device.
        The work runs on ``embeddings``' device (the GPU when they are there).
    """
    config = config or PoolConfig()
    x_rows = X.shape[0] if hasattr(X, "shape") else -1
    n_cen = centers.shape[0] if hasattr(centers, "shape") else -1
    n_emb = embeddings.shape[0] if hasattr(embeddings, "shape") else -1
    if not x_rows == n_cen == n_emb:
        raise InputError(f"pooling: {n_cen} voxel centres, {n_emb} embedding rows and {x_rows} rows of X differ")
    x_t = _as_float_tensor(X, "X")
    _check_finite(x_t, "X")
    t0 = time.perf_counter()
    nbr = neighbors(centers, config, coords)
    t1 = time.perf_counter()
    A = affinity_from_neighbors(nbr, embeddings, config)
    out = propagate(A, x_t, config.steps, config.block_columns)
    if out.device.type == "cuda":
        torch.cuda.synchronize(out.device)  # honest timings: wait for the queued kernels
    t2 = time.perf_counter()
    log.debug("pooled %d voxels x %d columns: knn %.3fs, pool %.3fs", n_cen, out.shape[1], t1 - t0, t2 - t1)
    values: ArrayLike = out.cpu().numpy() if isinstance(X, np.ndarray) else out.to(x_t.device)
    return PoolResult(values=values, seconds_knn=t1 - t0, seconds_pool=t2 - t1, nnz=int(A._nnz()))


def class_logits(features: ArrayLike, text: ArrayLike, normalize_features: bool = False) -> torch.Tensor:
    """``(V, C)`` float32 logits ``F @ T_hat^T`` (``T_hat``: unit text rows), chunk-free matmul.

    With ``normalize_features`` the rows of ``F`` are made unit first (cosine similarities).
    Pooling these logits yields the same argmax as pooling ``F`` and then classifying by cosine.
    """
    f = _as_float_tensor(features, "features")
    t = _as_float_tensor(text, "text", f.device)
    if f.shape[1] != t.shape[1]:
        raise InputError(f"pooling: features have D={f.shape[1]} but text embeddings have D={t.shape[1]}")
    if normalize_features:
        f = f / f.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return f @ (t / t.norm(dim=1, keepdim=True).clamp_min(_EPS)).T


def pool_logits(
    centers: ArrayLike,
    embeddings: ArrayLike,
    features: ArrayLike,
    text: ArrayLike,
    config: PoolConfig | None = None,
    normalize_features: bool = False,
) -> PoolResult:
    """Purify the ``C`` class logits of ``features (V, D)`` against ``text (C, D)``.

    ``values.argmax(1)`` equals the cosine-argmax labels of ``purify(..., features)`` (exactly up
    to float rounding), since pooling is linear per column and cosine only rescales each row.
    """
    logits = class_logits(features, text, normalize_features)
    if isinstance(features, np.ndarray):
        logits = logits.numpy()
    return purify(centers, embeddings, logits, config)
