"""Element-wise packed-runner kernels: the input quantizer, add-with-requantize and ReLU
over int16 code arrays."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sim.exact.kernels import add_requantize_into


#: rounding-mode numbers of :func:`quantize_f32_i16` (``quant.spec.Rounding`` values)
ROUNDING_CODES = {"half_even": 0, "half_up": 1, "floor": 2}


@njit(cache=True, parallel=True)
def quantize_f32_i16(x, scale, zero_point, qmin, qmax, mode, block):
    """Float features -> int16 codes, :func:`quant.reference.quantize` in one pass.

    ``clamp(R(x / s + z), qmin, qmax)`` with every operation rounded to float32 as the
    reference does (``np.float32`` after each division and addition; a float32 division or
    addition carried out in float64 and rounded once to float32 is the correctly rounded
    float32 result, since 53 >= 2 * 24 + 2).  ``R`` by ``mode`` (:data:`ROUNDING_CODES`):
    ties to even, ties up, or floor, from ``f = floor(v)`` and the exact fraction ``v - f``.

    Parameters
    ----------
    x : float32 (N, F)
    scale : float32
        Positive, finite (checked by the caller).
    zero_point, qmin, qmax, mode, block : int

    Returns
    -------
    codes : int16 (N, F)
    nonfinite : int
        Count of NaN / infinite inputs (their codes are undefined; the caller refuses them).
    """
    rows, f = x.shape
    out = np.empty((rows, f), dtype=np.int16)
    s = np.float32(scale)
    zf = np.float32(zero_point)
    lo = np.float32(qmin)
    hi = np.float32(qmax)
    half = np.float32(0.5)
    n_blocks = (rows + block - 1) // block
    bad = np.empty(n_blocks, dtype=np.int64)  # set for every block below
    for b in prange(n_blocks):
        nb = 0
        for i in range(b * block, min(rows, (b + 1) * block)):
            for j in range(f):
                xv = x[i, j]
                if not np.isfinite(xv):
                    nb += 1
                    out[i, j] = 0
                    continue
                v = np.float32(np.float32(xv / s) + zf)
                fl = np.float32(np.floor(v))
                if mode != 2:
                    d = np.float32(v - fl)
                    if d > half:
                        fl = np.float32(fl + np.float32(1.0))
                    elif d == half:
                        if mode == 1 or (np.int64(fl) & 1) == 1:
                            fl = np.float32(fl + np.float32(1.0))
                if fl < lo:
                    fl = lo
                elif fl > hi:
                    fl = hi
                out[i, j] = np.int16(fl)
        bad[b] = nb
    n_bad = 0
    for b in range(n_blocks):  # a plain loop: no second parallel region
        n_bad += bad[b]
    return out, n_bad


def add_requant_i16(a, a_zero, a_mult, b, b_zero, b_mult, shift, z, qmin, qmax):
    """``clamp(round_shift((a-za)*Ma + (b-zb)*Mb, n) + z, qmin, qmax)`` over (R, C) code
    arrays (:func:`quant.reference.add_requantize`), int16 out
    (:func:`sim.exact.kernels.add_requantize_into`)."""
    return add_requantize_into(a, a_zero, a_mult, b, b_zero, b_mult, shift, z, qmin, qmax,
                               np.empty(a.shape, dtype=np.int16))


@njit(cache=True, parallel=True)
def relu_i16(q, z):
    """``max(q, z)`` over an (R, C) code array, int16 out; rows in parallel."""
    rows, c = q.shape
    out = np.empty((rows, c), dtype=np.int16)
    for i in prange(rows):
        for j in range(c):
            v = np.int64(q[i, j])
            out[i, j] = v if v > z else z
    return out
