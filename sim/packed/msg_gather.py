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
from numba.extending import intrinsic

from quant.aggregate import AggregationParams
from quant.pack import PACKABLE_BITS
from quant.reference import shift_half_up
from sim.exact.functional import centred_max
from sim.packed.llvm_ir import (I8, I32, VECTOR_EDGES, EdgeVectors, array_args, fit_int, splat,
                                store_lane_sums)

__all__ = ["MAX_ROW_BYTES", "PAD_BYTES", "VECTOR_EDGES", "gather_supported", "msg_args",
           "msg_lane_sums"]

#: widest packed row (bytes) the gather reads in one 32-bit word
MAX_ROW_BYTES = 4
#: zero bytes after the last packed row, so a 32-bit read at any row start stays in bounds
PAD_BYTES = 4
#: most lanes a row can have (INT1 rows of four bytes)
MAX_LANES = 32

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


def _lane_sums(n_lanes: int, edge_elt: ir.IntType, message):
    """Codegen of a sixteen-edge lane-sum intrinsic whose arguments are ``(indices, per-edge
    codes, xpad, nb, start, end, ..., out)``.

    ``message(builder, args)`` is called once before the loop and returns ``per_edge(codes,
    mask)``, called per vector with the sixteen edges' codes (``edge_elt`` each, zero-extended
    to int32, 0 where masked off); that returns ``lane(l, word)``, the ``<16 x i32>`` term of
    lane ``l`` for the gathered 32-bit source words.
    """
    def codegen(context, builder, signature, args):
        ind, codes, xa, outa = array_args(context, builder, signature, args,
                                          (0, 1, 2, len(args) - 1))
        ev = EdgeVectors(builder, ind, signature.args[0].dtype, xa.data, args[4], args[5], I32,
                         1, args[3])
        per_edge = message(builder, args)

        def edges(e, mask, accs):
            word = ev.gather(ev.rows(e, mask), 0, mask)
            lane = per_edge(fit_int(builder, ev.load(codes.data, e, edge_elt, mask), ev.v32,
                                    False), mask)
            return [builder.add(acc, lane(l, word)) for l, acc in enumerate(accs)]

        store_lane_sums(builder, outa.data, ev.loop([ev.zero] * n_lanes, edges))
        return context.get_dummy_value()

    return codegen


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
    V = VECTOR_EDGES  # noqa: N806

    def message(builder, args):
        v32 = ir.VectorType(I32, V)
        x_off, w_add, mult, half, ls, rs, lo, hi = (fit_int(builder, a, I32, True)
                                                    for a in args[9:17])
        # (u - x_off) * (w + w_add) * M * 2**ls + half  ==  u * wcm + (half - x_off * wcm)
        mult_ls = splat(builder, builder.shl(mult, ls), v32)
        w_add_v, x_off_v, half_v = (splat(builder, a, v32) for a in (w_add, x_off, half))
        rs_v, lo_v, hi_v = (splat(builder, a, v32) for a in (rs, lo, hi))
        lmask = ir.Constant(v32, [(1 << b) - 1] * V)
        zero = ir.Constant(v32, [0] * V)

        def per_edge(w, mask):
            wcm = builder.select(mask, builder.mul(builder.add(w, w_add_v), mult_ls), zero)
            c0 = builder.sub(half_v, builder.mul(x_off_v, wcm))

            def lane(l, word):
                u = builder.lshr(word, ir.Constant(v32, [l * b] * V)) if l else word
                if (l + 1) * b < 32:
                    u = builder.and_(u, lmask)
                r = builder.ashr(builder.add(builder.mul(u, wcm), c0), rs_v)
                if cl:
                    r = builder.select(builder.icmp_signed("<", r, lo_v), lo_v, r)
                    r = builder.select(builder.icmp_signed(">", r, hi_v), hi_v, r)
                return r

            return lane

        return per_edge

    return sig, _lane_sums(nl, ir.IntType(wi.dtype.bitwidth), message)


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
    V = VECTOR_EDGES  # noqa: N806

    def message(builder, args):
        v32 = ir.VectorType(I32, V)
        three = ir.Constant(v32, [3] * V)
        six = ir.Constant(v32, [6] * V)

        def per_edge(mr, mask):  # masked-off edges: 0, their lane sums are corrected later

            def lane(l, word):
                # shift amount 2 u = (word >> (2 l - 1)) & 6
                if l == 0:
                    amt = builder.and_(builder.shl(word, ir.Constant(v32, [1] * V)), six)
                else:
                    amt = builder.and_(builder.lshr(word, ir.Constant(v32, [2 * l - 1] * V)), six)
                return builder.and_(builder.lshr(mr, amt), three)

            return lane

        return per_edge

    return sig, _lane_sums(nl, I8, message)
