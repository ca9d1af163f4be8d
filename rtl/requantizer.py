"""Pipelined integer requantizer: ``clamp(round_shift(v * M, n) + z, qmin, qmax)``.

Matches :func:`quant.reference.requantize` exactly for every ``n`` in ``0..2**SHIFT_BITS-1``
(``n >= 0`` only: the unit has no left shift) and every ``M < 2**mult_bits``.

Rounding is half up.  For ``n >= 1`` the stage uses the identity
``floor((v + 2**(n-1)) / 2**n) == floor((floor(v / 2**(n-1)) + 1) / 2)``, i.e.
``((v >>> (n-1)) + 1) >>> 1``: one variable arithmetic shift, no wide rounding constant.
A shift past the width of ``v * M`` fills with the sign bit, which the ``+1 >>> 1`` step
turns into 0, as the reference gives.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.errors import invalid
from quant.spec import QuantSpec
from rtl.layouts import code_shape
from sim.design.stream import REQUANT_STAGES, SHIFT_BITS

__all__ = ["Requantizer"]


class Requantizer(wiring.Component):
    """One lane of integer requantization, ``REQUANT_STAGES`` (= 2) register stages.

    Stage 1 registers ``v * M``; stage 2 registers the rounded, shifted, offset and clamped
    code.  Both stages advance only when ``en`` is high (the unit's global stall).

    Parameters
    ----------
    in_width : int
        Width of the signed input ``value``, bits.
    mult_bits : int
        Width of the unsigned multiplier port ``multiplier``, bits.
    spec : QuantSpec
        Output code range (its ``bits``/``signed``/``narrow_range``; rounding is unused).

    Members
    -------
    en : In(1)
        Advance the pipeline.
    value : In(signed(in_width))
        Centred input value.
    multiplier : In(unsigned(mult_bits))
    shift : In(unsigned(SHIFT_BITS))
    zero_point : In(code_shape(spec))
    result : Out(code_shape(spec))
        The output code, ``LATENCY`` enabled cycles after ``value``.
    """

    LATENCY = REQUANT_STAGES

    def __init__(self, *, in_width: int, mult_bits: int, spec: QuantSpec) -> None:
        for field, v in (("in_width", in_width), ("mult_bits", mult_bits)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                self._MustUse__used = True  # refused: do not warn "created but never used"
                raise invalid(field, v, "a positive int")
        self._in_width = in_width
        self._mult_bits = mult_bits
        self._spec = spec
        super().__init__({
            "en": In(1),
            "value": In(signed(in_width)),
            "multiplier": In(unsigned(mult_bits)),
            "shift": In(unsigned(SHIFT_BITS)),
            "zero_point": In(code_shape(spec)),
            "result": Out(code_shape(spec)),
        })

    @property
    def product_width(self) -> int:
        """Width of the registered ``v * M``: ``in_width + mult_bits`` (signed)."""
        return self._in_width + self._mult_bits

    def elaborate(self, platform) -> Module:
        m = Module()
        spec = self._spec

        # stage 1: v * M  (signed x unsigned; |v| < 2**(in_width-1), M < 2**mult_bits)
        s1_prod = Signal(signed(self.product_width))
        with m.If(self.en):
            m.d.sync += s1_prod.eq(self.value * self.multiplier)

        # stage 2: half-up round shift, + zero point, clamp
        s2_shr = Signal(signed(self.product_width))
        m.d.comb += s2_shr.eq(s1_prod >> (self.shift - 1)[:SHIFT_BITS])
        s2_rounded = Signal(signed(self.product_width))
        m.d.comb += s2_rounded.eq(Mux(self.shift == 0, s1_prod, (s2_shr + 1) >> 1))
        s2_offset = Signal(signed(self.product_width + 2))
        m.d.comb += s2_offset.eq(s2_rounded + self.zero_point)
        s2_clamped = Signal(code_shape(spec))
        with m.If(s2_offset < spec.qmin):
            m.d.comb += s2_clamped.eq(spec.qmin)
        with m.Elif(s2_offset > spec.qmax):
            m.d.comb += s2_clamped.eq(spec.qmax)
        with m.Else():
            m.d.comb += s2_clamped.eq(s2_offset)
        with m.If(self.en):
            m.d.sync += self.result.eq(s2_clamped)
        return m
