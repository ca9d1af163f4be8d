"""Pipelined integer requantizer: ``clamp(round_shift(v * M, n) + z, qmin, qmax)``.

Matches :func:`quant.reference.requantize` exactly for every ``n`` in ``0..2**SHIFT_BITS-1``
(``n >= 0`` only: the unit has no left shift) and every ``M < 2**mult_bits``.

Rounding is half up.  With ``T = (2 * v*M) >>> n`` (arithmetic), ``round_shift(v*M, n) =
(T + 1) >>> 1`` for every ``n >= 0`` (``n = 0``: ``(2vM + 1) >>> 1 = vM``; ``n >= 1``: the
identity ``floor((u + 2**(n-1)) / 2**n) == floor((floor(u / 2**(n-1)) + 1) / 2)``).  No wide
rounding constant; a shift past the width leaves the sign, which ``+1 >>> 1`` turns into 0,
as the reference gives.

The output is a ``bits``-bit code, so only a narrow window of ``T`` matters: stage 2 keeps
``k = bits + 3`` bits of it, saturated (``T`` itself when it fits in ``k`` signed bits, else
``-2**(k-1)`` or ``2**(k-1) - 1`` by its sign).  Whenever ``T`` does not fit, both the true and
the saturated rounded value lie beyond ``+-2**(bits+1)``, past any ``qmin - z`` / ``qmax - z``,
so the clamp gives the same code.  The window comes from a logarithmic shifter that keeps
only the bits the remaining shift can reach, and "fits" from one bit of a prefix-equality
chain selected by ``n + k - 1``: a few ``k``-bit adders instead of ``in_width + mult_bits``-bit
ones, and about a third of the logic of a full-width barrel shifter.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.errors import invalid
from quant.spec import QuantSpec
from rtl.layouts import code_shape
from sim.design.stream import REQUANT_STAGES, SHIFT_BITS

__all__ = ["Requantizer"]


def _window_shift(m: Module, x, shift, k: int) -> Signal:
    """The low ``k`` bits of ``x >>> shift`` (``x`` signed, sign-extended past its width).

    A logarithmic shifter that, from the largest step down, keeps only the window the
    remaining shift can still reach: ``k + 2**i - 1`` bits after step ``2**i``.
    """
    sign = x[-1]
    cur = x
    for i in reversed(range(len(shift))):
        step = 1 << i
        out_w = k + step - 1
        need = step + out_w
        ext = Cat(cur, sign.replicate(max(0, need - len(cur))))[:need] if need > len(cur) else cur[:need]
        nxt = Signal(out_w, name=f"win{i}")
        m.d.comb += nxt.eq(Mux(shift[i], ext[step:step + out_w], ext[:out_w]))
        cur = nxt
    out = Signal(signed(k))
    m.d.comb += out.eq(cur)
    return out


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
    def window_bits(self) -> int:
        """Width of the narrow shifted value: ``bits + 3`` (signed) of the output code."""
        return self._spec.bits + 3

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

        # stage 2: half-up round shift, + zero point, clamp, on a narrow window (see module doc)
        k = self.window_bits
        x2 = Signal(signed(self.product_width + 1))          # 2 * v*M, exact
        m.d.comb += x2.eq(s1_prod << 1)
        sign = x2[-1]
        s2_window = _window_shift(m, x2, self.shift, k)       # low k bits of (2*v*M) >>> n
        # all bits of 2*v*M at positions >= n + k - 1 equal the sign: the shifted value fits in k bits
        # same_j: bits j..top all equal the sign, for j >= k - 1 (the lowest that n + k - 1 picks);
        # one signal per bit, no self-dependent vector
        w = len(x2)
        same = {j: Signal(name=f"same{j}") for j in range(k - 1, w)}
        for j in reversed(range(k - 1, w)):
            m.d.comb += same[j].eq((same[j + 1] if j + 1 < w else 1) & (x2[j] == sign))
        beyond = Const(-1, 1 << SHIFT_BITS)                     # positions past the top: trivially equal
        s2_fits = Signal()
        m.d.comb += s2_fits.eq(Cat(*(same[j] for j in range(k - 1, w)), beyond).bit_select(self.shift, 1))
        lo, hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
        s2_sat = Signal(signed(k))
        m.d.comb += s2_sat.eq(Mux(s2_fits, s2_window, Mux(sign, lo, hi)))
        s2_rounded = Signal(signed(k))
        m.d.comb += s2_rounded.eq((s2_sat + 1) >> 1)
        s2_offset = Signal(signed(k + 2))
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
