"""Our own FP32 propagation for narrow rows, sixteen edges per vector (a measured baseline).

The integer SMP step on rows of a few packed bytes (:mod:`sim.packed.msg_gather`,
:mod:`sim.packed.smp_step`) processes sixteen edges of a row at once: vector loads of their
indices and weights, a gather of their source rows, and one fused pass per propagation
with the step's combinations in the row epilogue.  This module is the same technique in
FP32, so the FP32 baseline is not left with a slower loop: :func:`row_sums_f32_gather` loads
sixteen indices and weights, gathers each feature ``l`` of the sixteen source rows (one
``vgatherdps`` with AVX-512) and adds ``w * x`` with one ``llvm.fma`` into a
``<16 x float>`` accumulator per feature; the sixteen partial sums of each feature are added
at the end of the row.  :func:`smp_prop_f32_gather` / :func:`smp_gap_f32_gather` are the two
fused passes of one SMP step, as :func:`quagga.bench.fp32_spmm.smp_prop_f32` /
``smp_gap_f32``.  The tests compare them with ``torch.sparse.mm`` to float tolerance.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from sim.packed.llvm_ir import I32, VECTOR_EDGES, EdgeVectors, array_args, store_lane_sums

__all__ = ["GATHER_MAX_FEATURES", "row_sums_f32_gather", "smp_gap_f32_gather",
           "smp_prop_f32_gather", "spmm_f32_gather"]

#: widest rows (features) the gather kernels take; wider rows use the row-vector kernels
GATHER_MAX_FEATURES = 16
_F32 = ir.FloatType()


@intrinsic
def row_sums_f32_gather(typingctx, indices, w, x, start, end, n_feat, out):
    """``out[l] = sum_{e in [start, end)} w[e] * x[indices[e], l]`` for ``l < n_feat``.

    ``x`` float32 (N, F) C-contiguous (``F = n_feat``, an integer literal up to
    :data:`GATHER_MAX_FEATURES`); ``w`` float32 (E,); ``indices`` uint16 / int32 / int64;
    ``out`` float32 (at least F,).  Each feature keeps sixteen partial sums (edges ``e`` with
    the same ``e - start`` mod 16), summed at the end.
    """
    if not isinstance(n_feat, types.IntegerLiteral):
        return None
    nf = n_feat.literal_value
    if not 0 < nf <= GATHER_MAX_FEATURES:
        return None
    sig = types.void(indices, w, x, start, end, n_feat, out)

    def codegen(context, builder, signature, args):
        ind, wts, xa, outa = array_args(context, builder, signature, args, (0, 1, 2, 6))
        ev = EdgeVectors(builder, ind, signature.args[0].dtype, xa.data, args[3], args[4], _F32,
                         4, nf)
        fma = cgutils.get_or_insert_function(builder.module,
                                             ir.FunctionType(ev.velt, [ev.velt] * 3),
                                             f"llvm.fma.v{VECTOR_EDGES}f32")

        def edges(e, mask, accs):
            rows = ev.rows(e, mask)
            wv = builder.bitcast(ev.load(wts.data, e, I32, mask), ev.velt)
            return [builder.call(fma, [ev.gather(rows, l, mask), wv, acc])
                    for l, acc in enumerate(accs)]

        store_lane_sums(builder, outa.data, ev.loop([ev.zero] * nf, edges))
        return context.get_dummy_value()

    return sig, codegen


_KERNELS: dict = {}
#: what :func:`_kernel` does after each row sum ``s = (A x)_i``
_SPMM, _PROP, _GAP_PAPER, _GAP = 0, 1, 2, 3


def _kernel(f: int, mode: int):
    """One pass over the rows compiled for ``f`` features and one row epilogue (the
    intrinsic needs ``f`` as a constant; ``mode`` picks the epilogue at compile time).

    The compiled function takes ``(indptr, indices, w, x, h, coef, block)`` and returns
    ``(y, g)``: with ``s`` the row sum of ``x``, ``y = s`` (``_SPMM``); ``y = (1 - c) s + c h``
    and ``g = y - x`` (``_PROP``, ``c`` the teleport, ``h = h0``); ``y = h + c s``
    (``_GAP_PAPER``) or ``y = h + c (s - x)`` (``_GAP``, ``h = xt``).  ``g`` is empty except
    for ``_PROP``.
    """
    k = _KERNELS.get((f, mode))
    if k is not None:
        return k
    F, MODE = f, mode  # noqa: N806 - constants of the compiled closure

    def rows(indptr, indices, w, x, h, coef, block):
        n_rows = indptr.shape[0] - 1
        y = np.empty((n_rows, F), dtype=np.float32)
        g = np.empty((n_rows if MODE == _PROP else 0, F), dtype=np.float32)
        n_blocks = (n_rows + block - 1) // block
        c = np.float32(coef)
        c1 = np.float32(1.0) - c
        for b in prange(n_blocks):
            s = np.empty(F, dtype=np.float32)
            for i in range(b * block, min(n_rows, (b + 1) * block)):
                row_sums_f32_gather(indices, w, x, indptr[i], indptr[i + 1], F, s)
                for k in range(F):
                    if MODE == _SPMM:
                        y[i, k] = s[k]
                    elif MODE == _PROP:
                        v = c1 * s[k] + c * h[i, k]
                        y[i, k] = v
                        g[i, k] = v - x[i, k]
                    elif MODE == _GAP_PAPER:
                        y[i, k] = h[i, k] + c * s[k]
                    else:
                        y[i, k] = h[i, k] + c * (s[k] - x[i, k])
        return y, g

    k = _KERNELS[(f, mode)] = njit(parallel=True)(rows)
    return k


def spmm_f32_gather(indptr, indices, w, x, block=64):
    """``Y = A X`` for float32 (N, F) ``x``, F up to :data:`GATHER_MAX_FEATURES`; shapes as
    :func:`quagga.bench.fp32_spmm.spmm_f32`."""
    x = np.ascontiguousarray(x)
    return _kernel(x.shape[1], _SPMM)(indptr, indices, w, x, x, 0.0, block)[0]


def smp_prop_f32_gather(indptr, indices, w, xk, h0, teleport, block=64):
    """First pass of one SMP step (``xt = (1 - a) A x_k + a h0``, ``g = xt - x_k``) with the
    gather kernel; as :func:`quagga.bench.fp32_spmm.smp_prop_f32`."""
    return _kernel(xk.shape[1], _PROP)(indptr, indices, w, np.ascontiguousarray(xk), h0,
                                       teleport, block)


def smp_gap_f32_gather(indptr, indices, w, g, xt, coef, paper_code, block=64):
    """Second pass of one SMP step (``x_{k+1} = xt + c (A g - g)``) with the gather kernel; as
    :func:`quagga.bench.fp32_spmm.smp_gap_f32`."""
    mode = _GAP_PAPER if paper_code else _GAP
    return _kernel(g.shape[1], mode)(indptr, indices, w, np.ascontiguousarray(g), xt, coef,
                                     block)[0]
