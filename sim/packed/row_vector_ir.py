"""Hand-written LLVM vector IR for the hot loop of the packed aggregation (a numba intrinsic).

Why IR
------
Written as numba loops, one destination row's edge loop keeps its plane accumulators in a
heap array: every edge then loads and stores each accumulator, and LLVM guards the
vectorised byte loop with run-time alias checks on every edge (the accumulator could
overlap the feature table).  Here the accumulators are SSA vector values (``<CH x i16>``
phi nodes) that stay in registers for the whole row, the feature bytes are one unaligned
vector load per edge, and the requantization and packing happen on the same registers
before one store.  The IR is target independent (LLVM picks AVX2 / AVX-512 / NEON
instructions), except on a CPU with AVX-512 VNNI: there, for 8-bit weights and chunks of 16
or 32 bytes, the sums are taken four edges at a time with ``vpdpbusd``
(:mod:`sim.packed.row_vnni_ir`); the result is the same.

Semantics (what :func:`row_chunk_packed` computes)
--------------------------------------------------
For destination row ``row``, bytes ``[c * CH, (c + 1) * CH)`` of the packed source rows
(``b``-bit lanes, ``P = 8 // b`` per byte, lane ``p`` of byte ``k`` in bits ``b*p ..``)::

    T[p, k] = sum_{e in [start, end)} ((xb[indices[e], k] >> (b * p)) & (2**b - 1)) * w[e]   (mod 2**16)
    code[p, k] = base + #{j < 2**b - 1 : T[p, k] >= t[j]}    (unsigned compare, binary search)
    yb[row, k] = sum_p code[p, k] << (b * p)                         (low 8 bits)

The caller guarantees that no ``T`` wraps (the weight-sum budget of
:mod:`sim.packed`) and that the codes fit in ``b`` bits; a threshold of ``0`` is
always reached and one above every possible ``T`` never, so the ``2**b - 1`` compares are
resolved with no per-row bookkeeping.  :func:`sim.packed.thresholds.level_thresholds` turns a
requantizer chain into such thresholds exactly.

Developer note: numba's on-disk cache of a kernel that calls this intrinsic is keyed on the
kernel's own source file, not on this one.  After editing this module,
:mod:`sim.packed.row_vnni_ir` or :mod:`sim.packed.llvm_ir`, delete ``sim/packed/__pycache__/*.nbi`` / ``*.nbc`` (and
``quagga/bench/__pycache__`` for the FP32 baseline), or a stale compiled kernel is used.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from sim.packed.llvm_ir import (I8, I16, I64, RowEdges, array_args, fit_int, splat, store_row,
                                switch_widths)
from sim.packed.row_vnni_ir import HOST_VNNI, VNNI_CHUNK_BYTES, vnni_plane_sums

__all__ = ["CHUNK_BYTES", "row_chunk_packed"]

#: chunk widths (bytes of a packed row per call) the intrinsic is built for
CHUNK_BYTES = (4, 8, 16, 32)

def _count_reached(builder: ir.IRBuilder, acc: ir.Value, tv: list[ir.Value], b: int,
                   base: ir.Value) -> ir.Value:
    """``base + #{j : acc >= tv[j]}`` per lane for ``2**b - 1`` non-decreasing thresholds, as
    a branch-free binary search: ``b`` compares, each against the threshold that the lane's
    earlier answers select (``2**d - 1`` vector selects at depth ``d``)."""
    vty = acc.type
    masks: list[ir.Value] = []
    code = base
    for d in range(b):
        step = 1 << (b - d)  # thresholds per subtree at depth d
        cands = [tv[k * step + step // 2 - 1] for k in range(1 << d)]
        for m in reversed(masks):  # deepest answer picks within pairs, the first answer last
            cands = [builder.select(m, cands[2 * k + 1], cands[2 * k]) for k in range(len(cands) // 2)]
        hit = builder.icmp_unsigned(">=", acc, cands[0])
        masks.append(hit)
        bit = ir.Constant(vty, [1 << (b - 1 - d)] * vty.count)
        code = builder.add(code, builder.select(hit, bit, ir.Constant(vty, [0] * vty.count)))
    return code


@intrinsic
def row_chunk_packed(typingctx, indices, w, xb, start, end, chunk, bits, chunk_bytes, t, base,
                     yb, row):
    """One chunk of one destination row: accumulate, requantize by thresholds, pack, store.

    Parameters (numba values)
    -------------------------
    indices : 1-d int array (E,)
        Edge sources (uint16 / int32 / int64).
    w : 1-d uint8 / uint16 array (E,)
        Edge-weight codes.
    xb : 2-d uint8 array (N_src, B), C-contiguous rows
        Packed source rows; ``B`` a multiple of ``chunk_bytes``.
    start, end : int
        The row's edge range.
    chunk : int
        Chunk index: bytes ``[chunk * CH, (chunk + 1) * CH)``.
    bits : int literal
        Lane width ``b`` in {1, 2, 4}.
    chunk_bytes : int
        ``CH``, one of :data:`CHUNK_BYTES` (each has its own code, selected by a switch
        once per call; any other value writes nothing).
    t : 1-d uint16 array (at least 2**b - 1,)
        Row thresholds.
    base : int
        Code of a lane below every threshold (offset binary).
    yb : 2-d uint8 array (N, B)
        Packed output; bytes ``[chunk * CH, (chunk + 1) * CH)`` of row ``row`` are written.
    row : int
        Output row.
    """
    if not isinstance(bits, types.IntegerLiteral) or not isinstance(chunk_bytes, types.Integer):
        return None
    b = bits.literal_value
    if b not in (1, 2, 4):
        return None
    planes = 8 // b
    lane_mask = (1 << b) - 1
    vnni = HOST_VNNI and w.dtype == types.uint8
    sig = types.void(indices, w, xb, start, end, chunk, bits, chunk_bytes, t, base, yb, row)

    def codegen(context, builder, signature, args):
        edges = RowEdges(context, builder, signature, args)
        thr, out = array_args(context, builder, signature, args, (8, 10))

        def chunk_of(ch):
            v8, v16 = ir.VectorType(I8, ch), ir.VectorType(I16, ch)
            offset = builder.mul(fit_int(builder, args[5], I64, True), ir.Constant(I64, ch))
            columns = edges.columns(offset)

            def edge(e, accs):
                wv = splat(builder, fit_int(builder, edges.weight(e), I16, False), v16)
                lanes = builder.zext(edges.load_source(columns, e, v8, 1), v16)
                new = []
                for p, acc in enumerate(accs):
                    u = builder.lshr(lanes, ir.Constant(v16, [b * p] * ch)) if p else lanes
                    if p < planes - 1:
                        u = builder.and_(u, ir.Constant(v16, [lane_mask] * ch))
                    new.append(builder.add(acc, builder.mul(u, wv)))
                return new

            if vnni and ch in VNNI_CHUNK_BYTES:
                accs = vnni_plane_sums(builder, edges, columns, ch, b)
            else:
                accs = edges.loop([ir.Constant(v16, [0] * ch)] * planes, edge)
            tv = [splat(builder, fit_int(builder, builder.load(
                      builder.gep(thr.data, [ir.Constant(I64, j)])), I16, False), v16)
                  for j in range(lane_mask)]
            base_v = splat(builder, fit_int(builder, args[9], I16, True), v16)
            codes = [_count_reached(builder, a, tv, b, base_v) for a in accs]
            packed = codes[0]
            for p in range(1, planes):
                packed = builder.or_(packed, builder.shl(codes[p], ir.Constant(v16, [b * p] * ch)))
            store_row(builder, out, args[11], offset, builder.trunc(packed, v8), 1)

        switch_widths(builder, fit_int(builder, args[7], I64, True), CHUNK_BYTES, chunk_of)
        return context.get_dummy_value()

    return sig, codegen
