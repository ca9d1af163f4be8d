"""The aggregation unit: one quantized propagation step ``Y = Q(A_hat X)`` over a
destination-sorted CSR graph streamed in, ``lanes = word_bits // bits`` features per beat.

Semantics: :func:`quant.aggregate.aggregate_reference`.  Stream protocol and timing:
:mod:`sim.design.stream` and ``docs/rtl.md``.

Pipeline (every register advances only when ``en = ~o.valid | o.ready``; ``i.ready = en``)::

    accept beat -> product register -> [message requantizer, 2] -> accumulator
                -> out requantizer, 2 -> [update requantizer, 2] -> o.payload / o.valid

so with an ideal source and sink one beat is accepted every cycle and the last output word
is transferred ``latency(dp) - 1`` cycles after the last input beat.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.build import check_design
from rtl.lane_mac import LaneMac
from rtl.layouts import code_shape, in_beat_layout, out_word_layout
from rtl.requantizer import Requantizer
from sim.design.point import DesignError, DesignPoint
from sim.design.stream import SAT_COUNT_BITS, SHIFT_BITS

__all__ = ["Aggregator"]


class Aggregator(wiring.Component):
    """The aggregation unit built from a design point.

    Parameters
    ----------
    dp : DesignPoint
        Checked by :func:`rtl.build.check_design` before anything is elaborated.

    Members
    -------
    i : In(stream.Signature(in_beat_layout(dp)))
        One beat per edge (``feat``, ``weight``, ``last``, ``empty``).
    o : Out(stream.Signature(out_word_layout(dp)))
        One word of ``lanes`` output codes per row and chunk pass.
    x_zero, w_zero : In
        Zero points of the feature and edge-weight codes.
    out_mult, out_shift, out_zero : In
        Requantizer of the row sum (``M < 2**mult_bits``, ``n`` in ``0..62``).
    msg_mult, msg_shift, msg_zero : In
        Message requantizer (only when ``dp.msg_requant``).
    upd_mult, upd_shift, upd_zero : In
        Update requantizer (only when ``dp.upd_requant``).
    saturations : Out(unsigned(SAT_COUNT_BITS))
        Accumulator clamp events (lane-beats) since reset, wrapping.

    Configuration inputs must be constant while beats are in flight.
    """

    def __init__(self, dp: DesignPoint) -> None:
        try:
            check_design(dp)
        except DesignError:
            self._MustUse__used = True  # refused: do not warn "created but never used"
            raise
        self._dp = dp
        code = code_shape(dp.feat_spec)
        ports = {
            "i": In(stream.Signature(in_beat_layout(dp))),
            "o": Out(stream.Signature(out_word_layout(dp))),
            "x_zero": In(code),
            "w_zero": In(unsigned(dp.weight_bits)),
        }
        stages = ["out"] + (["msg"] if dp.msg_requant else []) + (["upd"] if dp.upd_requant else [])
        for name in stages:
            ports.update({f"{name}_mult": In(unsigned(dp.mult_bits)), f"{name}_shift": In(unsigned(SHIFT_BITS)),
                          f"{name}_zero": In(code)})
        ports["saturations"] = Out(unsigned(SAT_COUNT_BITS))
        super().__init__(ports)

    @property
    def design(self) -> DesignPoint:
        return self._dp

    def elaborate(self, platform) -> Module:
        m = Module()
        dp = self._dp

        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        # edge-weight, centred once for all lanes
        w_centred = Signal(signed(dp.weight_bits + 1))
        m.d.comb += w_centred.eq(self.i.payload.weight - self.w_zero)

        lanes = []
        for k in range(dp.lanes):
            lane = LaneMac(dp)
            m.submodules[f"lane{k}"] = lane
            m.d.comb += [lane.en.eq(en), lane.x.eq(self.i.payload.feat[k]), lane.x_zero.eq(self.x_zero),
                         lane.w_centred.eq(w_centred)]
            if dp.msg_requant:
                m.d.comb += [lane.msg_mult.eq(self.msg_mult), lane.msg_shift.eq(self.msg_shift),
                             lane.msg_zero.eq(self.msg_zero)]
            lanes.append(lane)

        # control pipeline to the accumulator stage: (valid, last, empty) per stage
        delay = lanes[0].acc_delay
        ctl_valid = [Signal(name=f"edge{s}_valid") for s in range(delay)]
        ctl_last = [Signal(name=f"edge{s}_last") for s in range(delay)]
        ctl_empty = [Signal(name=f"edge{s}_empty") for s in range(delay)]
        with m.If(en):
            m.d.sync += [ctl_valid[0].eq(self.i.valid), ctl_last[0].eq(self.i.payload.last),
                         ctl_empty[0].eq(self.i.payload.empty)]
            for s in range(1, delay):
                m.d.sync += [ctl_valid[s].eq(ctl_valid[s - 1]), ctl_last[s].eq(ctl_last[s - 1]),
                             ctl_empty[s].eq(ctl_empty[s - 1])]
        acc_valid, acc_last, acc_empty = ctl_valid[-1], ctl_last[-1], ctl_empty[-1]

        row_first = Signal(init=1)  # the next accumulated beat starts a row
        row_done = Signal()         # the accumulators hold a finished row sum
        with m.If(en):
            m.d.sync += row_done.eq(acc_valid & acc_last)
            with m.If(acc_valid):
                m.d.sync += row_first.eq(acc_last)
        for lane in lanes:
            m.d.comb += [lane.acc_valid.eq(acc_valid), lane.acc_first.eq(row_first),
                         lane.acc_empty.eq(acc_empty)]

        # saturation counter
        sat_count = Signal(unsigned(SAT_COUNT_BITS))
        with m.If(en):
            m.d.sync += sat_count.eq(sat_count + sum(lane.saturated for lane in lanes))
        m.d.comb += self.saturations.eq(sat_count)

        # row requantization (and update requantization)
        n_rq = Requantizer.LATENCY * (2 if dp.upd_requant else 1)
        out_valid = [Signal(name=f"row{s}_valid") for s in range(n_rq)]
        with m.If(en):
            m.d.sync += out_valid[0].eq(row_done)
            for s in range(1, n_rq):
                m.d.sync += out_valid[s].eq(out_valid[s - 1])
        for k, lane in enumerate(lanes):
            rq = Requantizer(in_width=dp.acc_width, mult_bits=dp.mult_bits, spec=dp.feat_spec)
            m.submodules[f"out{k}"] = rq
            m.d.comb += [rq.en.eq(en), rq.value.eq(lane.acc), rq.multiplier.eq(self.out_mult),
                         rq.shift.eq(self.out_shift), rq.zero_point.eq(self.out_zero)]
            y = rq.result
            if dp.upd_requant:
                upd = Requantizer(in_width=dp.bits + 1, mult_bits=dp.mult_bits, spec=dp.feat_spec)
                m.submodules[f"upd{k}"] = upd
                m.d.comb += [upd.en.eq(en), upd.value.eq(rq.result - self.out_zero),
                             upd.multiplier.eq(self.upd_mult), upd.shift.eq(self.upd_shift),
                             upd.zero_point.eq(self.upd_zero)]
                y = upd.result
            m.d.comb += self.o.payload[k].eq(y)
        m.d.comb += self.o.valid.eq(out_valid[-1])
        return m
