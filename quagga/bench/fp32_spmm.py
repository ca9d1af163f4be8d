"""Our own FP32 CSR SpMM, written like the packed integer kernel (a measured baseline)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def spmm_f32(indptr, indices, w, x, block):
    """FP32 CSR SpMM ``Y = A X`` written like :func:`aggregate_planes` (our FP32 baseline).

    Shapes: ``indptr`` (N + 1,), ``indices`` (E,), ``w`` float32 (E,), ``x`` float32
    (N_src, F); returns float32 (N, F).  Each row is summed in edge order in float32.
    """
    n_rows = indptr.shape[0] - 1
    f = x.shape[1]
    y = np.empty((n_rows, f), dtype=np.float32)
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        acc = np.zeros(f, dtype=np.float32)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            for k in range(f):
                acc[k] = 0
            for e in range(indptr[i], indptr[i + 1]):
                we = w[e]
                src = indices[e]
                for k in range(f):
                    acc[k] += x[src, k] * we
            for k in range(f):
                y[i, k] = acc[k]
    return y
