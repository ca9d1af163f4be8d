"""Message-requantized row sums of narrow packed rows, sixteen edges per vector (LLVM IR).

A propagation step whose rows are a few packed bytes (SMP propagates the class scores: a
row of C = 2..16 lanes is 1-4 bytes) spends its time per edge, not per byte: an index, a
weight and one source row per edge.  The byte-table kernel (:mod:`sim.packed.msg_table`)
does that with scalar loads, about four cycles per edge.  :func:`msg_lane_sums` instead
takes sixteen edges of a row at once:

* one masked vector load of sixteen indices and one of sixteen weight codes;
* one gather of the sixteen source rows, each read as a little-endian 32-bit word (the row
  is at most four bytes; the caller pads the packed table by :data:`PAD_BYTES` so the last
  row's word is in bounds);
* per lane ``l``: the lane's code ``u = (word >> l*b) & (2**b - 1)``, then the message
  requantizer in int32 vector arithmetic,
  ``m = clamp(((u - x_off) * ((w + w_add) * M) << ls + half) >> rs, lo, hi)``
  (``x_off = offset + z_x``, ``w_add = w_qmin - z_w``, ``lo/hi`` the message code range minus
  its zero point, ``(ls, rs, half)`` the left shift, right shift and rounding term of
  :func:`quant.reference.round_shift`), added to a ``<16 x i32>`` accumulator;
* at the end of the row, each lane's sixteen partial sums are added up.

Exactness
---------
:func:`gather_supported` admits a step only when every intermediate of that arithmetic is an
int32 integer (``max|x - z_x| * max|w - z_w| * M * 2**ls + half < 2**31``), so ``m`` equals
the reference's message (:func:`quant.aggregate.aggregate_reference`,
``clamp(round_shift(v * M, n) + z, qmin, qmax) - z``) for every pair of codes.  The kernel
that calls it (:func:`sim.packed.smp_step.prop_group`) uses it only for rows whose bound
``sum_e max_u |m(u, w_e)|`` fits in the accumulator and in int32, so the partial sums can
neither saturate nor wrap and their total is the exact row sum.  Masked-off edges of the
last vector get a zero weight product, whose message is 0.

The IR is target independent; on x86 with AVX-512 the gathers are ``vpgatherqd``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quant.aggregate import AggregationParams
from quant.pack import PACKABLE_BITS
from quant.reference import shift_half_up
from sim.exact.functional import centred_max

__all__ = ["MAX_ROW_BYTES", "PAD_BYTES", "VECTOR_EDGES", "gather_supported", "msg_args",
           "msg_lane_sums"]

#: edges per vector
VECTOR_EDGES = 16
#: widest packed row (bytes) the gather reads in one 32-bit word
MAX_ROW_BYTES = 4
#: zero bytes after the last packed row, so a 32-bit read at any row start stays in bounds
PAD_BYTES = 4
#: most lanes a row can have (INT1 rows of four bytes)
MAX_LANES = 32

_I64, _I32, _I8, _I1 = ir.IntType(64), ir.IntType(32), ir.IntType(8), ir.IntType(1)
_INT32_LIMIT = 1 << 31


def msg_args(params: AggregationParams) -> tuple[int, ...] | None:
    """The integer constants of :func:`msg_lane_sums` for one step, or None when the int32
    arithmetic cannot be proven exact.

    Returns
    -------
    (x_off, w_add, mult, half, ls, rs, lo, hi, clamp) : ints
        ``x_off = packed_offset + z_x``, ``w_add = w_qmin - z_w``, the message multiplier,
        rounding term and shifts, the message code range minus its zero point, and 1 if some
        pair of codes reaches beyond that range (the clamp is needed), else 0.
    """
    msg = params.msg
    if msg is None:
        return None
    xs, ws = params.x_spec, params.w_spec
    off = (1 << (xs.bits - 1)) if xs.signed else 0
    n = int(msg.shift)
    ls, rs = max(0, -n), max(0, n)
    half = (1 << (rs - 1)) if rs > 0 else 0
    mult = int(msg.multiplier)
    wmax = centred_max(ws, params.w_zero)
    xmax = centred_max(xs, params.x_zero)
    if (wmax * abs(mult) >= _INT32_LIMIT
            or ((xmax * wmax * abs(mult)) << ls) + half >= _INT32_LIMIT or rs > 31):
        return None
    lo = msg.spec.qmin - msg.zero_point
    hi = msg.spec.qmax - msg.zero_point
    xc = np.arange(xs.qmin, xs.qmax + 1, dtype=np.int64) - params.x_zero
    wc = np.arange(ws.qmin, ws.qmax + 1, dtype=np.int64) - params.w_zero
    r = shift_half_up(xc[:, None] * wc[None, :] * mult, n)
    clamp = int(bool(r.min() < lo or r.max() > hi))
    return (off + int(params.x_zero), ws.qmin - int(params.w_zero), mult, half, ls, rs, lo, hi,
            clamp)


def gather_supported(params: AggregationParams, num_features: int) -> bool:
    """Whether :func:`msg_lane_sums` computes this step's messages exactly: a message
    requantizer in int32 (:func:`msg_args`), packable feature widths and a packed row of at
    most :data:`MAX_ROW_BYTES` bytes."""
    b = params.x_spec.bits
    return (params.msg is not None and b in PACKABLE_BITS
            and 0 < num_features * b <= 8 * MAX_ROW_BYTES and msg_args(params) is not None)


def _splat(builder: ir.IRBuilder, val: ir.Value, vty: ir.VectorType) -> ir.Value:
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count))


def _fit(builder: ir.IRBuilder, val: ir.Value, ty: ir.IntType, signed: bool) -> ir.Value:
    w = val.type.element.width if isinstance(val.type, ir.VectorType) else val.type.width
    tw = ty.element.width if isinstance(ty, ir.VectorType) else ty.width
    if w == tw:
        return val
    if w > tw:
        return builder.trunc(val, ty)
    return builder.sext(val, ty) if signed else builder.zext(val, ty)


def _masked_load(builder, ptr, elt: ir.IntType, mask, n: int):
    vty = ir.VectorType(elt, n)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [_I8.as_pointer(), _I32, mask.type, vty]),
        f"llvm.masked.load.v{n}i{elt.width}.p0")
    return builder.call(fn, [builder.bitcast(ptr, _I8.as_pointer()),
                             ir.Constant(_I32, elt.width // 8), mask, ir.Constant(vty, [0] * n)])


def _host_avx512() -> bool:
    """Whether numba compiles for a CPU with AVX-512F (then the gathers use 32-bit offsets,
    ``vpgatherdd``, sixteen rows per instruction)."""
    try:
        from llvmlite import binding

        return bool(binding.get_host_cpu_features().get("avx512f", False))
    except Exception:  # pragma: no cover - feature probe unavailable
        return False


_AVX512 = _host_avx512()


def _edge_loop(builder, lo, hi, step, init, body):
    """``for e in range(lo, hi, step): vals = body(e, vals)`` with SSA loop-carried values."""
    pre = builder.block
    head = builder.append_basic_block("vedges.head")
    blk = builder.append_basic_block("vedges.body")
    done = builder.append_basic_block("vedges.done")
    builder.branch(head)
    builder.position_at_end(head)
    e = builder.phi(lo.type)
    e.add_incoming(lo, pre)
    phis = []
    for v in init:
        ph = builder.phi(v.type)
        ph.add_incoming(v, pre)
        phis.append(ph)
    builder.cbranch(builder.icmp_signed("<", e, hi), blk, done)
    builder.position_at_end(blk)
    new = body(e, phis)
    end = builder.block
    e.add_incoming(builder.add(e, ir.Constant(lo.type, step)), end)
    for ph, v in zip(phis, new):
        ph.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return phis


@intrinsic
def msg_lane_sums(typingctx, indices, wi, xpad, nb, start, end, bits, n_lanes, clamp, x_off,
                  w_add, mult, half, ls, rs, lo, hi, out):
    """``out[l] = sum_{e in [start, end)} m(lane_l(x[indices[e]]), wi[e])`` for ``l < n_lanes``.

    Parameters (numba values)
    -------------------------
    indices : 1-d uint16 / int32 / int64 array (E,)
    wi : 1-d uint8 / uint16 array (E,)
        Edge-weight codes minus ``w_qmin`` (:func:`sim.packed.msg_table.table_weights`).
    xpad : 1-d uint8 array
        Packed source rows of ``nb`` bytes, row ``r`` at byte ``r * nb``, followed by at least
        :data:`PAD_BYTES` bytes.
    nb, start, end : int
        Row bytes (1..4) and the row's edge range.
    bits, n_lanes, clamp : int literals
        Lane width, lane count (``n_lanes * bits <= 32``, at most :data:`MAX_LANES`) and
        whether the message range can clip (0: no pair of codes reaches it, the clamp is
        left out).
    x_off, w_add, mult, half, ls, rs, lo, hi : int
        :func:`msg_args`.
    out : 1-d int32 array (at least ``n_lanes``)
        The lane sums (the caller guarantees they fit, see the module notes).
    """
    lits = (bits, n_lanes, clamp)
    if not all(isinstance(a, types.IntegerLiteral) for a in lits):
        return None
    b, nl, cl = (a.literal_value for a in lits)
    if b not in (1, 2, 4, 8) or not 0 < nl * b <= 32 or nl > MAX_LANES:
        return None
    sig = types.void(indices, wi, xpad, nb, start, end, bits, n_lanes, clamp, x_off, w_add,
                     mult, half, ls, rs, lo, hi, out)
    V = VECTOR_EDGES
    use_dpi = _AVX512 and indices.dtype.bitwidth <= 32

    def codegen(context, builder, signature, args):
        aty = signature.args
        ind = context.make_array(aty[0])(context, builder, args[0])
        wts = context.make_array(aty[1])(context, builder, args[1])
        xa = context.make_array(aty[2])(context, builder, args[2])
        outa = context.make_array(aty[17])(context, builder, args[17])
        v32, v64, vm = ir.VectorType(_I32, V), ir.VectorType(_I64, V), ir.VectorType(_I1, V)
        nb, start, end = (_fit(builder, a, _I64, True) for a in args[3:6])
        x_off, w_add, mult, half, ls, rs, lo, hi = (_fit(builder, a, _I32, True) for a in args[9:17])
        # (u - x_off) * (w + w_add) * M * 2**ls + half  ==  u * wcm + (half - x_off * wcm)
        mult_ls = _splat(builder, builder.shl(mult, ls), v32)
        w_add_v, x_off_v, half_v = (_splat(builder, a, v32) for a in (w_add, x_off, half))
        rs_v, lo_v, hi_v = (_splat(builder, a, v32) for a in (rs, lo, hi))
        lmask = ir.Constant(v32, [(1 << b) - 1] * V)
        zero = ir.Constant(v32, [0] * V)
        iota = ir.Constant(v32, list(range(V)))
        ind_elt = context.get_value_type(aty[0].dtype)
        w_elt = context.get_value_type(aty[1].dtype)
        ind_signed = aty[0].dtype.signed
        pty = _I8.as_pointer()
        if use_dpi:
            gather = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v32, [v32, pty, v32, vm, _I32]),
                "llvm.x86.avx512.mask.gather.dpi.512")
            nb32 = _splat(builder, _fit(builder, nb, _I32, True), v32)
        else:
            gather = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v32, [ir.VectorType(pty, V), _I32, vm, v32]),
                f"llvm.masked.gather.v{V}i32.v{V}p0")
            base = _splat(builder, builder.ptrtoint(xa.data, _I64), v64)
            nbv = _splat(builder, nb, v64)

        def edges(e, accs):
            rem = builder.trunc(builder.sub(end, e), _I32)
            mask = builder.icmp_signed("<", iota, _splat(builder, rem, v32))
            idx = _masked_load(builder, builder.gep(ind.data, [e]), ind_elt, mask, V)
            if use_dpi:
                off = builder.mul(_fit(builder, idx, v32, ind_signed), nb32)
                word = builder.call(gather, [zero, builder.bitcast(xa.data, pty), off, mask,
                                             ir.Constant(_I32, 1)])
            else:
                off = builder.mul(_fit(builder, idx, v64, ind_signed), nbv)
                ptrs = builder.inttoptr(builder.add(base, off), ir.VectorType(pty, V))
                word = builder.call(gather, [ptrs, ir.Constant(_I32, 1), mask, zero])
            w = _fit(builder, _masked_load(builder, builder.gep(wts.data, [e]), w_elt, mask, V),
                     v32, False)
            wcm = builder.select(mask, builder.mul(builder.add(w, w_add_v), mult_ls), zero)
            c0 = builder.sub(half_v, builder.mul(x_off_v, wcm))
            new = []
            for l, acc in enumerate(accs):
                u = builder.lshr(word, ir.Constant(v32, [l * b] * V)) if l else word
                if (l + 1) * b < 32:
                    u = builder.and_(u, lmask)
                r = builder.ashr(builder.add(builder.mul(u, wcm), c0), rs_v)
                if cl:
                    r = builder.select(builder.icmp_signed("<", r, lo_v), lo_v, r)
                    r = builder.select(builder.icmp_signed(">", r, hi_v), hi_v, r)
                new.append(builder.add(acc, r))
            return new

        accs = _edge_loop(builder, start, end, V, [zero] * nl, edges)
        red = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [v32]),
                                             f"llvm.vector.reduce.add.v{V}i32")
        for l, acc in enumerate(accs):
            builder.store(builder.call(red, [acc]), builder.gep(outa.data, [ir.Constant(_I64, l)]))
        return context.get_dummy_value()

    return sig, codegen


def message_rows(params: AggregationParams, w: np.ndarray) -> np.ndarray | None:
    """Every message an edge can send, packed in one byte per edge, or None.

    For INT2 features and messages of at most 2 bits, edge ``e``'s byte holds
    ``m(u, w_e) - lo`` for the four lane codes ``u`` in bits ``2u .. 2u + 1`` (``lo`` the
    smallest message, :func:`msg_args`); the messages come from
    :func:`sim.packed.msg_table.message_table` (the reference requantizer).  The weights of a
    graph are fixed, so the bytes are built once per step, and :func:`msg_row_lane_sums`
    reads a row's messages with one variable shift per lane instead of the requantizer
    arithmetic.

    Parameters
    ----------
    params : AggregationParams
    w : int (E,)
        Edge-weight codes.

    Returns
    -------
    uint8 (E,) or None (other widths, or messages wider than 2 bits).
    """
    from sim.packed.msg_table import message_table

    args = msg_args(params)
    if params.x_spec.bits != 2 or args is None:
        return None
    lo, hi = args[6], args[7]
    if hi - lo > 3:
        return None
    tab, _ = message_table(params)            # (2**w_bits, 4), lane order offset binary
    enc = np.zeros(tab.shape[0], dtype=np.int64)
    for u in range(4):
        enc |= (tab[:, u].astype(np.int64) - lo) << (2 * u)
    wi = np.asarray(w, dtype=np.int64) - params.w_spec.qmin
    return np.ascontiguousarray(enc[wi], dtype=np.uint8)


@intrinsic
def msg_row_lane_sums(typingctx, indices, mrow, xpad, nb, start, end, n_lanes, out):
    """``out[l] = sum_{e in [start, end)} (mrow[e] >> 2 u_l(e)) & 3`` for INT2 lanes
    ``u_l(e) = lane l of x[indices[e]]`` (:func:`message_rows`; the caller adds ``lo`` per
    edge).  Sixteen edges per vector as :func:`msg_lane_sums`; ``n_lanes`` an integer literal
    up to 16."""
    if not isinstance(n_lanes, types.IntegerLiteral):
        return None
    nl = n_lanes.literal_value
    if not 0 < nl <= 16:
        return None
    sig = types.void(indices, mrow, xpad, nb, start, end, n_lanes, out)
    V = VECTOR_EDGES
    use_dpi = _AVX512 and indices.dtype.bitwidth <= 32

    def codegen(context, builder, signature, args):
        aty = signature.args
        ind = context.make_array(aty[0])(context, builder, args[0])
        mra = context.make_array(aty[1])(context, builder, args[1])
        xa = context.make_array(aty[2])(context, builder, args[2])
        outa = context.make_array(aty[7])(context, builder, args[7])
        v32, v64, vm = ir.VectorType(_I32, V), ir.VectorType(_I64, V), ir.VectorType(_I1, V)
        nb, start, end = (_fit(builder, a, _I64, True) for a in args[3:6])
        three = ir.Constant(v32, [3] * V)
        six = ir.Constant(v32, [6] * V)
        zero = ir.Constant(v32, [0] * V)
        iota = ir.Constant(v32, list(range(V)))
        ind_elt = context.get_value_type(aty[0].dtype)
        ind_signed = aty[0].dtype.signed
        pty = _I8.as_pointer()
        if use_dpi:
            gather = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v32, [v32, pty, v32, vm, _I32]),
                "llvm.x86.avx512.mask.gather.dpi.512")
            nb32 = _splat(builder, _fit(builder, nb, _I32, True), v32)
        else:
            gather = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v32, [ir.VectorType(pty, V), _I32, vm, v32]),
                f"llvm.masked.gather.v{V}i32.v{V}p0")
            base = _splat(builder, builder.ptrtoint(xa.data, _I64), v64)
            nbv = _splat(builder, nb, v64)

        def edges(e, accs):
            rem = builder.trunc(builder.sub(end, e), _I32)
            mask = builder.icmp_signed("<", iota, _splat(builder, rem, v32))
            idx = _masked_load(builder, builder.gep(ind.data, [e]), ind_elt, mask, V)
            if use_dpi:
                off = builder.mul(_fit(builder, idx, v32, ind_signed), nb32)
                word = builder.call(gather, [zero, builder.bitcast(xa.data, pty), off, mask,
                                             ir.Constant(_I32, 1)])
            else:
                off = builder.mul(_fit(builder, idx, v64, ind_signed), nbv)
                ptrs = builder.inttoptr(builder.add(base, off), ir.VectorType(pty, V))
                word = builder.call(gather, [ptrs, ir.Constant(_I32, 1), mask, zero])
            mr = _fit(builder, _masked_load(builder, builder.gep(mra.data, [e]), _I8, mask, V),
                      v32, False)  # masked-off edges: 0, their lane sums are corrected below
            new = []
            for l, acc in enumerate(accs):
                # shift amount 2 u = (word >> (2 l - 1)) & 6
                if l == 0:
                    amt = builder.and_(builder.shl(word, ir.Constant(v32, [1] * V)), six)
                else:
                    amt = builder.and_(builder.lshr(word, ir.Constant(v32, [2 * l - 1] * V)), six)
                m = builder.and_(builder.lshr(mr, amt), three)
                new.append(builder.add(acc, m))
            return new

        accs = _edge_loop(builder, start, end, V, [zero] * nl, edges)
        red = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [v32]),
                                             f"llvm.vector.reduce.add.v{V}i32")
        for l, acc in enumerate(accs):
            builder.store(builder.call(red, [acc]), builder.gep(outa.data, [ir.Constant(_I64, l)]))
        return context.get_dummy_value()

    return sig, codegen
