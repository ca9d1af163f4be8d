"""numba kernels of the functional simulator.

Every kernel takes plain integer arguments (numba freezes globals at compile time) and
computes in int64 explicitly.  ``cache=True`` keeps compiled kernels across processes.
The Python-facing wrappers, with validation, live in :mod:`sim.exact.functional`.

Kernels
-------
aggregate_exact
    One propagation step with the exact semantics of :func:`quant.aggregate.aggregate_reference`
    (per edge product, optional message requantization, saturating accumulation with a count,
    per row requantization, optional update requantization).  Rows in parallel.
requantize_2d
    ``clamp(round_shift(v * M, n) + z, qmin, qmax)`` over a 2-D int64 array.
gemm_i64
    Integer GEMM ``(x - zx) @ (w - zw).T + b`` in int64.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["add_requantize_2d", "add_requantize_into", "aggregate_exact", "argmax_rows", "gemm_i64", "requantize_2d",
           "round_shift_1"]


@njit(cache=True, inline="always")
def round_shift_1(v: np.int64, n: np.int64) -> np.int64:
    """``round_shift`` of :mod:`quant.reference` on one int64 (half up, arithmetic shift)."""
    if n > 0:
        return (v + (np.int64(1) << (n - 1))) >> n
    if n < 0:
        return v << (-n)
    return v


@njit(cache=True, inline="always")
def requant_1(v: np.int64, m: np.int64, n: np.int64, z: np.int64, qmin: np.int64,
              qmax: np.int64) -> np.int64:
    """One requantization ``clamp(round_shift(v * m, n) + z, qmin, qmax)`` in int64."""
    r = round_shift_1(v * m, n) + z
    if r < qmin:
        return qmin
    if r > qmax:
        return qmax
    return r


@njit(cache=True, inline="always")
def sat_add(acc: np.int64, p: np.int64, lo: np.int64, hi: np.int64):
    """Saturating accumulate: ``(clamp(acc + p, lo, hi), 1 if clamped else 0)``."""
    s = acc + p
    if s > hi:
        return hi, 1
    if s < lo:
        return lo, 1
    return s, 0


@njit(cache=True, parallel=True)
def aggregate_exact(indptr, indices, w, x, x_zero, w_zero, acc_lo, acc_hi,
                    msg_on, msg_m, msg_n, msg_z, msg_qmin, msg_qmax,
                    out_on, out_m, out_n, out_z, out_qmin, out_qmax,
                    upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax):
    """Exact propagation step (see :mod:`quant.aggregate` for the semantics).

    Parameters
    ----------
    indptr : int64 (N + 1,); indices : int64 (E,); w : int64 (E,) edge-weight codes
    x : int64 (N_src, F) feature codes
    x_zero, w_zero, acc_lo, acc_hi : int
        Zero points and the accumulator range ``[acc_lo, acc_hi]``.
    msg_on, out_on, upd_on : bool
        Stage switches; with ``out_on`` False the raw accumulators are returned
        (the caller requantizes them) and the update stage is skipped.
    *_m, *_n, *_z, *_qmin, *_qmax : int
        Multiplier, shift, zero point and code range of each requantizer.

    Returns
    -------
    y : int64 (N, F)
        Output codes (or accumulators when ``out_on`` is False).
    sats : int64 (N,)
        Saturation events per row (one per lane and edge whose add was clamped).
    """
    n_rows = indptr.shape[0] - 1
    n_feat = x.shape[1]
    y = np.empty((n_rows, n_feat), dtype=np.int64)
    sats = np.zeros(n_rows, dtype=np.int64)
    for i in prange(n_rows):
        acc = np.zeros(n_feat, dtype=np.int64)
        cnt = np.int64(0)
        for e in range(indptr[i], indptr[i + 1]):
            src = indices[e]
            wc = np.int64(w[e]) - w_zero
            for l in range(n_feat):
                p = (np.int64(x[src, l]) - x_zero) * wc
                if msg_on:
                    p = requant_1(p, msg_m, msg_n, msg_z, msg_qmin, msg_qmax) - msg_z
                acc[l], c = sat_add(acc[l], p, acc_lo, acc_hi)
                cnt += c
        sats[i] = cnt
        for l in range(n_feat):
            v = acc[l]
            if out_on:
                v = requant_1(v, out_m, out_n, out_z, out_qmin, out_qmax)
                if upd_on:
                    v = requant_1(v - out_z, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
            y[i, l] = v
    return y, sats


@njit(cache=True, parallel=True)
def requantize_2d(v, m, n, z, qmin, qmax):
    """Requantize an int64 (R, C) array elementwise; returns int64 (R, C)."""
    out = np.empty(v.shape, dtype=np.int64)
    for i in prange(v.shape[0]):
        for j in range(v.shape[1]):
            out[i, j] = requant_1(np.int64(v[i, j]), m, n, z, qmin, qmax)
    return out


@njit(cache=True, parallel=True)
def gemm_i64(x, x_zero, w, w_zero, bias, has_bias):
    """Integer GEMM ``(x - x_zero) @ (w - w_zero).T (+ bias)`` exactly in int64.

    Shapes: ``x`` (N, K), ``w`` (C, K), ``bias`` (C,); returns int64 (N, C).
    """
    n, k = x.shape
    c = w.shape[0]
    wc = np.empty((k, c), dtype=np.int64)
    for j in range(c):
        for t in range(k):
            wc[t, j] = np.int64(w[j, t]) - w_zero
    out = np.empty((n, c), dtype=np.int64)
    for i in prange(n):
        row = np.zeros(c, dtype=np.int64)
        for t in range(k):
            xv = np.int64(x[i, t]) - x_zero
            if xv != 0:
                for j in range(c):
                    row[j] += xv * wc[t, j]
        if has_bias:
            for j in range(c):
                row[j] += np.int64(bias[j])
        out[i] = row
    return out



@njit(cache=True, parallel=True)
def add_requantize_into(a, a_zero, a_mult, b, b_zero, b_mult, shift, z, qmin, qmax, out):
    """``out[:] = clamp(round_shift((a-za)*Ma + (b-zb)*Mb, n) + z, qmin, qmax)`` over (R, C)
    arrays (the SMP/APPNP combination step of :func:`quant.reference.add_requantize`), rows in
    parallel; ``out`` may be any integer dtype holding ``qmin..qmax``."""
    for i in prange(a.shape[0]):
        for j in range(a.shape[1]):
            s = (np.int64(a[i, j]) - a_zero) * a_mult + (np.int64(b[i, j]) - b_zero) * b_mult
            out[i, j] = requant_1(s, 1, shift, z, qmin, qmax)
    return out


def add_requantize_2d(a, a_zero, a_mult, b, b_zero, b_mult, shift, z, qmin, qmax):
    """:func:`add_requantize_into` with an int64 (R, C) result."""
    return add_requantize_into(a, a_zero, a_mult, b, b_zero, b_mult, shift, z, qmin, qmax,
                               np.empty(a.shape, dtype=np.int64))


@njit(cache=True, parallel=True)
def argmax_rows(q):
    """Index of the first largest value of each row of an int64 (N, C) array; int64 (N,)."""
    n, c = q.shape
    out = np.empty(n, dtype=np.int64)  # set for every row below
    for i in prange(n):
        best = q[i, 0] if c else 0
        k = 0
        for j in range(1, c):
            if q[i, j] > best:
                best = q[i, j]
                k = j
        out[i] = k
    return out
