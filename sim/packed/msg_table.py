"""Packed propagation with a message requantizer, by table lookup.

With the message stage on, each edge's message is
``m = clamp(round_shift((q - z_x)(w - z_w) M_msg, n_msg) + z_msg) - z_msg``: a nonlinear
function of the product, so the row-sum identity of :mod:`sim.packed.aggregate` does not
apply.  But ``m`` depends only on the pair (feature code, weight code), so one table of
``2**b x 2**w_bits`` entries, built once per step with the reference requantizer
(:func:`message_table`), holds every message the step can form.  The row kernel
(:func:`table_rows`) then sums table lookups, reading the packed feature rows directly: for
INT2/INT4 features one lookup per packed *byte* of a byte-level table (:func:`swar_table`:
the messages of all the byte's lanes, biased to be non-negative, in the 16-bit slots of a
uint64), so one load and one 64-bit add per byte and edge serve 4 (INT2) or 2 (INT4) lanes;
other widths look up each lane.

Exactness
---------
The result equals :func:`quant.aggregate.aggregate_reference` bit for bit.  A row whose
bound ``sum_e max_u |m(u, w_e)|`` fits in the accumulator range cannot saturate in any
order, so its exact sum (in int32 lanes, which cannot wrap under that bound when the range
fits in int32) is the answer; every other row is accumulated edge by edge in int64 with
clamping and a saturation count, in stream order, as the reference and the hardware do.
The row sum is then requantized by the aggregate and (if on) update requantizers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from quant.aggregate import AggregationParams, AggregationResult
from quant.errors import invalid
from quant.pack import PACKABLE_BITS
from quant.reference import acc_range
from quant.spec import QuantSpec
from sim.exact.functional import centred_max, rq_args, stage_bound_safe
from sim.exact.kernels import sat_add
from sim.packed.propagate import step_operands
from sim.packed.row_ops import out_chain

__all__ = ["TABLE_MAX_BITS", "aggregate_table", "message_table", "swar_table", "table_rows",
           "sat_lane_sums", "table_supported", "table_weights"]

#: widest edge-weight codes the table path accepts (the table has ``2**w_bits`` rows)
TABLE_MAX_BITS = 10


def _offset(spec: QuantSpec) -> int:
    return (1 << (spec.bits - 1)) if spec.signed else 0


def message_table(params: AggregationParams) -> tuple[np.ndarray, np.ndarray]:
    """Every message of one step, indexed by (weight code - w_qmin, offset-binary lane).

    ``tab[wi, u] = msg((u - off_x - z_x) * (wi + w_qmin - z_w)) - z_msg`` computed with the
    reference requantizer (:class:`quant.aggregate.Requantizer`), so the table is the
    reference's message stage by construction.

    Returns
    -------
    tab : int32 (2**w_bits, 2**x_bits)
    row_max : int64 (2**w_bits,)
        ``max_u |tab[wi, u]|`` (the per-edge term of the no-saturation bound).
    """
    xs, ws, msg = params.x_spec, params.w_spec, params.msg
    if msg is None:
        raise ValueError("message_table needs a message requantizer")
    u = np.arange(1 << xs.bits, dtype=np.int64)
    xc = u - _offset(xs) - params.x_zero
    wc = np.arange(ws.qmin, ws.qmax + 1, dtype=np.int64) - params.w_zero
    tab = msg(wc[:, None] * xc[None, :]).astype(np.int64) - msg.zero_point
    return (np.ascontiguousarray(tab, dtype=np.int32),
            np.abs(tab).max(axis=1).astype(np.int64))


def swar_table(tab: np.ndarray, bits: int) -> tuple[np.ndarray, int, int]:
    """Byte-level form of a message table for INT2/INT4 features (SWAR).

    ``sw[wi, v]`` holds, in the 16-bit slot ``p`` of a uint64, ``tab[wi, lane_p(v)] + bias``
    for every lane ``p`` of byte value ``v`` (``bias = max |tab|`` makes each slot
    non-negative), so one load and one 64-bit add per byte and edge accumulate all the
    byte's lanes.  A slot grows by at most ``2 * bias`` per edge, so ``chunk = 65535 //
    (2 * bias)`` edges cannot wrap it; the kernel flushes the slots after each chunk.

    Returns ``(sw uint64 (2**w_bits, 256), bias, chunk)``; an empty ``sw`` for other widths.
    """
    if bits not in (2, 4):
        return np.zeros((0, 256), dtype=np.uint64), 0, 0
    t = tab.astype(np.int64)
    bias = int(np.abs(t).max()) if t.size else 0
    chunk = 65535 // (2 * bias) if bias else 1 << 30
    if chunk < 1:
        return np.zeros((0, 256), dtype=np.uint64), 0, 0
    v = np.arange(256)
    sw = np.zeros((t.shape[0], 256), dtype=np.uint64)
    for p in range(8 // bits):
        u = (v >> (p * bits)) & ((1 << bits) - 1)
        sw |= (t[:, u] + bias).astype(np.uint64) << np.uint64(16 * p)
    return sw, bias, chunk


def table_weights(w: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """Edge-weight codes as table row indices ``w - w_qmin``: uint8 (``bits <= 8``) or uint16."""
    return np.ascontiguousarray(np.asarray(w, dtype=np.int64) - spec.qmin,
                                dtype=np.uint8 if spec.bits <= 8 else np.uint16)


@njit(cache=True, inline="always")
def _sum_lanes(acc, tab, wi, src, xb, nb, planes, bits, mask):
    """``acc[p * B + k] += tab[wi, lane(p, k)]`` over the packed source row ``src``."""
    for p in range(planes):
        sh = p * bits
        for k in range(nb):
            acc[p * nb + k] += tab[wi, (np.int64(xb[src, k]) >> sh) & mask]


@njit(cache=True, inline="always")
def sat_lane_sums(acc, tab, indices, wi, x1, nb, n_feat, bits, start, end, acc_lo, acc_hi,
                  planar):
    """The messages of edges ``start .. end - 1`` summed edge by edge in stream order into
    ``acc`` (int64), each add clamped to ``[acc_lo, acc_hi]`` as the reference does.

    ``x1`` holds the packed source rows flat (row ``r`` at byte ``r * nb``), ``tab`` the
    messages (:func:`message_table`), ``wi`` the edges' table rows.  Lane ``l`` (of
    ``n_feat``) accumulates in ``acc[l]``, or with ``planar`` in ``acc[(l % per) * nb + l //
    per]`` (``per = 8 // bits``, the layout of :func:`table_rows`).  Returns the number of
    saturation events.
    """
    per = 8 // bits
    mask = np.int64((1 << bits) - 1)
    for l in range(n_feat):
        acc[(l % per) * nb + l // per if planar else l] = 0
    cnt = np.int64(0)
    for e in range(start, end):
        row = np.int64(indices[e]) * nb
        we = np.int64(wi[e])
        for l in range(n_feat):
            u = (np.int64(x1[row + l // per]) >> ((l % per) * bits)) & mask
            j = (l % per) * nb + l // per if planar else l
            acc[j], c = sat_add(acc[j], np.int64(tab[we, u]), acc_lo, acc_hi)
            cnt += c
    return cnt


@njit(cache=True, parallel=True)
def table_rows(indptr, indices, wi, xb, n_feat, bits, tab, row_max, sw, bias, chunk, acc_lo,
               acc_hi, out_m, out_n, out_z, out_qmin, out_qmax, upd_on, upd_m, upd_n, upd_z,
               upd_qmin, upd_qmax, block):
    """One propagation step with a message requantizer on packed feature rows.

    Parameters
    ----------
    indptr : int64 (N + 1,)
    indices : uint16 / int32 / int64 (E,)
    wi : uint8 / uint16 (E,)
        Table row of each edge (:func:`table_weights`).
    xb : uint8 (N_src, B)
        Offset-binary packed feature rows (:func:`sim.packed.propagate.pack_operand`).
    n_feat, bits : int
        ``F`` and the feature width ``b`` in {1, 2, 4, 8}.
    tab, row_max : from :func:`message_table`
    sw, bias, chunk : from :func:`swar_table` (``sw`` empty: per-lane lookups)
    acc_lo, acc_hi : int
        Accumulator range.
    out_*, upd_* : int
        Aggregate and (if ``upd_on``) update requantizers.
    block : int
        Destination rows per parallel work item.

    Returns
    -------
    y : int16 (N, F)
        Output codes.
    sats : int64 (N,)
        Saturation events per row.
    """
    n_rows = indptr.shape[0] - 1
    nb = xb.shape[1]
    planes = 8 // bits
    n_lanes = planes * nb
    mask = np.int64((1 << bits) - 1)
    lim = acc_hi if acc_hi < -acc_lo else -acc_lo
    lim32 = min(lim, np.int64(2147483647))
    y = np.empty((n_rows, n_feat), dtype=np.int16)
    sats = np.empty(n_rows, dtype=np.int64)  # set for every row below
    n_blocks = (n_rows + block - 1) // block
    use_sw = sw.shape[0] > 0
    swf = sw.reshape(sw.size)  # entry (w, v) at w * 256 + v
    x1 = xb.reshape(xb.size)  # byte k of row r at r * B + k
    mmax = np.int64(0)
    for j in range(row_max.shape[0]):
        mmax = max(mmax, row_max[j])
    for b in prange(n_blocks):
        acc = np.zeros(n_lanes, dtype=np.int32)
        acc64 = np.zeros(n_lanes, dtype=np.int64)
        sacc = np.zeros(nb, dtype=np.uint64)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            start = indptr[i]
            end = indptr[i + 1]
            sats[i] = 0
            bound = (end - start) * mmax
            if bound > lim32:  # the tighter per-edge bound
                bound = np.int64(0)
                for e in range(start, end):
                    bound += row_max[wi[e]]
            if bound <= lim32 and use_sw:
                # byte-level SWAR lookups, slots flushed every `chunk` edges
                for k in range(n_lanes):
                    acc64[k] = -bias * (end - start)
                e0 = start
                while e0 < end:
                    e1 = min(end, e0 + chunk)
                    if nb == 1:
                        # flat indices, two independent sums (their slot totals stay below
                        # 2**16 together, so adding them cannot carry between slots)
                        a = np.uint64(0)
                        a2 = np.uint64(0)
                        e = e0
                        while e + 1 < e1:
                            a += swf[(np.intp(wi[e]) << 8) | np.intp(x1[np.intp(indices[e])])]
                            a2 += swf[(np.intp(wi[e + 1]) << 8)
                                      | np.intp(x1[np.intp(indices[e + 1])])]
                            e += 2
                        if e < e1:
                            a += swf[(np.intp(wi[e]) << 8) | np.intp(x1[np.intp(indices[e])])]
                        sacc[0] = a + a2
                    else:
                        for k in range(nb):
                            sacc[k] = 0
                        for e in range(e0, e1):
                            row = np.intp(indices[e]) * nb
                            we = np.intp(wi[e]) << 8
                            for k in range(nb):
                                sacc[k] += swf[we | np.intp(x1[row + k])]
                    for k in range(nb):
                        for p in range(planes):
                            acc64[p * nb + k] += np.int64(
                                (sacc[k] >> np.uint64(16 * p)) & np.uint64(0xFFFF))
                    e0 = e1
            elif bound <= lim32:
                # no order of these messages can leave the accumulator (or wrap int32)
                for k in range(n_lanes):
                    acc[k] = 0
                for e in range(start, end):
                    _sum_lanes(acc, tab, np.int64(wi[e]), indices[e], xb, nb, planes, bits, mask)
                for k in range(n_lanes):
                    acc64[k] = acc[k]
            else:
                # edge by edge in stream order, clamping and counting as the reference does
                sats[i] = sat_lane_sums(acc64, tab, indices, wi, x1, nb, n_feat, bits, start,
                                        end, acc_lo, acc_hi, True)
            for l in range(n_feat):
                v = acc64[(l % planes) * nb + l // planes]
                y[i, l] = out_chain(v, out_m, out_n, out_z, out_qmin, out_qmax, upd_on, upd_m,
                                    upd_n, upd_z, upd_qmin, upd_qmax)
    return y, sats


def table_supported(params: AggregationParams) -> bool:
    """Whether :func:`aggregate_table` handles ``params``.

    Needs: a message requantizer, packable feature widths, edge weights of at most
    :data:`TABLE_MAX_BITS` bits (signed or not), output codes within int16, and requantizers
    that cannot trip the reference's int64 guard on any pair of codes.
    """
    if params.msg is None:
        return False
    lo, hi = acc_range(params.acc_bits)
    ys = params.y_spec
    p_max = centred_max(params.x_spec, params.x_zero) * centred_max(params.w_spec, params.w_zero)
    return (params.x_spec.bits in PACKABLE_BITS and params.w_spec.bits <= TABLE_MAX_BITS
            and -(1 << 15) <= ys.qmin and ys.qmax < (1 << 15)
            and stage_bound_safe(p_max, params.msg)
            and stage_bound_safe(max(-lo, hi), params.out)
            and stage_bound_safe(centred_max(params.out.spec, params.out.zero_point), params.upd))


def aggregate_table(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, xb: np.ndarray,
                    num_features: int, params: AggregationParams, block: int = 64,
                    validate: bool = True, table: tuple[np.ndarray, np.ndarray] | None = None,
                    weights_are_rows: bool = False, byte_table: bool | None = None
                    ) -> AggregationResult:
    """One propagation step with a message requantizer on packed rows, bit-exact with
    :func:`quant.aggregate.aggregate_reference`.

    Parameters
    ----------
    indptr, indices, w : CSR structure and edge-weight codes (``indices`` may be narrowed
        with :func:`sim.packed.propagate.compact_indices`).
    xb : uint8 (N_src, B)
        Features packed by :func:`sim.packed.propagate.pack_operand`.
    num_features : int
    params : AggregationParams
        Must satisfy :func:`table_supported`.
    block : int
        Destination rows per parallel work item.
    validate : bool
        Check the CSR structure, the weight codes and ``xb`` (skip only on trusted inputs).
    table : (tab, row_max, sw, bias, chunk), optional
        :func:`message_table` and :func:`swar_table` of ``params``, when the caller keeps
        them between calls.
    weights_are_rows : bool
        ``w`` is already :func:`table_weights` (trusted).
    byte_table : bool, optional
        Use the byte-level table (:func:`swar_table`, INT2/INT4 only) or the per-lane one;
        default: the byte table when the step makes at least as many byte lookups as it
        has entries.

    Returns
    -------
    AggregationResult
        ``y`` int16 (N, F), ``saturations``, ``extra["row_saturations"]``.
    """
    if not table_supported(params):
        raise invalid("params", "no message requantizer, wide weights or unsafe requantizers",
                      "supported by the table kernel (see table_supported)")
    xs = params.x_spec
    indptr, indices, w, xb = step_operands(indptr, indices, w, xb, num_features, params, validate,
                                           check_weights=not weights_are_rows)
    wi = w if weights_are_rows else table_weights(w, params.w_spec)
    if indices.dtype not in (np.uint16, np.int32, np.int64):
        indices = np.ascontiguousarray(indices, dtype=np.int64)
    if table is None:
        tab, row_max = message_table(params)
        table = (tab, row_max, *swar_table(tab, xs.bits))
    tab, row_max, sw, bias, chunk = table
    if byte_table is False or (byte_table is None and indices.size * xb.shape[1] < sw.size):
        # fewer byte lookups than byte-table entries: the byte table would mostly be read
        # from beyond the caches; the per-lane table (2**w_bits x 2**b int32) stays in L1
        sw = sw[:0]
    lo, hi = acc_range(params.acc_bits)
    out = params.out
    xb = np.ascontiguousarray(xb)
    sw = np.ascontiguousarray(sw)
    y, sats = table_rows(np.ascontiguousarray(indptr, dtype=np.int64), indices, wi, xb,
                         int(num_features), xs.bits, tab, row_max, sw, bias, chunk, lo, hi,
                         out.multiplier,
                         out.shift, out.zero_point, out.spec.qmin, out.spec.qmax,
                         *rq_args(params.upd), int(block))
    return AggregationResult(y=y, saturations=int(sats.sum()), extra={"row_saturations": sats})
