"""Pinhole projection and the visibility test (frustum, border, depth consistency).

Pixel convention (OpenCV): pixel ``(i, j)`` has its centre at integer coordinates ``u = i, v = j``,
so the pixel a projection falls in is ``rint(u), rint(v)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import FrameError
from ..geometry import pose_problem
from ..geometry.camera import Projection, camera_points, project_camera, project_points  # noqa: F401 (re-exported)


def visible_mask(
    proj: Projection,
    image_hw: tuple[int, int],
    border: int = 10,
    depth: np.ndarray | None = None,
    depth_proj: Projection | None = None,
    tolerance: float = 0.05,
) -> np.ndarray:
    """(N,) bool: which projected points a frame sees.

    A point is visible when ``z > 0``, its pixel ``rint(u), rint(v)`` lies inside the ``image_hw``
    image at least ``border`` pixels from every edge, and -- when ``depth`` is given -- the depth
    image at the point's pixel in the DEPTH image (``depth_proj``, which defaults to ``proj`` for
    aligned images) is valid (> 0) and ``|depth - z| <= tolerance * depth`` (occlusion test).

    Args:
        proj: projection into the colour image.
        image_hw: (H, W) of the colour image.
        depth: (Hd, Wd) float depth in metres, 0 = invalid, or None to skip the occlusion test.
        depth_proj: projection into the depth image (own intrinsics, same pose).
    """
    H, W = image_hw
    with np.errstate(invalid="ignore"):
        ui, vi = np.rint(proj.u), np.rint(proj.v)
        ok = (proj.z > 0) & (ui >= border) & (ui < W - border) & (vi >= border) & (vi < H - border)
    if depth is None:
        return ok
    dp = proj if depth_proj is None else depth_proj
    if depth_proj is None and tuple(depth.shape) != (H, W):
        raise ValueError(f"depth image {depth.shape} differs from colour {image_hw}: pass depth_proj")
    Hd, Wd = depth.shape
    with np.errstate(invalid="ignore"):
        ud, vd = np.rint(dp.u), np.rint(dp.v)
        ok &= (ud >= 0) & (ud < Wd) & (vd >= 0) & (vd < Hd)
    sel = np.flatnonzero(ok)
    d = depth[vd[sel].astype(np.int64), ud[sel].astype(np.int64)].astype(np.float64)
    good = (d > 0) & (np.abs(d - dp.z[sel]) <= tolerance * d)
    ok[sel[~good]] = False
    return ok


def check_pose(camera_to_world: np.ndarray, source: str = "") -> None:
    """Raise FrameError(reason="bad_pose") unless the (4, 4) pose is finite and rigid."""
    problem = pose_problem(camera_to_world)
    if problem:
        raise FrameError(f"{source + ': ' if source else ''}{problem}", reason="bad_pose")


# --- many frames over the same points: cull cheaply, then the exact float64 test on candidates only ---

_F32_EPS = 2.0**-24  # unit roundoff of float32
_F64_EPS = 2.0**-53


def _spread_bits(a: np.ndarray) -> np.ndarray:
    """Spread the low 10 bits of uint32 ``a`` to every third bit (Morton code helper)."""
    a = (a | (a << 16)) & 0x030000FF
    a = (a | (a << 8)) & 0x0300F00F
    a = (a | (a << 4)) & 0x030C30C3
    return (a | (a << 2)) & 0x09249249


def spatial_order(points: np.ndarray, bits: int = 10) -> np.ndarray:
    """(N,) int64 permutation sorting (N, 3) points along a Morton (Z-order) curve of a 2^bits grid (bits <= 10)."""
    return _morton_order(np.ascontiguousarray(np.asarray(points, dtype=np.float64).T), bits)


def _morton_order(columns: np.ndarray, bits: int = 10) -> np.ndarray:
    """:func:`spatial_order` of (3, N) coordinate rows."""
    n = columns.shape[1]
    if n < 2:
        return np.arange(n, dtype=np.int64)
    lo = columns.min(axis=1)
    ext = float((columns.max(axis=1) - lo).max())
    scale = (2**bits - 1) / ext if ext > 0 else 0.0
    code = np.zeros(n, dtype=np.uint32)
    for axis in range(3):
        cell = ((columns[axis] - lo[axis]) * scale).astype(np.uint32)
        code |= _spread_bits(cell) << np.uint32(axis)
    # stable LSD radix sort in two 16-bit passes (numpy radix-sorts 16-bit keys): ~3x a 32-bit argsort
    first = np.argsort((code & 0xFFFF).astype(np.uint16), kind="stable")
    return first[np.argsort((code[first] >> 16).astype(np.uint16), kind="stable")]


def _max_depth(depth: np.ndarray) -> float:
    """Largest depth value ignoring NaN (NaN when there is none)."""
    if depth.size == 0:
        return float("nan")
    m = float(np.max(depth))
    if np.isnan(m):
        finite = depth[~np.isnan(depth)]
        m = float(finite.max()) if finite.size else m
    return m


class PointProjector:
    """(N, 3) world points prepared once for the visibility test of many frames.

    :meth:`visible` returns exactly what ``camera_points`` -> ``project_camera`` -> ``visible_mask`` decide in
    float64 (same points, same pixel coordinates, same order), but runs that float64 pipeline only on
    candidates. Points are grouped into blocks of ``block_size`` neighbours along a Morton curve; a
    block whose bounding box lies outside the colour frustum (or beyond the farthest depth) is
    skipped; the points of blocks that straddle it are tested in float32 against planes loosened by a
    bound on the float32 (and float64) rounding error plus half a pixel, so the cull never drops a
    point the exact test would keep. Not thread-safe (one scratch buffer per instance).
    """

    #: candidates per exact-test chunk: its ~20 float64 temporaries stay in cache
    chunk = 1 << 14

    def __init__(self, points: np.ndarray, block_size: int = 256) -> None:
        P = np.asarray(points, dtype=np.float64)
        self.n = n = len(P)
        self.columns = np.ascontiguousarray(P.T)  # (3, N): exact float64 coordinates, per axis
        self._mark = np.zeros(n, dtype=bool)  # scratch: sorts candidate indices in O(N / 8) bytes
        self.block_ok: np.ndarray | None = None  # (nb,) False for blocks holding a non-finite point
        cols = self.columns
        finite = np.isfinite(cols).all(axis=0)
        if not finite.all():  # never visible (the camera z comes out NaN or inf): NaN here fails every cull test
            cols = np.where(finite, cols, np.nan)
        if not finite.any():
            self.n = 0  # nothing can be seen
            return
        lo, hi = np.nanmin(cols, axis=1), np.nanmax(cols, axis=1)
        self.center = (lo + hi) / 2
        self.pmax = np.maximum(np.abs(lo), np.abs(hi))
        B = int(min(block_size, n))
        order = _morton_order(np.where(finite, cols, self.center[:, None])) if n > B else np.arange(n, dtype=np.int64)
        nb = -(-n // B)
        q = np.empty((3, nb * B))  # centred coordinates in block order, padded with the last point
        q[:, :n] = np.take(cols, order, axis=1)
        q[:, :n] -= self.center[:, None]
        q[:, n:] = q[:, n - 1 : n]
        self.qmax = np.nanmax(np.abs(q), axis=1)  # per-axis bound of |q| over all (finite) points
        lo, hi = q.reshape(3, nb, B).min(axis=2).T, q.reshape(3, nb, B).max(axis=2).T
        if not finite.all():
            self.block_ok = np.isfinite(lo).all(axis=1)
            lo[~self.block_ok] = hi[~self.block_ok] = 0.0
        self.block_mid, self.block_half = (lo + hi) / 2, (hi - lo) / 2  # (nb, 3) float64 boxes
        self.order = np.concatenate([order, np.full(nb * B - n, -1, dtype=np.int64)]).reshape(nb, B)
        q32 = np.empty((3, nb * B), dtype=np.float32)  # NaN padding fails every test
        q32[:] = q
        q32[:, n:] = np.nan
        self.q32 = q32.reshape(3, nb, B)

    def _planes(self, w2c: np.ndarray, K: np.ndarray, hw: tuple[int, int], border: int, zmax: float | None):
        """(n, 3) float64 ``a`` and (n,) ``b``, ``delta``: candidates have ``a . q + b >= -delta`` for every plane."""
        H, W = hw
        fx, s, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
        # visible needs rint(u) in [border, W - border - 1]: u in [border - 1, W - border] keeps half a pixel spare
        ulo, uhi, vlo, vhi = border - 1.0, float(W - border), border - 1.0, float(H - border)
        c = [[0.0, 0.0, 1.0], [fx, s, cx - ulo], [-fx, -s, uhi - cx], [0.0, fy, cy - vlo], [0.0, -fy, vhi - cy]]
        e = [0.0] * 5
        if zmax is not None:
            c.append([0.0, 0.0, -1.0])
            e.append(zmax)
        c, e = np.array(c), np.array(e)
        R, t = w2c[:3, :3], w2c[:3, 3]
        a = c @ R  # plane over centred world coordinates q = p - center
        b = c @ (R @ self.center + t) + e
        # float32 evaluation of a . q >= -b (rounding q, a and b, three products, two sums) errs by at
        # most ~6 u (|a| . qmax + |b|); allow 16 u, plus the float64 error of the reference pipeline,
        # which works on uncentred coordinates
        delta = 16 * _F32_EPS * (np.abs(a) @ self.qmax + np.abs(b))
        delta += 64 * _F64_EPS * (np.abs(a) @ self.pmax + np.abs(c) @ np.abs(t) + np.abs(e)) + 1e-300
        return a, b, delta

    def candidates(self, w2c: np.ndarray, K: np.ndarray, hw: tuple[int, int], border: int, zmax=None) -> np.ndarray:
        """Sorted (M,) int64 superset of the points inside the colour frustum (and nearer than ``zmax``)."""
        if self.n == 0:
            return np.zeros(0, dtype=np.int64)
        a, b, delta = self._planes(w2c, K, hw, border, zmax)
        # (nb, planes) plane value at each block's centre and its largest change over the box; no
        # matmul: a multi-threaded BLAS call leaves spinning threads behind (see _cull_points)
        m, h = self.block_mid, self.block_half
        mid = m[:, 0:1] * a[:, 0] + m[:, 1:2] * a[:, 1] + m[:, 2:3] * a[:, 2] + b
        spread = h[:, 0:1] * np.abs(a[:, 0]) + h[:, 1:2] * np.abs(a[:, 1]) + h[:, 2:3] * np.abs(a[:, 2])
        keep = np.all(mid + spread >= -delta, axis=1)
        inside = keep & np.all(mid - spread >= delta, axis=1)
        if self.block_ok is not None:  # blocks with non-finite points: test their points one by one
            keep |= ~self.block_ok
            inside &= self.block_ok
        part = np.flatnonzero(keep & ~inside)
        out = [self.order[inside].ravel()]
        if len(part):
            out.append(self.order[part].ravel()[self._cull_points(part, a, -(b + 2 * delta))])
        # back to ascending point order (what a full-array mask gives): mark and scan beats a sort
        mark = self._mark
        for ids in out:
            mark[ids[ids >= 0]] = True
        cand = np.flatnonzero(mark)
        mark[cand] = False
        return cand

    def _cull_points(self, blocks: np.ndarray, a: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """Positions (in ``blocks``' points) where float32 ``a . q >= lower`` holds for every plane.

        Elementwise numpy rather than a matmul: OpenBLAS threads left spinning after a call slow the
        torch and numpy work that follows on a small machine.
        """
        x, y, z = np.take(self.q32, blocks, axis=1).reshape(3, -1)  # padding is NaN: fails
        a32, lower32 = a.astype(np.float32), lower.astype(np.float32)
        ok = np.empty(len(x), dtype=bool)
        hit = np.empty(len(x), dtype=bool)
        L, tmp = np.empty_like(x), np.empty_like(x)
        for i in range(len(a32)):
            np.multiply(x, a32[i, 0], out=L)
            L += np.multiply(y, a32[i, 1], out=tmp)
            L += np.multiply(z, a32[i, 2], out=tmp)
            if i == 0:
                np.greater_equal(L, lower32[i], out=ok)
            else:
                ok &= np.greater_equal(L, lower32[i], out=hit)
        return np.flatnonzero(ok)

    def visible(
        self,
        world_to_camera: np.ndarray,
        K_color: np.ndarray,
        image_hw: tuple[int, int],
        border: int = 10,
        depth: np.ndarray | None = None,
        K_depth: np.ndarray | None = None,
        tolerance: float = 0.05,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Visible points: sorted indices (M,) int64 and colour pixel coordinates u, v (M,) float64.

        Same decision, bit for bit, as ``visible_mask(project_camera(cam, K_color), image_hw, border,
        depth, project_camera(cam, K_depth), tolerance)`` with ``cam = camera_points(points, world_to_camera)``.
        """
        T = np.asarray(world_to_camera, dtype=np.float64)
        Kc = np.asarray(K_color, dtype=np.float64)
        Kd = Kc if K_depth is None else np.asarray(K_depth, dtype=np.float64)
        H, W = image_hw
        zmax = None
        if depth is not None:
            if K_depth is None and tuple(depth.shape) != (H, W):
                raise ValueError(f"depth image {depth.shape} differs from colour {image_hw}: pass K_depth")
            depth = np.ascontiguousarray(depth)
            dmax = _max_depth(depth)
            if not dmax > 0:  # no valid depth pixel (> 0): nothing passes the depth test
                empty = np.zeros(0, dtype=np.float64)
                return np.zeros(0, dtype=np.int64), empty, empty.copy()
            if np.isfinite(dmax):  # |d - z| <= tol d needs z <= (1 + tol) d <= (1 + tol) max(depth)
                zmax = dmax * (1.0 + tolerance) * (1.0 + 1e-6)
        idx = self.candidates(T, Kc, (H, W), border, zmax)
        if len(idx) <= self.chunk:
            return self._exact(idx, T, Kc, Kd, (H, W), border, depth, tolerance)
        parts = [
            self._exact(idx[i : i + self.chunk], T, Kc, Kd, (H, W), border, depth, tolerance)
            for i in range(0, len(idx), self.chunk)
        ]
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _exact(self, idx, T, Kc, Kd, hw, border, depth, tolerance):
        """The float64 operations of camera_points / project_camera / visible_mask, with the same result
        for every element, in fewer passes: ``rint(u) >= lo`` is tested as ``u >= lo - 0.5`` (``>`` when
        ``lo`` is odd: ties round to even), and a zero skew ``K[0, 1]`` is left out (it adds +-0)."""
        H, W = hw
        X0, X1, X2 = np.take(self.columns, idx, axis=1)
        z = _affine(X0, X1, X2, T[2])
        x = _affine(X0, X1, X2, T[0])
        y = _affine(X0, X1, X2, T[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / z  # only used where z > 0
            ok = z > 0
            u = _pixel(x, y, inv, Kc[0, 0], Kc[0, 1], Kc[0, 2])
            v = _pixel(y, None, inv, Kc[1, 1], 0.0, Kc[1, 2])
            _rint_within(ok, u, border, W - border - 1)
            _rint_within(ok, v, border, H - border - 1)
            if depth is None:
                return idx[ok], u[ok], v[ok]
            Hd, Wd = depth.shape
            ud = _pixel(x, y, inv, Kd[0, 0], Kd[0, 1], Kd[0, 2])
            vd = _pixel(y, None, inv, Kd[1, 1], 0.0, Kd[1, 2])
            _rint_within(ok, ud, 0, Wd - 1)
            _rint_within(ok, vd, 0, Hd - 1)
            flat = np.rint(vd, out=vd)
            flat *= Wd
            flat += np.rint(ud, out=ud)  # integer-valued float64: the flat offset is exact
            np.copyto(flat, 0.0, where=~ok)
        d = np.take(depth.reshape(-1), flat.astype(np.int64)).astype(np.float64)
        ok &= d > 0
        z -= d
        ok &= np.abs(z, out=z) <= tolerance * d  # |d - z| <= tol * d
        return idx[ok], u[ok], v[ok]


def _affine(X0: np.ndarray, X1: np.ndarray, X2: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``X0 * row[0] + X1 * row[1] + X2 * row[2] + row[3]``, left to right, as ``camera_points`` does."""
    out = X0 * row[0]
    out += X1 * row[1]
    out += X2 * row[2]
    out += row[3]
    return out


def _pixel(a: np.ndarray, b: np.ndarray | None, inv: np.ndarray, ka: float, kb: float, c: float) -> np.ndarray:
    """``(ka * a + kb * b) * inv + c`` (``ka * a * inv + c`` without ``b``), as ``project_camera`` does.

    ``kb * b`` is +-0 when ``kb == 0``: dropping it changes at most the sign of a zero, which ``+ c``
    erases unless ``c == 0`` -- then it is kept.
    """
    out = a * ka
    if b is not None and (kb != 0 or c == 0):
        out += b * kb
    out *= inv
    out += c
    return out


def _rint_within(ok: np.ndarray, u: np.ndarray, lo: int, hi: int) -> None:
    """``ok &= (lo <= rint(u)) & (rint(u) <= hi)`` without rounding: rint rounds half to even."""
    ok &= (np.greater_equal if lo % 2 == 0 else np.greater)(u, lo - 0.5)
    ok &= (np.less_equal if hi % 2 == 0 else np.less)(u, hi + 0.5)
