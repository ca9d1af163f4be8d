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
def _aggregate_table(indptr, src, w, x, table, x_min, w_min, lo, hi, out):  # pragma: no cover - numba
    n, c = out.shape
    for i in range(n):
        for k in range(c):
            out[i, k] = 0
        for e in range(indptr[i], indptr[i + 1]):
            j = src[e]
            col = w[e] - w_min
            for k in range(c):
                s = out[i, k] + table[x[j, k] - x_min, col]
                if s > hi:
                    s = hi
                elif s < lo:
                    s = lo
                out[i, k] = s


def aggregate_table(indptr: np.ndarray, src: np.ndarray, w: np.ndarray, x: np.ndarray,
                    table: np.ndarray, x_min: int, w_min: int, lo: int, hi: int) -> np.ndarray:
    """Saturating row sums of looked-up messages (module docstring).

    Parameters
    ----------
    indptr : (N + 1,) int64 destination-sorted CSR row pointers
    src : (E,) int64 source of each edge
    w : (E,) int64 edge codes, in ``[w_min, w_min + table.shape[1])``
    x : (N_src, C) int64 node codes, in ``[x_min, x_min + table.shape[0])``
    table : (Lx, Lw) int64 message of each pair of codes (centred)
    x_min, w_min : int
        The smallest code of each operand (row / column 0 of ``table``).
    lo, hi : int
        The accumulator range.

    Returns
    -------
    (N, C) int64 accumulators.
    """
    out = np.empty((indptr.shape[0] - 1, x.shape[1]), dtype=np.int64)
    _aggregate_table(indptr, src, w, np.ascontiguousarray(x), np.ascontiguousarray(table),
                     int(x_min), int(w_min), int(lo), int(hi), out)
    return out
