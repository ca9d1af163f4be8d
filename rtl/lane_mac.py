"""One feature lane of the aggregation unit: product, optional message requantization,
saturating accumulator.

Per accepted edge beat the lane forms ``p = (x - z_x) * w_c`` (``w_c = w - z_w`` is computed
once for all lanes by the top), optionally requantizes it (``p = msg(p) - z_msg``) and adds it
to its accumulator, clamping to the ``acc_bits`` two's complement range.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.layouts import code_shape
from rtl.requantizer import Requantizer
from sim.design.point import DesignPoint
from sim.design.stream import SHIFT_BITS

__all__ = ["LaneMac"]


class LaneMac(wiring.Component):
    """Edge path of one lane.

    Timing (all registers advance only when ``en``): the product is registered in the cycle
    the beat is accepted; with message requantization two more stages follow; the
    accumulator then adds the stage's value when ``acc_valid``.  The top aligns the control
    inputs (``acc_*``) with that stage (:attr:`acc_delay` enabled cycles after acceptance).

    Parameters
    ----------
    dp : DesignPoint

    Members
    -------
    en : In(1)
        Advance the pipeline.
    x : In(code of dp.bits)
        The lane's feature code of the beat being accepted.
    x_zero : In(code of dp.bits)
    w_centred : In(signed(weight_bits + 1))
        ``w - z_w`` of the beat being accepted.
    msg_mult, msg_shift, msg_zero : In
        Message requantizer configuration (only when ``dp.msg_requant``).
    acc_valid, acc_first, acc_empty : In(1)
        Control of the accumulator stage: a beat is there; it starts a row (the accumulator
        restarts from 0); it is an empty row's beat (adds 0).
    acc : Out(signed(dp.acc_width))
        The accumulator; after a row's last beat it holds the row sum until the next beat.
    saturated : Out(1)
        Combinational: the beat at the accumulator stage is clamped (counts when ``en``).
    """

    def __init__(self, dp: DesignPoint) -> None:
        self._dp = dp
        ports = {
            "en": In(1),
            "x": In(code_shape(dp.feat_spec)),
            "x_zero": In(code_shape(dp.feat_spec)),
            "w_centred": In(signed(dp.weight_bits + 1)),
            "acc_valid": In(1),
            "acc_first": In(1),
            "acc_empty": In(1),
            "acc": Out(signed(dp.acc_width)),
            "saturated": Out(1),
        }
        if dp.msg_requant:
            ports.update({"msg_mult": In(unsigned(dp.mult_bits)), "msg_shift": In(unsigned(SHIFT_BITS)),
                          "msg_zero": In(code_shape(dp.feat_spec))})
        super().__init__(ports)

    @property
    def product_width(self) -> int:
        """Signed width of ``(x - z_x) * (w - z_w)``: ``bits + weight_bits + 2``."""
        return self._dp.bits + self._dp.weight_bits + 2

    @property
    def acc_delay(self) -> int:
        """Enabled cycles from accepting a beat to its value reaching the accumulator stage."""
        return 1 + (Requantizer.LATENCY if self._dp.msg_requant else 0)

    def elaborate(self, platform) -> Module:
        m = Module()
        dp = self._dp

        x_centred = Signal(signed(dp.bits + 1))
        m.d.comb += x_centred.eq(self.x - self.x_zero)
        product = Signal(signed(self.product_width))
        with m.If(self.en):
            m.d.sync += product.eq(x_centred * self.w_centred)

        if dp.msg_requant:
            m.submodules.msg = msg = Requantizer(in_width=self.product_width, mult_bits=dp.mult_bits,
                                                 spec=dp.feat_spec)
            m.d.comb += [msg.en.eq(self.en), msg.value.eq(product), msg.multiplier.eq(self.msg_mult),
                         msg.shift.eq(self.msg_shift), msg.zero_point.eq(self.msg_zero)]
            addend = Signal(signed(dp.bits + 1))
            m.d.comb += addend.eq(msg.result - self.msg_zero)
        else:
            addend = product

        lo, hi = -(1 << (dp.acc_width - 1)), (1 << (dp.acc_width - 1)) - 1
        total = Signal(signed(max(dp.acc_width, len(addend)) + 1))
        m.d.comb += total.eq(Mux(self.acc_first, 0, self.acc) + Mux(self.acc_empty, 0, addend))
        clamped = Signal(signed(dp.acc_width))
        with m.If(total < lo):
            m.d.comb += [clamped.eq(lo), self.saturated.eq(self.acc_valid)]
        with m.Elif(total > hi):
            m.d.comb += [clamped.eq(hi), self.saturated.eq(self.acc_valid)]
        with m.Else():
            m.d.comb += clamped.eq(total)
        with m.If(self.en & self.acc_valid):
            m.d.sync += self.acc.eq(clamped)
        return m
