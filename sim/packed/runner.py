"""Fast end-to-end integer inference of an exported model with the packed kernels.

:class:`PackedRunner` prepares a :class:`quant.model_ir.IntModel` once (validated CSR with
narrow index dtypes, edge-weight codes as uint8/uint16, centred int32 weight matrices) and
then runs it with :mod:`sim.packed`: every propagation step packs its input codes
into offset-binary bytes and aggregates them with the vectorised plane kernel; linear
layers whose centred weights fit int8 and whose input codes fit 8 bits run on the int8
dot-product instruction where the CPU has it (:mod:`sim.packed.vnni_gemm`), other small
layers (at most :data:`sim.packed.gemm.SMALL_GEMM_MACS` multiply-adds) as an int32 loop
nest, larger ones multiply the centred integer codes in numpy's float BLAS, which is exact whenever
``K * max|x - z_x| * max|w - z_w|`` is below 2**24 (float32) or 2**53 (float64)
(:func:`sim.packed.gemm.exact_gemm_dtype` gives the argument), then requantize the
integer-valued accumulators; ReLU and add-with-requantize keep int16 codes.

A propagation step with a message requantizer sums lookups of one table of every
(feature code, weight code) message (:mod:`sim.packed.msg_table`).  When its rows are at
most four packed bytes (SMP and APPNP propagate the class scores), the step and the adds
that follow it run as one pass over the rows (:mod:`sim.packed.smp_step`): sixteen edges per
vector (:mod:`sim.packed.msg_gather`), the adds in the row epilogue, and the output that the
next propagation reads written packed, so it is not packed again.  ``timings`` then counts
the pass under ``propagate+add``.

Results equal :meth:`IntModel.run` bit for bit.  Where a fast kernel cannot prove it is
exact for an op (a message requantizer whose table would be too large, a GEMM bound beyond 2**53 or beyond the
requantizer's int64 headroom, signed edge weights, ...), that op runs with :mod:`sim.exact.functional` (the exact kernels) instead, and
:attr:`PackedRunner.fallbacks` names it.  numpy + numba only.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from quant import model_ir as mi
from quant.errors import invalid
from quant.reference import _check_multiplier, _check_shift, check_finite, check_scale
from sim.exact import functional, kernels
from sim.packed import msg_gather, msg_table, propagate, smp_step, vnni_gemm
from sim.packed.elementwise import ROUNDING_CODES, add_requant_i16, quantize_f32_i16, relu_i16
from sim.packed.gemm import (SMALL_GEMM_MACS, exact_gemm_dtype, int32_gemm_exact,
                             linear_requant_exact, linear_requant_i32)
from sim.packed.layout import unpack_rows
from sim.packed.thresholds import vector_rows_shape
from sim.graphs.csr import validate_csr

log = logging.getLogger(__name__)

__all__ = ["PackedRunner"]

#: Element-wise ops on fewer elements than this run on one thread: a parallel region costs
#: a fork and a barrier, which on a shared, loaded machine can stall for a scheduler tick.
SERIAL_ELEMENTS = 1 << 20


class _Threads:
    """The numba thread count during one run: one thread for small work, the configured
    count otherwise, changed only when it differs (each change takes a lock and checks the
    pool), and restored at the end of the run."""

    def __init__(self) -> None:
        self.default = self.cur = 0

    def begin(self) -> None:
        import numba

        self.default = self.cur = numba.get_num_threads()

    def want(self, elements: int) -> None:
        n = 1 if elements < SERIAL_ELEMENTS or self.default == 0 else self.default
        if self.default and n != self.cur:
            import numba

            numba.set_num_threads(n)
            self.cur = n

    def end(self) -> None:
        if self.default and self.cur != self.default:
            import numba

            numba.set_num_threads(self.default)
        self.cur = self.default


class PackedRunner:
    """Prepared fast executor of one integer model.

    Parameters
    ----------
    model : IntModel
    block : int
        Rows per parallel work item of every kernel.

    Attributes
    ----------
    fallbacks : dict op output name -> reason
        Ops that run with the exact (slower) kernels.
    """

    def __init__(self, model: mi.IntModel, block: int = 64) -> None:
        model.validate()
        self.model = model
        self.block = int(block)
        self.fallbacks: dict[str, str] = {}
        self._graphs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._weights: dict[tuple[str, str], np.ndarray] = {}
        self._linears: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        self._float_weights: dict[tuple[str, type], np.ndarray] = {}
        self._tables: dict[str, tuple] = {}
        self._mrows: dict[str, np.ndarray | None] = {}
        self._vnni: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        use_vnni = vnni_gemm.vnni_available()
        self._thr = _Threads()
        n = int(model.graph["num_nodes"])
        for op in model.ops:
            if isinstance(op, mi.PropagateOp):
                key = (op.indptr, op.indices)
                if key not in self._graphs:
                    ip, ix = validate_csr(model.tensors[op.indptr], model.tensors[op.indices], n)
                    self._graphs[key] = (ip, ix, propagate.compact_indices(ix, n))
                w = np.asarray(model.tensors[op.edge_weight])
                if op.params.msg is not None and msg_table.table_supported(op.params):
                    # message requantizer: one table of every (feature, weight) message
                    functional.check_codes("w", w, op.params.w_spec)
                    tab, row_max = msg_table.message_table(op.params)
                    self._tables[op.out] = (tab, row_max,
                                            *msg_table.swar_table(tab, op.params.x_spec.bits))
                    self._weights[(op.edge_weight, op.out)] = msg_table.table_weights(
                        w, op.params.w_spec)
                    self._mrows[op.out] = msg_gather.message_rows(op.params, w)
                    continue
                if not propagate.packed_supported(op.params):
                    self.fallbacks[op.out] = ("message requantizer outside the table kernel"
                                              if op.params.msg is not None
                                              else "parameters outside the packed kernel")
                    continue
                functional.check_codes("w", w, op.params.w_spec)
                self._weights[(op.edge_weight, op.out)] = propagate.compact_weights(w, op.params.w_spec)
            elif isinstance(op, mi.LinearOp):
                w = np.asarray(model.tensors[op.weight]).astype(np.int64) - int(op.w_zero)
                b = (np.asarray(model.tensors[op.bias]).astype(np.int64) if op.bias
                     else np.zeros(w.shape[0], np.int64))
                self._linears[op.out] = (np.ascontiguousarray(w.T), b,
                                         int(np.abs(w).max()) if w.size else 0)
                if use_vnni and vnni_gemm.vnni_layer_ok(w.shape[1], w):
                    self._vnni[op.out] = vnni_gemm.pack_weights_vnni(w.T)
        # propagations with a message table run fused with the adds after them
        self._groups = smp_step.plan_groups(model, lambda op: op.out in self._tables)

    # ------------------------------------------------------------------ ops
    def _input(self, op: mi.InputOp, x: np.ndarray) -> np.ndarray:
        """The input stage: :func:`quant.reference.quantize` of the preprocessed features,
        in one parallel pass (:func:`sim.packed.elementwise.quantize_f32_i16`); a non-finite
        input is refused with the reference's error."""
        if op.normalize is None and x.ndim == 2 and x.dtype == np.float32:
            xf = np.ascontiguousarray(x)          # preprocess_features would only copy it
        else:
            xf = mi.preprocess_features(x, op.normalize)
        spec = op.spec
        s = check_scale(op.scale)
        z = spec.check_zero_point(op.zero_point)
        self._thr.want(xf.size)
        out, bad = quantize_f32_i16(
            xf, s, z, spec.qmin, spec.qmax, ROUNDING_CODES[spec.rounding.value],
            self.block)
        if bad:
            check_finite(xf, "x")                 # raises the reference's error
        return out

    def _linear(self, op: mi.LinearOp, xin: np.ndarray) -> np.ndarray:
        wt, bias, wmax = self._linears[op.out]
        rq = op.requant
        z = int(op.x_zero)
        xmax = max(abs(int(xin.max()) - z), abs(int(xin.min()) - z)) if xin.size else 0
        bmax = int(np.abs(bias).max()) if bias.size else 0
        k = wt.shape[0]
        dtype = exact_gemm_dtype(k, xmax, wmax)
        if (xin.ndim != 2 or xin.shape[1] != k or dtype is None
                or not functional.stage_bound_safe(k * xmax * wmax + bmax, rq)
                or rq.spec.qmax >= (1 << 15)):
            self.fallbacks[op.out] = "GEMM bound beyond exact float or int64 headroom"
            self._thr.want(SERIAL_ELEMENTS)
            acc = functional.linear(xin, op.x_zero, self.model.tensors[op.weight], op.w_zero,
                                    self.model.tensors[op.bias] if op.bias else None)
            return functional.requantize(acc, rq)
        c = wt.shape[1]
        if op.out in self._vnni:
            # int8 dot products (AVX-512 VNNI), exact int32 sums
            self._thr.want(xin.shape[0] * k * c // 8)
            y = vnni_gemm.linear_requant_vnni(xin, z, self._vnni[op.out], bias, rq.multiplier,
                                              rq.shift, rq.zero_point, rq.spec.qmin,
                                              rq.spec.qmax, self.block)
            if y is not None:
                return y
        if xin.shape[0] * k * c <= SMALL_GEMM_MACS and int32_gemm_exact(k, xmax, wmax):
            key = (op.out, np.int32)
            wi = self._float_weights.get(key)
            if wi is None:
                wi = self._float_weights[key] = np.ascontiguousarray(wt.astype(np.int32))
            self._thr.want(xin.shape[0] * k * c // 8)
            return linear_requant_i32(np.ascontiguousarray(xin), z, wi, bias, rq.multiplier,
                                      rq.shift, rq.zero_point, rq.spec.qmin, rq.spec.qmax,
                                      self.block)
        key = (op.out, dtype)
        wf = self._float_weights.get(key)
        if wf is None:
            wf = self._float_weights[key] = np.ascontiguousarray(wt.astype(dtype))
        self._thr.want(SERIAL_ELEMENTS)  # large layer: every thread
        return linear_requant_exact(
            np.ascontiguousarray(xin), z, wf, bias, rq.multiplier, rq.shift, rq.zero_point,
            rq.spec.qmin, rq.spec.qmax)

    def _propagate(self, op: mi.PropagateOp, xin: np.ndarray) -> tuple[np.ndarray, int]:
        ip, ix, ixc = self._graphs[(op.indptr, op.indices)]
        p = op.params
        if op.out in self.fallbacks:
            self._thr.want(SERIAL_ELEMENTS)
            res = functional.aggregate(ip, ix, self.model.tensors[op.edge_weight], xin, p)
            return res.y, res.saturations
        self._thr.want(xin.size)
        xb = propagate.pack_operand(xin, p.x_spec, self.block)
        f = xin.shape[1]
        # a small step (edges x packed bytes) runs on one thread, like small element-wise work
        work = ixc.size * xb.shape[1] * 4
        if op.out in self._tables:
            self._thr.want(work)
            res = msg_table.aggregate_table(ip, ixc, self._weights[(op.edge_weight, op.out)],
                                            xb, f, p, block=self.block, validate=False,
                                            table=self._tables[op.out], weights_are_rows=True)
            return res.y, res.saturations
        # Rows the vector-IR kernel takes (INT2/INT4, output at the input width) are written
        # packed, as the unit writes them, and unpacked to the int16 codes the adds read.
        packed = vector_rows_shape(p.x_spec.bits, xb.shape[1], p.y_spec.bits,
                                                  p.w_zero)
        self._thr.want(work)
        res = propagate.aggregate_packed(ip, ixc, self._weights[(op.edge_weight, op.out)], xb,
                                         f, p, block=self.block, validate=False,
                                         packed_out=packed)
        if not packed:
            return res.y, res.saturations
        self._thr.want(xin.size)
        y = unpack_rows(res.y, propagate.packed_offset(p.y_spec),
                                       p.y_spec.bits, f, self.block)
        return y, res.saturations

    def _group(self, plan, xin, packed: dict, get, keep: bool):
        """One propagation and the adds after it in one pass (:mod:`sim.packed.smp_step`);
        None when the step's rows do not fit the gather kernel."""
        op = plan.prop
        p = op.params
        f = xin.shape[1] if xin.ndim == 2 else 0
        if not smp_step.group_supported(p, f):
            return None
        ip, ix, ixc = self._graphs[(op.indptr, op.indices)]
        xpad = packed.get(op.inp)
        if xpad is None:
            functional.check_codes("x", xin, p.x_spec)
            self._thr.want(xin.size)
            xpad = smp_step.pack_padded(np.ascontiguousarray(xin), propagate.packed_offset(p.x_spec),
                                        p.x_spec.bits, self.block)
        self._thr.want(ixc.size * 4)
        outs, pk, sats = smp_step.run_group(
            plan, ip, ixc, self._weights[(op.edge_weight, op.out)], xpad, f,
            self._tables[op.out], [get(nm) for nm in plan.ext], keep, self.block,
            self._mrows.get(op.out))
        if pk is not None:
            packed[plan.slots[plan.pack_slot]] = pk
        return outs, sats

    def _add(self, op: mi.AddOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        _check_multiplier(op.a_mult, "a_mult", signed=True)
        _check_multiplier(op.b_mult, "b_mult", signed=True)
        _check_shift(op.shift)
        if a.shape != b.shape or a.ndim != 2 or op.spec.qmax >= (1 << 15):
            from quant.reference import add_requantize

            return add_requantize(a, op.a_zero, op.a_mult, b, op.b_zero, op.b_mult, op.shift,
                                  op.zero_point, op.spec)
        self._thr.want(a.size)
        return add_requant_i16(np.ascontiguousarray(a), op.a_zero, op.a_mult,
                               np.ascontiguousarray(b), op.b_zero, op.b_mult, op.shift,
                               op.zero_point, op.spec.qmin, op.spec.qmax)

    # ------------------------------------------------------------------ run
    def run(self, x: np.ndarray, keep: bool = True, timings: dict[str, float] | None = None
            ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Run the model on raw float features ``x`` (N, F_in).

        ``timings``, if given, accumulates wall-clock seconds per op kind (``propagate``,
        ``linear``, ``add``, ...).

        Returns
        -------
        env : dict name -> int array
            Every op's output (int16 codes, int32 predictions); only the output when
            ``keep`` is False (intermediates are freed as soon as no later op reads them).
        saturations : dict propagate output name -> int
        """
        model = self.model
        x = model.check_input(x)
        env: dict[str, np.ndarray] = {}
        sats: dict[str, int] = {}
        last_use: dict[str, int] = {}
        if not keep:
            for k, op in enumerate(model.ops):
                for a in ("inp", "a", "b"):
                    if getattr(op, a, None):
                        last_use[getattr(op, a)] = k

        def get(name: str) -> np.ndarray:
            return env[name] if name in env else model.tensors[name]

        self._thr.begin()
        try:
            self._run_ops(x, env, sats, last_use, keep, timings, get)
        finally:
            self._thr.end()
        if not keep:
            env = {model.output: env[model.output]}
        return env, sats

    def _run_ops(self, x, env, sats, last_use, keep, timings, get) -> None:
        model = self.model
        packed: dict[str, np.ndarray] = {}   # outputs a later propagation reads, packed
        skip_to = 0
        for k, op in enumerate(model.ops):
            if k < skip_to:
                continue
            t0 = time.perf_counter() if timings is not None else 0.0
            plan = self._groups.get(k)
            res = self._group(plan, get(op.inp), packed, get, keep) if plan else None
            if res is not None:
                outs, sats[op.out] = res
                env.update(outs)
                skip_to = k + 1 + len(plan.adds)
                if timings is not None:
                    key = "propagate+add" if plan.adds else "propagate"
                    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
                if not keep:
                    self._free(env, packed, last_use, skip_to - 1)
                continue
            if isinstance(op, mi.InputOp):
                out = self._input(op, x)
            elif isinstance(op, mi.LinearOp):
                out = self._linear(op, get(op.inp))
            elif isinstance(op, mi.ReluOp):
                q = get(op.inp)
                if q.ndim == 2 and q.dtype == np.int16:
                    self._thr.want(q.size)
                    out = relu_i16(q, int(op.zero_point))
                else:
                    out = np.maximum(q.astype(np.int64), int(op.zero_point)).astype(np.int32)
            elif isinstance(op, mi.PropagateOp):
                out, sats[op.out] = self._propagate(op, get(op.inp))
            elif isinstance(op, mi.AddOp):
                out = self._add(op, get(op.a), get(op.b))
            elif isinstance(op, mi.ArgmaxOp):
                q = np.ascontiguousarray(get(op.inp))
                self._thr.want(q.size)
                out = kernels.argmax_rows(q).astype(np.int32)
            else:
                raise invalid("op", op, "a known op")
            env[op.out] = out
            if timings is not None:
                timings[op.op] = timings.get(op.op, 0.0) + time.perf_counter() - t0
            if not keep:
                self._free(env, packed, last_use, k)

    def _free(self, env: dict, packed: dict, last_use: dict, k: int) -> None:
        """Drop the arrays whose last reader is op ``k`` or earlier."""
        for name in [nm for nm, last in last_use.items() if last <= k and nm in env
                     and nm != self.model.output]:
            del env[name]
            packed.pop(name, None)
