"""numba kernels of the integer-exact forward (CPU): one propagation op in one pass over the edges.

:func:`aggregate_table` computes, for every destination row ``i`` and channel ``c``, the
saturating sum over the row's edges, in CSR order, of ``table[x[src_e, c] - x_min, w_e - w_min]``
(the message of a pair of codes, looked up).  Each partial sum is clamped to the
accumulator range ``[lo, hi]``: that is the reference's edge-by-edge accumulation
(:func:`quant.aggregate.aggregate_reference`), and for rows whose partial sums never leave
the range (every row of a model whose accumulator is wide enough) it is the plain row sum.
Integers throughout, so the result does not depend on the order of evaluation.

The kernels run single-threaded (the trainer's thread count is its own) and are compiled on
first use and cached on disk by numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _aggregate_table(indptr, src, col, x, table_t, lo, hi, saturate, acc, out):  # pragma: no cover - numba
    n, c = out.shape
    for i in range(n):
        for k in range(c):
            acc[k] = 0
        for e in range(indptr[i], indptr[i + 1]):
            row = table_t[col[e]]
            xr = x[src[e]]
            if saturate:
                for k in range(c):
                    s = acc[k] + row[xr[k]]
                    acc[k] = hi if s > hi else (lo if s < lo else s)
            else:
                for k in range(c):
                    acc[k] += row[xr[k]]
        for k in range(c):
            out[i, k] = acc[k]


def aggregate_table(indptr: np.ndarray, src: np.ndarray, col: np.ndarray, x: np.ndarray,
                    table: np.ndarray, x_min: int, lo: int, hi: int, max_degree: int) -> np.ndarray:
    """Saturating row sums of looked-up messages (module docstring).

    Parameters
    ----------
    indptr : (N + 1,) int64 destination-sorted CSR row pointers
    src : (E,) int32 or int64 source of each edge
    col : (E,) int32 column of each edge's code in ``table`` (edge code minus the smallest code)
    x : (N_src, C) integer node codes, in ``[x_min, x_min + table.shape[0])``
    table : (Lx, Lw) int64 message of each pair of codes (centred)
    x_min : int
        The smallest node code (row 0 of ``table``).
    lo, hi : int
        The accumulator range.
    max_degree : int
        The largest row length: below ``max_degree * max |message| <= min(hi, -lo)`` no
        partial sum can leave the range, and the clamp is skipped.

    Returns
    -------
    (N, C) int64 accumulators.
    """
    out = np.empty((indptr.shape[0] - 1, x.shape[1]), dtype=np.int64)
    table_t = np.ascontiguousarray(table.T)
    saturate = int(max_degree) * int(np.abs(table).max(initial=0)) > min(int(hi), -int(lo))
    _aggregate_table(indptr, src, col, np.ascontiguousarray(x - x_min, dtype=np.int32), table_t,
                     int(lo), int(hi), bool(saturate), np.empty(x.shape[1], dtype=np.int64), out)
    return out


@njit(cache=True, nogil=True)
def _quantized_message_sum(indptr, src, w, x, s, z, qmin, qmax, want_cut, want_coef,
                           acc, acc_c, out, coef, cut):  # pragma: no cover - numba
    n, c = out.shape
    ncut = 0
    zero = np.float32(0.0)
    for i in range(n):
        for k in range(c):
            acc[k] = zero
            acc_c[k] = zero
        for e in range(indptr[i], indptr[i + 1]):
            xr = x[src[e]]
            we = w[e]
            for k in range(c):
                u = (xr[k] * we) / s
                v = u + z
                q = qmin if v < qmin else (qmax if v > qmax else v)
                clipped = v != q
                q = np.rint(q) - z
                acc[k] += q * s
                if want_coef:
                    acc_c[k] += q - (zero if clipped else u)
                if want_cut and clipped:
                    cut[ncut] = e * c + k
                    ncut += 1
        for k in range(c):
            out[i, k] = acc[k]
            if want_coef:
                coef[i, k] = acc_c[k]
    return ncut


def quantized_message_sum(indptr: np.ndarray, src: np.ndarray, w: np.ndarray, x: np.ndarray,
                          s: np.float32, z: np.float32, qmin: np.float32, qmax: np.float32,
                          want_cut: bool, want_coef: bool):
    """The forward of ``training.fused_message._forward_clip`` (half-even rounding, no
    truncation) in one pass over the edges, with the same float32 operations in the same
    order: per message ``m = x[src] * w``, ``u = m / s``, ``v = u + z``,
    ``q = rint(clamp(v, qmin, qmax)) - z``; each row's ``q * s`` and ``q - k u``
    (``k = [v inside the range]``) added in edge order starting from zero.

    Parameters
    ----------
    indptr : (N + 1,) int64; src : (E,) int32 or int64; w : (E,) float32; x : (N_src, C) float32
    s, z, qmin, qmax : float32 scale, zero point and code range
    want_cut, want_coef : bool
        Whether to return the clipped positions and the row sums of the scale-gradient
        coefficient.

    Returns
    -------
    out : (N, C) float32 row sums of the dequantized messages
    cut : (K,) int64 ascending flat positions ``e * C + c`` of the clipped messages, or None
    coef : (N, C) float32, or None
    """
    n, c = indptr.shape[0] - 1, x.shape[1]
    out = np.empty((n, c), dtype=np.float32)
    coef = np.empty((n, c) if want_coef else (0, c), dtype=np.float32)
    cut = np.empty(src.shape[0] * c if want_cut else 0, dtype=np.int64)
    k = _quantized_message_sum(indptr, src, w, np.ascontiguousarray(x), np.float32(s), np.float32(z),
                               np.float32(qmin), np.float32(qmax), bool(want_cut), bool(want_coef),
                               np.empty(c, dtype=np.float32), np.empty(c, dtype=np.float32),
                               out, coef, cut)
    return out, (cut[:k].copy() if want_cut else None), (coef if want_coef else None)
