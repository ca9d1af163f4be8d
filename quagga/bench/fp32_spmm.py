"""Our own FP32 CSR SpMM, written with the technique of the packed integer kernel (a measured
baseline).

The integer row kernel (:mod:`sim.packed.row_vector_ir`) keeps its accumulators in vector
registers as SSA values of hand-written LLVM IR, reads narrow indices and one vector load
per edge.  :func:`row_sum_f32` is the same for FP32: the accumulator of a row chunk of
``CH`` floats is a ``<CH x float>`` phi node, each edge is one unaligned vector load of the
source row, a broadcast weight and one ``llvm.fma``, and the sum is stored once.  Indices
are read in whatever narrow dtype the caller passes (``uint16`` / ``int32``, as the integer
kernel reads them).

Kernels
-------
spmm_f32 : ``Y = A X`` (FP32 CSR SpMM) with register-resident rows
smp_prop_f32, smp_gap_f32 : one SMP step in two fused passes (propagation and combination)
spmm_f32_loop : the plain numba loop (accumulators in memory), kept as the reference form
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from sim.packed.llvm_ir import I64, RowEdges, array_args, fit_int, splat, store_row, switch_widths

__all__ = ["CHUNK_FLOATS", "smp_gap_f32", "smp_prop_f32", "spmm_f32", "spmm_f32_loop"]

#: chunk widths (floats of a row per intrinsic call)
CHUNK_FLOATS = (1, 2, 4, 8, 16, 32, 64)
_F32 = ir.FloatType()


@intrinsic
def row_sum_f32(typingctx, indices, w, x, start, end, col0, chunk, out, out_row):
    """``out[out_row, col0:col0+CH] = sum_{e in [start, end)} w[e] * x[indices[e], col0:col0+CH]``
    with the ``<CH x float>`` accumulator in registers (``CH = chunk``, one of
    :data:`CHUNK_FLOATS`: each has its own code, selected by a switch once per call; any
    other value writes nothing).

    ``x`` and ``out`` are 2-d float32 arrays with contiguous rows; ``w`` float32 (E,);
    ``indices`` any integer dtype.  Each edge is ``acc = fma(x_row, splat(w_e), acc)``, in
    edge order.
    """
    if not isinstance(chunk, types.Integer):
        return None
    sig = types.void(indices, w, x, start, end, col0, chunk, out, out_row)

    def codegen(context, builder, signature, args):
        edges = RowEdges(context, builder, signature, args)
        dst, = array_args(context, builder, signature, args, (7,))
        col_bytes = builder.mul(fit_int(builder, args[5], I64, True), ir.Constant(I64, 4))
        columns = edges.columns(col_bytes)

        def chunk_of(ch):
            vf = ir.VectorType(_F32, ch)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vf, [vf, vf, vf]),
                                                 f"llvm.fma.v{ch}f32")

            def edge(e, accs):
                wv = splat(builder, edges.weight(e), vf)
                return [builder.call(fma, [edges.load_source(columns, e, vf, 4), wv, accs[0]])]

            acc, = edges.loop([ir.Constant(vf, [0.0] * ch)], edge)
            store_row(builder, dst, args[8], col_bytes, acc, 4)

        switch_widths(builder, fit_int(builder, args[6], I64, True), CHUNK_FLOATS, chunk_of)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _chunk_width(f):
    """Widest chunk of :data:`CHUNK_FLOATS` that divides ``f``."""
    for cw in (64, 32, 16, 8, 4, 2):
        if f % cw == 0:
            return cw
    return 1


@njit(cache=True, inline="always")
def _row_sum(indices, w, x, start, end, cw, n_chunks, out, out_row):
    """One row's sum over all chunks of ``cw`` floats."""
    for c in range(n_chunks):
        row_sum_f32(indices, w, x, start, end, c * cw, cw, out, out_row)


@njit(cache=True, parallel=True)
def spmm_f32(indptr, indices, w, x, block):
    """FP32 CSR SpMM ``Y = A X`` with each row's accumulators in vector registers.

    Shapes: ``indptr`` int64 (N + 1,), ``indices`` (E,) uint16 / int32 / int64, ``w`` float32
    (E,), ``x`` float32 (N_src, F) C-contiguous; returns float32 (N, F).  Each row is summed in
    edge order with fused multiply-adds.
    """
    n_rows = indptr.shape[0] - 1
    f = x.shape[1]
    y = np.empty((n_rows, f), dtype=np.float32)
    cw = _chunk_width(f)
    n_chunks = f // cw
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            _row_sum(indices, w, x, indptr[i], indptr[i + 1], cw, n_chunks, y, i)
    return y


@njit(cache=True, parallel=True)
def smp_prop_f32(indptr, indices, w, xk, h0, teleport, block):
    """First pass of one SMP step: ``p = A x_k`` (registers), then per row
    ``xt = (1 - a) p + a h0`` and ``g = xt - x_k``.  Returns ``(xt, g)`` float32 (N, F).
    With ``g`` unused this is also one APPNP step (``xt``)."""
    n_rows = indptr.shape[0] - 1
    f = xk.shape[1]
    xt = np.empty((n_rows, f), dtype=np.float32)
    g = np.empty((n_rows, f), dtype=np.float32)
    cw = _chunk_width(f)
    n_chunks = f // cw
    a = np.float32(teleport)
    a1 = np.float32(1.0) - a
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        tmp = np.empty((1, f), dtype=np.float32)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            _row_sum(indices, w, xk, indptr[i], indptr[i + 1], cw, n_chunks, tmp, 0)
            for k in range(f):
                v = a1 * tmp[0, k] + a * h0[i, k]
                xt[i, k] = v
                g[i, k] = v - xk[i, k]
    return xt, g


@njit(cache=True, parallel=True)
def smp_gap_f32(indptr, indices, w, g, xt, coef, paper_code, block):
    """Second pass of one SMP step: ``pg = A g`` (registers), then per row
    ``x_{k+1} = xt + c (pg - g)`` (``xt + c pg`` with ``paper_code``).  Returns float32 (N, F)."""
    n_rows = indptr.shape[0] - 1
    f = g.shape[1]
    y = np.empty((n_rows, f), dtype=np.float32)
    cw = _chunk_width(f)
    n_chunks = f // cw
    c = np.float32(coef)
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        tmp = np.empty((1, f), dtype=np.float32)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            _row_sum(indices, w, g, indptr[i], indptr[i + 1], cw, n_chunks, tmp, 0)
            if paper_code:
                for k in range(f):
                    y[i, k] = xt[i, k] + c * tmp[0, k]
            else:
                for k in range(f):
                    y[i, k] = xt[i, k] + c * (tmp[0, k] - g[i, k])
    return y


@njit(cache=True, parallel=True)
def spmm_f32_loop(indptr, indices, w, x, block):
    """FP32 CSR SpMM as a plain numba loop with the accumulator row in memory (the form
    :func:`spmm_f32` replaces; kept for comparison).  Same shapes as :func:`spmm_f32`."""
    n_rows = indptr.shape[0] - 1
    f = x.shape[1]
    y = np.empty((n_rows, f), dtype=np.float32)
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        acc = np.zeros(f, dtype=np.float32)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            acc[:] = 0
            for e in range(indptr[i], indptr[i + 1]):
                we = w[e]
                src = indices[e]
                for k in range(f):
                    acc[k] += x[src, k] * we
            for k in range(f):
                y[i, k] = acc[k]
    return y
