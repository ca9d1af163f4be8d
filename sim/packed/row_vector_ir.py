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
instructions); nothing here is x86 specific.

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
kernel's own source file, not on this one.  After editing this module, delete
``sim/__pycache__/packed_kernels*.nbi`` / ``*.nbc`` (or touch ``sim/packed/``), or a
stale compiled kernel is used.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["CHUNK_BYTES", "row_chunk_packed"]

#: chunk widths (bytes of a packed row per call) the intrinsic is built for
CHUNK_BYTES = (4, 8, 16, 32)

_I64, _I32, _I16, _I8 = ir.IntType(64), ir.IntType(32), ir.IntType(16), ir.IntType(8)


def _fit(builder: ir.IRBuilder, val: ir.Value, ty: ir.IntType, signed: bool) -> ir.Value:
    """Integer ``val`` converted to ``ty`` (truncated, or sign/zero extended)."""
    if val.type.width == ty.width:
        return val
    if val.type.width > ty.width:
        return builder.trunc(val, ty)
    return builder.sext(val, ty) if signed else builder.zext(val, ty)


def _splat(builder: ir.IRBuilder, val: ir.Value, vty: ir.VectorType) -> ir.Value:
    """``val`` broadcast to every element of ``vty``."""
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(_I32, 0))
    mask = ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count)
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), mask)


def _counted_loop(builder: ir.IRBuilder, name: str, lo: ir.Value, hi: ir.Value,
                  init: list[ir.Value], step_fn) -> list[ir.Value]:
    """``for i in range(lo, hi): vals = step_fn(i, vals)`` as IR; returns the final ``vals``."""
    pre = builder.block
    head = builder.append_basic_block(f"{name}.head")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(head)
    builder.position_at_end(head)
    i = builder.phi(lo.type)
    i.add_incoming(lo, pre)
    vals = []
    for v in init:
        ph = builder.phi(v.type)
        ph.add_incoming(v, pre)
        vals.append(ph)
    builder.cbranch(builder.icmp_signed("<", i, hi), body, done)
    builder.position_at_end(body)
    new = step_fn(i, vals)
    end = builder.block
    i.add_incoming(builder.add(i, ir.Constant(lo.type, 1)), end)
    for ph, v in zip(vals, new):
        ph.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return vals


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
    bits, chunk_bytes : int literals
        Lane width ``b`` in {1, 2, 4} and ``CH`` in :data:`CHUNK_BYTES`.
    t : 1-d uint16 array (at least 2**b - 1,)
        Row thresholds.
    base : int
        Code of a lane below every threshold (offset binary).
    yb : 2-d uint8 array (N, B)
        Packed output; bytes ``[chunk * CH, (chunk + 1) * CH)`` of row ``row`` are written.
    row : int
        Output row.
    """
    if not (isinstance(bits, types.IntegerLiteral) and isinstance(chunk_bytes, types.IntegerLiteral)):
        return None
    b = bits.literal_value
    ch = chunk_bytes.literal_value
    if b not in (1, 2, 4) or ch not in CHUNK_BYTES:
        return None
    planes = 8 // b
    lane_mask = (1 << b) - 1
    sig = types.void(indices, w, xb, start, end, chunk, bits, chunk_bytes, t, base, yb, row)

    def codegen(context, builder, signature, args):
        aty = signature.args
        ind = context.make_array(aty[0])(context, builder, args[0])
        wts = context.make_array(aty[1])(context, builder, args[1])
        src_rows = context.make_array(aty[2])(context, builder, args[2])
        thr = context.make_array(aty[8])(context, builder, args[8])
        out = context.make_array(aty[10])(context, builder, args[10])
        v8, v16 = ir.VectorType(_I8, ch), ir.VectorType(_I16, ch)
        offset = builder.mul(_fit(builder, args[5], _I64, True), ir.Constant(_I64, ch))
        xbase = builder.gep(src_rows.data, [offset])
        xstride = builder.extract_value(src_rows.strides, 0)
        ind_signed = aty[0].dtype.signed
        zero = ir.Constant(v16, [0] * ch)

        def edge(e, accs):
            src = _fit(builder, builder.load(builder.gep(ind.data, [e])), _I64, ind_signed)
            wv = _splat(builder, _fit(builder, builder.load(builder.gep(wts.data, [e])), _I16, False), v16)
            ptr = builder.bitcast(builder.gep(xbase, [builder.mul(src, xstride)]), v8.as_pointer())
            lanes = builder.zext(builder.load(ptr, align=1), v16)
            new = []
            for p, acc in enumerate(accs):
                u = builder.lshr(lanes, ir.Constant(v16, [b * p] * ch)) if p else lanes
                if p < planes - 1:
                    u = builder.and_(u, ir.Constant(v16, [lane_mask] * ch))
                new.append(builder.add(acc, builder.mul(u, wv)))
            return new

        accs = _counted_loop(builder, "edges", _fit(builder, args[3], _I64, True),
                             _fit(builder, args[4], _I64, True), [zero] * planes, edge)

        tv = [_splat(builder, _fit(builder, builder.load(builder.gep(thr.data, [ir.Constant(_I64, j)])),
                                   _I16, False), v16) for j in range(lane_mask)]
        base_v = _splat(builder, _fit(builder, args[9], _I16, True), v16)
        codes = [_count_reached(builder, a, tv, b, base_v) for a in accs]
        packed = codes[0]
        for p in range(1, planes):
            packed = builder.or_(packed, builder.shl(codes[p], ir.Constant(v16, [b * p] * ch)))
        ystride = builder.extract_value(out.strides, 0)
        row_off = builder.add(builder.mul(_fit(builder, args[11], _I64, True), ystride), offset)
        yptr = builder.bitcast(builder.gep(out.data, [row_off]), v8.as_pointer())
        builder.store(builder.trunc(packed, v8), yptr, align=1)
        return context.get_dummy_value()

    return sig, codegen
