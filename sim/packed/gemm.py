"""Linear layers of integer codes computed exactly in float BLAS (a proven bound on the
accumulators), then requantized."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sim.exact.kernels import requant_1


#: a GEMM of at most this many multiply-adds runs as the int32 loop nest
#: (:func:`linear_requant_i32`): multi-threaded BLAS on small shapes costs more in thread
#: start-up and barriers than the arithmetic (on a shared 2-vCPU guest, 28 ms instead of
#: 0.23 ms single-threaded for 11758 x 10 x 64)
SMALL_GEMM_MACS = 1 << 25
#: int32 accumulators hold every partial sum of magnitude below this
_I32_EXACT = 1 << 31

#: float32 / float64 represent every integer of magnitude up to 2**24 / 2**53 exactly
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


def exact_gemm_dtype(k: int, x_absmax: int, w_absmax: int):
    """The narrowest float dtype in which a GEMM of integer codes is exact, or None.

    Parameters
    ----------
    k : int
        Inner dimension (input features).
    x_absmax, w_absmax : int
        Largest magnitude of a centred input code ``x - z_x`` and of a centred weight code.

    Returns
    -------
    numpy.float32, numpy.float64 or None
        ``float32`` when ``B = k * x_absmax * w_absmax < 2**24``, ``float64`` when
        ``B < 2**53``, None otherwise.

    Notes
    -----
    Why this is exact, in any summation order: every product ``x_t w_t`` is an integer of
    magnitude at most ``x_absmax * w_absmax <= B``, and every partial sum a GEMM forms (any
    blocking, any number of accumulators, fused multiply-add or not) is a sum of a subset of
    the ``k`` products, an integer of magnitude at most ``B``.  Below the dtype's exact-integer
    bound each such value is representable, so no operation rounds and the float result is
    the integer dot product itself.  The BLAS behind numpy's ``@`` therefore returns
    :func:`quant.reference.linear_accumulate` (before the bias) exactly.
    """
    bound = int(k) * int(x_absmax) * int(w_absmax)
    if bound < _F32_EXACT:
        return np.float32
    if bound < _F64_EXACT:
        return np.float64
    return None


def gemm_exact_float(x, x_zero, wt_float, xbuf=None, out=None):
    """``(x - x_zero) @ wt`` of integer codes, computed exactly in float BLAS.

    Parameters
    ----------
    x : int (N, K) codes
    x_zero : int
    wt_float : float32 or float64 (K, C)
        Centred weight codes ``(w - w_zero).T`` in the dtype :func:`exact_gemm_dtype` chose
        for this layer and input.
    xbuf, out : optional (N, K) and (N, C) arrays of ``wt_float.dtype``
        Scratch for the centred input and the result (allocated when not given).

    Returns
    -------
    (N, C) array of ``wt_float.dtype`` holding integers: the exact accumulators (no bias).
    The caller must have checked :func:`exact_gemm_dtype` for the actual ``max|x - x_zero|``.
    """
    xf = np.empty(x.shape, dtype=wt_float.dtype) if xbuf is None else xbuf
    _centred_float_into(x, x_zero, xf)
    return np.matmul(xf, wt_float, out=out)


def linear_requant_exact(x, x_zero, wt_float, bias, m, n, z, qmin, qmax,
                         chunk_rows=16384):
    """A linear layer with requantization, ``requant((x - x_zero) @ wt + bias)``, in float
    BLAS on row chunks: int16 (N, C) codes out.

    Each chunk of ``chunk_rows`` rows goes through :func:`gemm_exact_float` with reused float
    buffers (exact under :func:`exact_gemm_dtype`'s bound, which the caller has checked) and
    is requantized (:func:`requant_float_acc_i16`) into the output.  The buffers
    stay in cache and are allocated once, instead of two (N, K) / (N, C) float arrays that
    are page-faulted in on every call.
    """
    rows, k = x.shape
    c = wt_float.shape[1]
    out = np.empty((rows, c), dtype=np.int16)
    step = max(1, min(int(chunk_rows), rows))
    xbuf = np.empty((step, k), dtype=wt_float.dtype)
    abuf = np.empty((step, c), dtype=wt_float.dtype)
    for i0 in range(0, rows, step):
        r = min(step, rows - i0)
        acc = gemm_exact_float(x[i0:i0 + r], x_zero, wt_float, xbuf[:r], abuf[:r])
        out[i0:i0 + r] = requant_float_acc_i16(acc, bias, m, n, z, qmin, qmax)
    return out


@njit(cache=True, parallel=True)
def _centred_float_into(x, x_zero, out):
    """``out[:] = x - x_zero`` (float; exact: small integers)."""
    rows, k = x.shape
    for i in prange(rows):
        for t in range(k):
            out[i, t] = np.int64(x[i, t]) - x_zero


@njit(cache=True, parallel=True)
def requant_float_acc_i16(acc, bias, m, n, z, qmin, qmax):
    """``clamp(round_shift((acc + bias) * m, n) + z, qmin, qmax)`` of integer-valued float
    accumulators (:func:`gemm_exact_float`), int16 (N, C) codes out; rows in parallel.
    ``acc`` holds exact integers, so the conversion to int64 is exact."""
    rows, c = acc.shape
    y = np.empty((rows, c), dtype=np.int16)
    for i in prange(rows):
        for j in range(c):
            y[i, j] = requant_1(np.int64(acc[i, j]) + bias[j], m, n, z, qmin, qmax)
    return y


def int32_gemm_exact(k: int, x_absmax: int, w_absmax: int) -> bool:
    """Whether :func:`linear_requant_i32` is exact: every partial sum of ``k`` products is an
    integer of magnitude at most ``k * x_absmax * w_absmax``, which must be below 2**31."""
    return int(k) * int(x_absmax) * int(w_absmax) < _I32_EXACT


@njit(cache=True, parallel=True)
def linear_requant_i32(x, x_zero, wt, bias, m, n, z, qmin, qmax, block):
    """A linear layer with requantization as an int32 loop nest: int16 (N, C) codes
    ``requant((x - x_zero) @ wt + bias)``.

    ``x`` int (N, K) codes; ``wt`` int32 (K, C) centred weight codes ``(w - w_zero).T``;
    ``bias`` int64 (C,).  Each row's ``C`` accumulators are int32 lanes updated by one
    broadcast input code per ``k`` (LLVM vectorises the ``C`` loop); exact when
    :func:`int32_gemm_exact` holds (no partial sum can leave int32), the bias is added in
    int64.  Rows in parallel blocks of ``block``.
    """
    rows, k = x.shape
    c = wt.shape[1]
    y = np.empty((rows, c), dtype=np.int16)
    xz = np.int32(x_zero)
    n_blocks = (rows + block - 1) // block
    for b in prange(n_blocks):
        acc = np.empty(c, dtype=np.int32)
        for i in range(b * block, min(rows, (b + 1) * block)):
            for j in range(c):
                acc[j] = 0
            for t in range(k):
                xv = np.int32(x[i, t]) - xz
                for j in range(c):
                    acc[j] += xv * wt[t, j]
            for j in range(c):
                y[i, j] = requant_1(np.int64(acc[j]) + bias[j], m, n, z, qmin, qmax)
    return y
