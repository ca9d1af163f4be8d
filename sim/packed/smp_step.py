"""A propagation and the adds after it in one pass over the CSR (SMP / APPNP steps).

One SMP step of the exported model is
``p = prop(x_k)``, ``xt = add(p, h0)``, ``g = add(xt, x_k)``, ``pg = gap(g)``,
``d = add(pg, g)``, ``x_{k+1} = add(xt, d)``.  Run op by op, every step reads the CSR twice
and walks the (N, C) code arrays in six more passes, each a parallel region.  Here a
propagation and the run of adds that follows it are one *group*: one parallel pass over the
destination rows computes the row's propagated codes, then the adds on that row (their other
operands are rows of arrays computed earlier), and writes

* the int16 codes of every output a later op reads (every output when the caller keeps
  all stages), and
* the output the next propagation reads, already packed in offset binary with the
  :data:`sim.packed.msg_gather.PAD_BYTES` tail that its gathers need, so no separate pack
  pass runs between two propagations.

So an SMP step is two passes (the gap propagation needs every ``g`` before it starts), each
reading the step's indices and weights once, exactly as the FP32 baseline's fused step
(:func:`quagga.bench.fp32_spmm.smp_prop_f32` / ``smp_gap_f32``).

Exactness
---------
Each row's propagation is :func:`sim.packed.msg_gather.msg_lane_sums` when the row's bound
``sum_e max_u |m(u, w_e)|`` fits in the accumulator and in int32 (no order can saturate or
wrap), and otherwise the edge-by-edge saturating loop of the reference on the message table
(:func:`sim.packed.msg_table.message_table`); then the aggregate and update requantizers
(:func:`sim.packed.row_ops.out_chain`).  Each add is :func:`sim.exact.kernels.requant_1` of
``(a - z_a) M_a + (b - z_b) M_b`` with multiplier 1, as
:func:`quant.reference.add_requantize`.  Tests compare every output with
:meth:`quant.model_ir.IntModel.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from quant import model_ir as mi
from quant.aggregate import AggregationParams
from quant.reference import _check_multiplier, _check_shift, acc_range
from quant.spec import QuantSpec
from sim.exact.kernels import requant_1
from sim.packed.layout import pack_row
from sim.packed.msg_gather import (PAD_BYTES, gather_supported, msg_args, msg_lane_sums,
                                   msg_row_lane_sums)
from sim.packed.msg_table import sat_lane_sums
from sim.packed.row_ops import out_chain

__all__ = ["GroupPlan", "group_supported", "pack_padded", "plan_groups", "prop_group", "run_group"]


@njit(cache=True, parallel=True)
def pack_padded(q, offset, bits, block):
    """Offset-binary packed rows of ``q`` (N, F) codes in one flat uint8 buffer: row ``r`` at
    byte ``r * nb`` (``nb = ceil(F * bits / 8)``), then ``PAD_BYTES`` zero bytes.  Lane ``l``
    in bits ``l * bits`` of the row (the layout of :func:`quant.pack.pack_codes`)."""
    n, f = q.shape
    per = 8 // bits
    nb = (f + per - 1) // per
    out = np.empty(n * nb + PAD_BYTES, dtype=np.uint8)  # pack_row writes every byte of a row
    for k in range(n * nb, n * nb + PAD_BYTES):
        out[k] = 0
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            pack_row(q, i, offset, bits, f, out, i * nb)
    return out


_KERNELS: dict = {}


def prop_group(indptr, indices, wi, mrow, xpad, n_feat, bits, margs, tab, row_max, acc_lo,
               acc_hi, chain, prog, aparams, exts, outs, write, pk_slot, pk_off, pk_bits, pk_out,
               block):
    """One propagation with a message requantizer and the adds after it, in one parallel pass
    over the destination rows; the kernel is compiled once per (lane width, lanes, clamp,
    message bytes or not), which the gather intrinsics need as constants.  Parameters and
    result as :func:`_prop_group`."""
    key = (int(bits), int(n_feat), int(margs[8]), int(mrow.size > 0))
    fn = _KERNELS.get(key)
    if fn is None:
        fn = _KERNELS[key] = _compile_group(*key)
    return fn(indptr, indices, wi, mrow, xpad, n_feat, bits, margs, tab, row_max, acc_lo,
              acc_hi, chain, prog, aparams, exts, outs, write, pk_slot, pk_off, pk_bits, pk_out,
              block)


def _compile_group(bits: int, lanes: int, clamp: int, mrows: int):
    """:func:`_prop_group` compiled with ``BITS``, ``LANES``, ``CLAMP`` and ``MROWS`` as
    constants (not cached on disk: the constants are closure values, which numba's cache
    does not key on)."""
    BITS, LANES, CLAMP, MROWS = bits, lanes, clamp, mrows  # noqa: N806 - compiled constants
    LANES16 = min(lanes, 16)  # noqa: N806 - the message-byte kernel takes INT2 rows only

    def _prop_group(indptr, indices, wi, mrow, xpad, n_feat, bits, margs, tab, row_max, acc_lo, acc_hi,
                   chain, prog, aparams, exts, outs, write, pk_slot, pk_off, pk_bits, pk_out, block):
        """One propagation with a message requantizer and the adds after it, one pass over rows.

        Parameters
        ----------
        indptr : int64 (N + 1,)
        indices : uint16 / int32 / int64 (E,)
        wi : uint8 / uint16 (E,)
            Edge-weight codes minus ``w_qmin``.
        mrow : uint8 (E,) or (0,)
            Every message of each edge (:func:`sim.packed.msg_gather.message_rows`), read
            instead of the message arithmetic when given.
        xpad : uint8 (N_src * nb + PAD_BYTES,)
            Packed input rows (:func:`pack_padded`).
        n_feat, bits : int
            Lanes ``F`` and input width ``b`` (``F * b <= 32``).
        margs : int64 (9,)
            :func:`sim.packed.msg_gather.msg_args`.
        tab : int32 (2**w_bits, 2**b)
            Every message (:func:`sim.packed.msg_table.message_table`), for saturating rows.
        row_max : int64 (2**w_bits,)
            ``max_u |tab[w, u]|``.
        acc_lo, acc_hi : int
            Accumulator range.
        chain : int64 (11,)
            Aggregate requantizer ``(M, n, z, qmin, qmax)``, update flag, update ``(M, n, z,
            qmin, qmax)``.
        prog : int64 (A, 2)
            Operands of each add: ``s >= 0`` is slot ``s`` (0: the propagation, ``j + 1``: add
            ``j``), ``s < 0`` is ``exts[-s - 1]``.
        aparams : int64 (A, 7)
            ``(z_a, M_a, z_b, M_b, shift, z, qmin)``; ``qmax`` is ``aparams`` column 7 when
            present (shape (A, 8)).
        exts : tuple of int16 (N, F)
            Operands computed before the group.
        outs : tuple of A + 1 int16 arrays
            Slot outputs; written for slots with ``write[s]`` (shape (N, F)), else unused.
        write : uint8 (A + 1,)
        pk_slot, pk_off, pk_bits : int
            Slot to write packed (``-1``: none), its offset and width.
        pk_out : uint8 (N * nb_out + PAD_BYTES,)
        block : int
            Rows per parallel work item.

        Returns
        -------
        sats : int64 (N,)
            Saturation events per row.
        """
        n_rows = indptr.shape[0] - 1
        n_add = prog.shape[0]
        m_xoff, m_wadd, m_mult, m_half, m_ls, m_rs, m_lo, m_hi = (
            margs[0], margs[1], margs[2], margs[3], margs[4], margs[5], margs[6], margs[7])
        per_in = 8 // bits
        nb = (n_feat + per_in - 1) // per_in
        lim = acc_hi if acc_hi < -acc_lo else -acc_lo
        lim32 = min(lim, np.int64(2147483647))
        mmax = np.int64(0)
        for j in range(row_max.shape[0]):
            mmax = max(mmax, row_max[j])
        per_out = 8 // pk_bits if pk_slot >= 0 else 1
        nbo = (n_feat + per_out - 1) // per_out
        sats = np.empty(n_rows, dtype=np.int64)  # set for every row below
        n_blocks = (n_rows + block - 1) // block
        for b in prange(n_blocks):
            acc = np.zeros(32, dtype=np.int32)
            acc64 = np.zeros(n_feat, dtype=np.int64)
            i0 = b * block
            nr = min(n_rows, i0 + block) - i0
            # slot values of the block's rows: the propagation (0) and each add (j + 1)
            vals = np.empty((n_add + 1, nr, n_feat), dtype=np.int64)
            for r in range(nr):
                i = i0 + r
                start = indptr[i]
                end = indptr[i + 1]
                sats[i] = 0
                bound = (end - start) * mmax
                if bound > lim32:
                    bound = np.int64(0)
                    for e in range(start, end):
                        bound += row_max[wi[e]]
                if bound <= lim32:
                    if MROWS:
                        msg_row_lane_sums(indices, mrow, xpad, nb, start, end, LANES16, acc)
                        for l in range(n_feat):
                            acc64[l] = np.int64(acc[l]) + m_lo * (end - start)
                    else:
                        msg_lane_sums(indices, wi, xpad, nb, start, end, BITS, LANES, CLAMP,
                                      m_xoff, m_wadd, m_mult, m_half, m_ls, m_rs, m_lo, m_hi,
                                      acc)
                        for l in range(n_feat):
                            acc64[l] = acc[l]
                else:
                    # edge by edge in stream order, clamping and counting as the reference does
                    sats[i] = sat_lane_sums(acc64, tab, indices, wi, xpad, nb, n_feat, bits,
                                            start, end, acc_lo, acc_hi, False)
                for l in range(n_feat):
                    vals[0, r, l] = acc64[l]
            # the block's lanes as flat runs (rows are contiguous), so that LLVM vectorises
            # the requantizer chain and the adds across rows and lanes
            m = nr * n_feat
            v0 = vals[0].reshape(m)
            if chain[5] != 0:
                for k in range(m):
                    v0[k] = out_chain(v0[k], chain[0], chain[1], chain[2], chain[3], chain[4],
                                      True, chain[6], chain[7], chain[8], chain[9], chain[10])
            else:
                for k in range(m):
                    v0[k] = requant_1(v0[k], chain[0], chain[1], chain[2], chain[3], chain[4])
            # the adds, one after another over the block's lanes: each operand array is
            # picked from its tuple once per block.  The four operand forms are written out
            # so that int16 operands are read in place; widening them into an int64 buffer
            # first (one loop for all forms) made a Tolokers pass about 3% slower
            for j in range(n_add):
                za, ma, zb, mb, sh, z, qmin, qmax = (
                    aparams[j, 0], aparams[j, 1], aparams[j, 2], aparams[j, 3], aparams[j, 4],
                    aparams[j, 5], aparams[j, 6], aparams[j, 7])
                sa = prog[j, 0]
                sb = prog[j, 1]
                vo = vals[j + 1].reshape(m)
                if sa >= 0 and sb >= 0:
                    va = vals[sa].reshape(m)
                    vb = vals[sb].reshape(m)
                    for k in range(m):
                        vo[k] = requant_1((va[k] - za) * ma + (vb[k] - zb) * mb, 1, sh, z,
                                          qmin, qmax)
                elif sa >= 0:
                    va = vals[sa].reshape(m)
                    eb = exts[-sb - 1][i0:i0 + nr].reshape(m)
                    for k in range(m):
                        vo[k] = requant_1((va[k] - za) * ma + (np.int64(eb[k]) - zb) * mb, 1, sh,
                                          z, qmin, qmax)
                elif sb >= 0:
                    ea = exts[-sa - 1][i0:i0 + nr].reshape(m)
                    vb = vals[sb].reshape(m)
                    for k in range(m):
                        vo[k] = requant_1((np.int64(ea[k]) - za) * ma + (vb[k] - zb) * mb, 1, sh,
                                          z, qmin, qmax)
                else:
                    ea = exts[-sa - 1][i0:i0 + nr].reshape(m)
                    eb = exts[-sb - 1][i0:i0 + nr].reshape(m)
                    for k in range(m):
                        vo[k] = requant_1((np.int64(ea[k]) - za) * ma
                                          + (np.int64(eb[k]) - zb) * mb, 1, sh, z, qmin, qmax)
            for s in range(n_add + 1):
                if write[s]:
                    o = outs[s][i0:i0 + nr].reshape(m)
                    vs = vals[s].reshape(m)
                    for k in range(m):
                        o[k] = vs[k]
            if pk_slot >= 0:
                pv = vals[pk_slot]
                for r in range(nr):
                    pack_row(pv, r, pk_off, pk_bits, n_feat, pk_out, (i0 + r) * nbo)
        return sats

    return njit(parallel=True)(_prop_group)


def _offset(spec: QuantSpec) -> int:
    return (1 << (spec.bits - 1)) if spec.signed else 0


@dataclass
class GroupPlan:
    """One propagation and the adds fused into its pass.

    Attributes
    ----------
    start : int
        Index of the propagation in ``model.ops``.
    prop : PropagateOp
    adds : list of AddOp
        The adds that follow it, in order (ops ``start + 1 .. start + len(adds)``).
    slots : list of str
        Output names: the propagation, then each add.
    ext : list of str
        Operands read from arrays computed before the group.
    needed : list of bool
        Per slot: read by an op outside the group, or the model output.
    pack_slot : int
        Slot that a later propagation reads (written packed too), or -1.
    pack_spec : QuantSpec or None
        That propagation's input spec.
    """

    start: int
    prop: mi.PropagateOp
    adds: list
    slots: list
    ext: list
    needed: list
    pack_slot: int = -1
    pack_spec: QuantSpec | None = None
    prog: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    aparams: np.ndarray = field(default_factory=lambda: np.zeros((0, 8), np.int64))
    margs: np.ndarray = field(default_factory=lambda: np.zeros(9, np.int64))
    chain: np.ndarray = field(default_factory=lambda: np.zeros(11, np.int64))


def _add_ok(op: mi.AddOp) -> bool:
    try:
        _check_multiplier(op.a_mult, "a_mult", signed=True)
        _check_multiplier(op.b_mult, "b_mult", signed=True)
        _check_shift(op.shift)
    except Exception:
        return False
    return -(1 << 15) <= op.spec.qmin and op.spec.qmax < (1 << 15)


def _add_bound_ok(op: mi.AddOp, specs: dict[str, QuantSpec]) -> bool:
    """``(a - z_a) M_a + (b - z_b) M_b`` and its shift stay inside int64 (the reference's
    guard) for every pair of codes the operands' specs allow."""
    tot = 0
    for nm, z, m in ((op.a, op.a_zero, op.a_mult), (op.b, op.b_zero, op.b_mult)):
        sp = specs.get(nm)
        if sp is None:
            return False
        tot += max(sp.qmax - z, z - sp.qmin) * abs(int(m))
    return (tot << max(0, -int(op.shift))) < (1 << 62)


def plan_groups(model: mi.IntModel, supported) -> dict[int, GroupPlan]:
    """Find the propagations that run fused with the adds after them.

    Parameters
    ----------
    model : IntModel
    supported : callable(PropagateOp) -> bool
        Whether the runner has the step's table and graph (the group kernel applies).

    Returns
    -------
    dict op index of the propagation -> GroupPlan
    """
    ops = model.ops
    specs: dict[str, QuantSpec] = {}
    for op in ops:
        if isinstance(op, mi.PropagateOp):
            specs[op.out] = op.params.y_spec
        elif isinstance(op, mi.AddOp):
            specs[op.out] = op.spec
        elif isinstance(op, (mi.LinearOp,)):
            specs[op.out] = op.requant.spec
        elif isinstance(op, mi.InputOp):
            specs[op.out] = op.spec
        elif isinstance(op, mi.ReluOp) and op.inp in specs:
            specs[op.out] = specs[op.inp]
    readers: dict[str, list[int]] = {}
    for k, op in enumerate(ops):
        for a in ("inp", "a", "b"):
            nm = getattr(op, a, None)
            if nm:
                readers.setdefault(nm, []).append(k)
    plans: dict[int, GroupPlan] = {}
    for k, op in enumerate(ops):
        if (not isinstance(op, mi.PropagateOp) or not supported(op)
                or msg_args(op.params) is None):
            continue
        p = op.params
        adds: list = []
        j = k + 1
        while j < len(ops) and isinstance(ops[j], mi.AddOp) and _add_ok(ops[j]) \
                and _add_bound_ok(ops[j], specs):
            adds.append(ops[j])
            j += 1
        slots = [op.out] + [a.out for a in adds]
        ext: list[str] = []
        prog = np.zeros((len(adds), 2), np.int64)
        ap = np.zeros((len(adds), 8), np.int64)
        for t, a in enumerate(adds):
            for c, nm in enumerate((a.a, a.b)):
                if nm in slots[:t + 1]:
                    prog[t, c] = slots.index(nm)
                else:
                    if nm not in ext:
                        ext.append(nm)
                    prog[t, c] = -(ext.index(nm) + 1)
            ap[t] = (a.a_zero, a.a_mult, a.b_zero, a.b_mult, a.shift, a.zero_point,
                     a.spec.qmin, a.spec.qmax)
        group = set(range(k, k + 1 + len(adds)))
        needed = [s == model.output or any(r not in group for r in readers.get(s, []))
                  for s in slots]
        pack_slot, pack_spec = -1, None
        for s, nm in enumerate(slots):
            nxt = [ops[r] for r in readers.get(nm, []) if r not in group
                   and isinstance(ops[r], mi.PropagateOp)]
            out_spec = p.y_spec if s == 0 else adds[s - 1].spec
            if nxt and all(q.params.x_spec == out_spec for q in nxt) and out_spec.bits in (1, 2, 4, 8):
                pack_slot, pack_spec = s, out_spec
                break
        rq = p.upd
        chain = np.array([p.out.multiplier, p.out.shift, p.out.zero_point, p.out.spec.qmin,
                          p.out.spec.qmax, 1 if rq is not None else 0,
                          rq.multiplier if rq else 0, rq.shift if rq else 0,
                          rq.zero_point if rq else 0, rq.spec.qmin if rq else 0,
                          rq.spec.qmax if rq else 0], np.int64)
        plans[k] = GroupPlan(start=k, prop=op, adds=adds, slots=slots, ext=ext, needed=needed,
                             pack_slot=pack_slot, pack_spec=pack_spec, prog=prog, aparams=ap,
                             margs=np.array(msg_args(p), np.int64), chain=chain)
    return plans


def group_supported(params: AggregationParams, num_features: int) -> bool:
    """Whether :func:`prop_group` runs a step with these parameters on ``num_features`` lanes."""
    ys = params.y_spec
    return (gather_supported(params, num_features) and -(1 << 15) <= ys.qmin
            and ys.qmax < (1 << 15))


def run_group(plan: GroupPlan, indptr, indices, wi, xpad, num_features: int, table,
              exts: list[np.ndarray], keep: bool, block: int, mrow: np.ndarray | None = None):
    """Run one group: returns ``(outputs by slot name, packed output or None, saturations)``.

    ``xpad`` is the propagation input packed by :func:`pack_padded`; ``exts`` the arrays of
    ``plan.ext`` (int16 (N, F)); ``table`` the step's ``(tab, row_max, ...)``; ``mrow`` the
    step's :func:`sim.packed.msg_gather.message_rows`, if any.
    """
    p = plan.prop.params
    n = indptr.shape[0] - 1
    f = int(num_features)
    lo, hi = acc_range(p.acc_bits)
    tab, row_max = table[0], table[1]
    write = np.array([1 if (keep or nd) else 0 for nd in plan.needed], np.uint8)
    empty = np.empty((0, f), np.int16)
    outs = tuple(np.empty((n, f), np.int16) if w else empty for w in write)
    ex = tuple(np.ascontiguousarray(e, dtype=np.int16) for e in exts) or (empty,)
    if plan.pack_slot >= 0:
        per = 8 // plan.pack_spec.bits
        pk = np.empty(n * ((f + per - 1) // per) + PAD_BYTES, np.uint8)
        pk[-PAD_BYTES:] = 0
        pk_off, pk_bits = _offset(plan.pack_spec), plan.pack_spec.bits
    else:
        pk, pk_off, pk_bits = np.zeros(PAD_BYTES, np.uint8), 0, 8
    mr = np.zeros(0, np.uint8) if mrow is None else mrow
    sats = prop_group(indptr, indices, wi, mr, xpad, f, p.x_spec.bits, plan.margs, tab, row_max,
                      lo, hi, plan.chain, plan.prog, plan.aparams, ex, outs, write,
                      plan.pack_slot, pk_off, pk_bits, pk, int(block))
    res = {nm: o for nm, o, w in zip(plan.slots, outs, write) if w}
    return res, (pk if plan.pack_slot >= 0 else None), int(sats.sum())
