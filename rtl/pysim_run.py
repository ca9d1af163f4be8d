"""Run cases through the unit in Amaranth's Python simulator (fast unit-level checks).

The testbench drives the input stream with optional random bubbles, the output with
optional random back-pressure, and counts cycles the way ``sim.design.stream`` defines them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rtl.aggregator import Aggregator
from rtl.vectors import RtlCase, check_case, compare_words
from sim.design.point import DesignPoint
from sim.design.stream import beats, config_values

__all__ = ["CaseRun", "run_cases"]


@dataclass
class CaseRun:
    """Result of one case: output words, measured cycles, saturation count, mismatches."""

    name: str
    words: list[int]
    cycles: int
    saturations: int
    mismatches: list[dict] = field(default_factory=list)


def run_cases(dp: DesignPoint, cases: Sequence[RtlCase], *, bubbles: float = 0.0,
              backpressure: float = 0.0, seed: int = 0, vcd: str | None = None,
              max_idle: int = 1000) -> list[CaseRun]:
    """Simulate ``cases`` back to back on one unit (reset between cases).

    Parameters
    ----------
    bubbles : float
        Probability that the source holds ``i.valid`` low in a cycle before offering a beat.
    backpressure : float
        Probability that the sink holds ``o.ready`` low in a cycle.
    seed : int
        Seed of the bubble / back-pressure pattern.
    vcd : str, optional
        Write a waveform file.
    max_idle : int
        Give up on a case after this many cycles without any transfer.
    """
    for c in cases:
        check_case(c, dp)
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    dut = Aggregator(dp)
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    rng = np.random.default_rng(seed)
    results: list[CaseRun] = []
    in_payload = dut.i.payload.as_value()
    out_payload = dut.o.payload.as_value()

    async def bench(ctx):
        for case in cases:
            stream = [b for p in beats(case.indptr, case.indices, case.w, case.x, dp, case.params) for b in p]
            n_out = case.n_rows * (len(stream) and -(-case.n_feat // dp.lanes))
            ctx.set(cd.rst, 1)
            for port, value in config_values(dp, case.params).items():
                ctx.set(getattr(dut, port), value)
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            ctx.set(cd.rst, 0)
            words: list[int] = []
            k, edge, idle = 0, 0, 0
            first_in = last_out = None
            offering = False
            while len(words) < n_out:
                if k < len(stream) and not offering:
                    offering = rng.random() >= bubbles
                ready = rng.random() >= backpressure
                ctx.set(dut.i.valid, int(offering))
                if offering:
                    ctx.set(in_payload, stream[k])
                ctx.set(dut.o.ready, int(ready))
                in_fire = offering and ctx.get(dut.i.ready)
                out_fire = ready and ctx.get(dut.o.valid)
                word = ctx.get(out_payload) if out_fire else None
                await ctx.tick()
                if in_fire:
                    if first_in is None:
                        first_in = edge
                    k += 1
                    offering = False
                if out_fire:
                    words.append(int(word))
                    last_out = edge
                idle = 0 if (in_fire or out_fire) else idle + 1
                if idle > max_idle:
                    break
                edge += 1
            ctx.set(dut.i.valid, 0)
            sats = ctx.get(dut.saturations)
            cycles = (last_out - first_in + 1) if (first_in is not None and last_out is not None) else -1
            results.append(CaseRun(case.name, words, cycles, int(sats), compare_words(case, words, dp)))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results
