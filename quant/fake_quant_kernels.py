"""numba kernels of the LSQ fake quantizer (:class:`quant.quantizers._LearnedStepFake`) on the CPU.

The fake quantizer's forward is seven element-wise tensor ops and its backward about
fifteen; on the ``(N, C)`` stages of a deep propagation each op is a pass over a tensor of a
few hundred kilobytes, so their count, not their arithmetic, is the time.  These kernels do
each direction in one pass, with the float32 operations of the tensor ops, one by one and in
their order, so the values are the same bits:

forward, per element (``s``, ``z`` float32, ``qmin``, ``qmax`` integral float32)::

    v = x / s + z;  v = clamp(v, qmin, qmax);  q = R(v);  q = T(q);  out = (q - z) * s

with ``R`` the spec's rounding (``rint``: ties to even; ``floor(v) + [v - floor(v) >= 0.5]``;
``floor``) and ``T`` BT's truncation of an 8-bit code to four levels (identity without BT),
``clamp(85 floor((q + skew + 42) / 85), 0, 255)``: every step of it is exact in float32
(integers below ``2**24``, and a quotient ``t / 85`` of an integer ``t`` in ``[-85, 424]``
is never rounded across an integer), so it equals the table
:func:`quant.quantizers._truncation_table` on every code and skew (tested exhaustively), and
it vectorises where a table lookup does not;

backward, per element (``g`` the incoming gradient, ``q`` the saved codes)::

    xs = x / s;  v = xs + z;  keep = qmin <= v <= qmax
    gv = keep ? g * s : 0;  gx = gv / s
    t1 = g * (q - z);  t2 = (-gv) * (xs / s)

and the caller takes ``sum(t1) + sum(t2)`` with torch's own reductions on tensors of the
composite's shape and layout (contiguous), so the reduction order, and the gradient of
``s``, are those of the composite too.  Every scalar reaches the kernels as ``np.float32``:
numba then does each operation in float32, as torch does (IEEE, no fast-math).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quant.truncation import BT_STEP

__all__ = ["ROUND_FLOOR", "ROUND_HALF_EVEN", "ROUND_HALF_UP", "fake_backward", "fake_forward"]

#: rounding codes of the kernels
ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_FLOOR = 0, 1, 2


@njit(cache=True, nogil=True)
def fake_forward(x, s, z, qmin, qmax, rounding, truncate, skew, out, codes):  # pragma: no cover - numba
    """Fake-quantize ``x`` (float32 (n,)) into ``out`` (float32 (n,)) and its codes into
    ``codes`` (uint8 or int8 (n,)); ``s``, ``z``, ``qmin``, ``qmax`` float32 scalars,
    ``rounding`` one of the ``ROUND_*`` codes; ``truncate``: apply BT's truncation with
    ``skew`` (an int in ``[-127, 127]``; codes in ``[0, 255]``)."""
    offset = np.float32(skew + BT_STEP // 2)
    step = np.float32(BT_STEP)
    top = np.float32(255.0)
    zero = np.float32(0.0)
    for i in range(x.shape[0]):
        v = x[i] / s + z
        if v < qmin:
            v = qmin
        elif v > qmax:
            v = qmax
        if rounding == 0:
            q = np.rint(v)
        elif rounding == 1:
            f = np.floor(v)
            q = f + np.float32(1.0) if v - f >= np.float32(0.5) else f + np.float32(0.0)
        else:
            q = np.floor(v)
        if truncate:
            q = np.floor((q + offset) / step) * step
            q = zero if q < zero else (top if q > top else q)
        codes[i] = np.int64(q)
        out[i] = (q - z) * s


@njit(cache=True, nogil=True)
def fake_backward(x, g, codes, s, z, qmin, qmax, need_x, gx, t1, t2):  # pragma: no cover - numba
    """The backward's element-wise part (module docstring): ``gx`` (when ``need_x``), ``t1``
    and ``t2``, float32 (n,) each, from ``x``, ``g`` float32 (n,) and ``codes`` (n,)."""
    zero = np.float32(0.0)
    for i in range(x.shape[0]):
        xs = x[i] / s
        v = xs + z
        gi = g[i]
        gv = gi * s if (v >= qmin and v <= qmax) else zero
        if need_x:
            gx[i] = gv / s
        t1[i] = gi * (np.float32(codes[i]) - z)
        t2[i] = (-gv) * (xs / s)
