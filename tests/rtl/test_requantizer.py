"""The RTL requantizer == quant.reference.requantize for every shift and multiplier."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from quant.reference import requantize
from quant.spec import QuantSpec
from rtl.requantizer import Requantizer
from sim.design.stream import MAX_UNIT_SHIFT


def _run(dut: Requantizer, configs, values) -> list[tuple]:
    """Feed ``values`` under each (M, n, z) configuration; return mismatches."""
    bad = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for m, n, z in configs:
            ctx.set(dut.multiplier, m)
            ctx.set(dut.shift, n)
            ctx.set(dut.zero_point, z)
            got = []
            for k in range(len(values) + 1):
                if k < len(values):
                    ctx.set(dut.value, int(values[k]))
                await ctx.tick()
                if k >= 1:
                    got.append(ctx.get(dut.result))
            exp = requantize(np.asarray(values), m, n, z, dut._spec).tolist()
            if got != exp:
                bad.append((m, n, z, got, exp))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bad


@pytest.mark.parametrize("spec", [QuantSpec(4), QuantSpec(2, signed=True)], ids=["u4", "s2"])
def test_exhaustive_small_widths(spec):
    """Every value of a 5-bit input, every M < 2**3, every n in 0..62, both zero-point ends."""
    dut = Requantizer(in_width=5, mult_bits=3, spec=spec)
    values = list(range(-16, 16))
    configs = [(m, n, z) for m in range(8) for n in range(MAX_UNIT_SHIFT + 1) for z in (spec.qmin, spec.qmax)]
    assert _run(dut, configs, values) == []


def test_random_full_width(rng):
    """A 23-bit accumulator input with 16-bit multipliers: random M, every n, extremes of v."""
    spec = QuantSpec(8)
    dut = Requantizer(in_width=23, mult_bits=16, spec=spec)
    lo, hi = -(1 << 22), (1 << 22) - 1
    values = [lo, lo + 1, -1, 0, 1, hi - 1, hi] + rng.integers(lo, hi + 1, 25).tolist()
    configs = [(int(rng.choice([0, 1, 65535, int(rng.integers(1, 65536))])), n, int(rng.integers(0, 256)))
               for n in range(MAX_UNIT_SHIFT + 1)]
    assert _run(dut, configs, values) == []


def test_rejects_bad_widths():
    from quant.errors import QuantError

    with pytest.raises(QuantError, match="in_width"):
        Requantizer(in_width=0, mult_bits=4, spec=QuantSpec(4))
    with pytest.raises(QuantError, match="mult_bits"):
        Requantizer(in_width=4, mult_bits=True, spec=QuantSpec(4))
