"""The plane sums of one packed row chunk on the int8 dot-product instruction (AVX-512 VNNI).

What it computes
----------------
For a destination row with edges ``[start, end)`` and a chunk of ``CH`` bytes (``CH`` in
:data:`VNNI_CHUNK_BYTES`) of ``b``-bit lanes (``P = 8 // b`` per byte)::

    T[p, k] = sum_e ((xb[indices[e], k] >> (b * p)) & (2**b - 1)) * w[e]     (k < CH, p < P)

the same sums as the edge loop of :func:`sim.packed.row_vector_ir.row_chunk_packed`, returned
as ``P`` vectors ``<CH x i16>`` (the caller guarantees that no ``T`` exceeds 65535, so the
int32 sums truncate exactly).

How
---
``vpdpbusd`` multiplies unsigned bytes by signed bytes and adds each group of four products
to one int32 lane.  Four edges are taken at a time: their chunks are loaded (one load per
edge) and each 16-byte slice of them is interleaved into 64 bytes, byte ``4 k + i`` holding
byte ``k`` of the slice in edge ``i`` (one two-source byte permute), so each int32 lane ``k``
receives ``sum_i lane(x_i[k]) w_i``.  Per plane, one AND (the top plane: one shift) and one
``vpdpbusd`` with the four weights in every lane (unsigned operand, 0..255) against the lane
bits left in place (signed operand, below 128; the sum of plane ``p`` is shifted right by
``b p`` after the row) advance 64 lane sums by four edges; the edge-at-a-time loop needs a
widening, and per plane a shift, a mask, a multiply and an add, for each edge.  A row whose
degree is not a multiple of four ends with one group in which the missing edges have weight
0 (and read the row's last source again).

Only 8-bit weight codes fit the unsigned byte operand; callers use this when
:data:`HOST_VNNI` and the weights are ``uint8``.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils

from sim.packed.llvm_ir import I8, I16, I32, I64, RowEdges, counted_loop, splat
from sim.packed.vnni_gemm import vnni_available

__all__ = ["HOST_VNNI", "VNNI_CHUNK_BYTES", "vnni_plane_sums"]

#: numba compiles for a CPU with AVX-512 VNNI
HOST_VNNI = vnni_available()
#: chunk widths (bytes) the VNNI plane sums are built for: whole 16-byte slices
VNNI_CHUNK_BYTES = (16, 32)
#: edges per ``vpdpbusd`` group
GROUP = 4
_SLICE = 16


def _interleave(builder: ir.IRBuilder, rows: list[ir.Value], slices: int) -> list[ir.Value]:
    """Four ``<CH x i8>`` source rows -> one ``<64 x i8>`` per 16-byte slice ``s``, byte
    ``4 k + i`` = byte ``16 s + k`` of row ``i`` (the rows are joined in pairs, then each slice
    is one two-source byte permute)."""
    ch = rows[0].type.count
    pair = ir.Constant(ir.VectorType(I32, 2 * ch), list(range(2 * ch)))
    lo = builder.shuffle_vector(rows[0], rows[1], pair)
    hi = builder.shuffle_vector(rows[2], rows[3], pair)
    out = []
    for s in range(slices):
        order = [ch * i + _SLICE * s + k for k in range(_SLICE) for i in range(GROUP)]
        out.append(builder.shuffle_vector(lo, hi, ir.Constant(
            ir.VectorType(I32, GROUP * _SLICE), order)))
    return out


def vnni_plane_sums(builder: ir.IRBuilder, edges: RowEdges, columns: ir.Value, ch: int,
                    b: int) -> list[ir.Value]:
    """Emit the plane sums ``T[p]`` (``<ch x i16>`` each, ``p < 8 // b``) of one row chunk.

    Parameters
    ----------
    builder : ir.IRBuilder
    edges : RowEdges
        The row's edges; its weights must be 8-bit.
    columns : ir.Value
        :meth:`RowEdges.columns` of the chunk's first byte.
    ch : int
        Chunk bytes, one of :data:`VNNI_CHUNK_BYTES`.
    b : int
        Lane width, 1, 2 or 4.
    """
    if ch not in VNNI_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes={ch} is not one of {VNNI_CHUNK_BYTES}")
    planes, slices = 8 // b, ch // _SLICE
    lane_mask = (1 << b) - 1
    vrow, v8, v32 = (ir.VectorType(I8, ch), ir.VectorType(I8, GROUP * _SLICE),
                     ir.VectorType(I32, _SLICE))
    dpb = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v32, [v32, v8, v8]),
                                         "llvm.x86.avx512.vpdpbusd.512")
    # plane p < P - 1 enters as (x & (mask << b p)) = 2**(b p) u_p, below 128 (one AND, and a
    # positive signed byte); the top plane as x >> b (P - 1).  The sums are shifted back at
    # the end.
    top = b * (planes - 1)
    extract = [ir.Constant(v8, [lane_mask << (b * p)] * v8.count) for p in range(planes - 1)]
    extract.append(ir.Constant(v8, [top] * v8.count))

    def group(es: list[ir.Value], wword: ir.Value, accs: list[ir.Value]) -> list[ir.Value]:
        wv = builder.bitcast(splat(builder, wword, v32), v8)
        new = list(accs)
        xs = _interleave(builder, [edges.load_source(columns, e, vrow, 1) for e in es], slices)
        for s, x in enumerate(xs):
            for p in range(planes):
                u = builder.and_(x, extract[p]) if p < planes - 1 else builder.lshr(x, extract[p])
                k = s * planes + p
                new[k] = builder.call(dpb, [accs[k], wv, u])
        return new

    start, end = edges.start, edges.end
    full_end = builder.add(start, builder.and_(builder.sub(end, start),
                                               ir.Constant(I64, -GROUP)))
    wbytes = builder.bitcast(edges.w.data, I8.as_pointer())

    def full(e, accs):
        word = builder.load(builder.bitcast(builder.gep(wbytes, [e]), I32.as_pointer()), align=1)
        return group([builder.add(e, ir.Constant(I64, i)) for i in range(GROUP)], word, accs)

    def tail(e, accs):
        last = builder.sub(end, ir.Constant(I64, 1))
        es, word = [], ir.Constant(I32, 0)
        for i in range(GROUP):
            ei = builder.add(e, ir.Constant(I64, i))
            inside = builder.icmp_signed("<", ei, end)
            ei = builder.select(inside, ei, last)
            wi = builder.select(inside, builder.zext(builder.load(builder.gep(wbytes, [ei])), I32),
                                ir.Constant(I32, 0))
            word = builder.or_(word, builder.shl(wi, ir.Constant(I32, 8 * i)) if i else wi)
            es.append(ei)
        return group(es, word, accs)

    zero = ir.Constant(v32, [0] * _SLICE)
    accs = counted_loop(builder, "quads", start, full_end, [zero] * (slices * planes), full,
                        GROUP)
    accs = counted_loop(builder, "quad_tail", full_end, end, accs, tail, GROUP)
    out = []
    vch = ir.VectorType(I32, ch)
    for p in range(planes):
        parts = [accs[s * planes + p] for s in range(slices)]
        whole = parts[0] if slices == 1 else builder.shuffle_vector(
            parts[0], parts[1], ir.Constant(ir.VectorType(I32, ch), list(range(ch))))
        if 0 < p < planes - 1:
            whole = builder.lshr(whole, ir.Constant(vch, [b * p] * ch))
        out.append(builder.trunc(whole, ir.VectorType(I16, ch)))
    return out
