"""The CI cocotb set: the reduced, seeded runs that every test run makes on Icarus and Verilator.

Shared by ``tests/cocotb`` and ``quagga rtl coverage`` (which writes the coverage report of
exactly this set).  Each run is one design, one build per design the cases need (the
``saturate`` fuzz kind needs a narrower accumulator), one simulation per build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rtl.vectors import RtlCase, code_sweep_case, fuzz_cases, group_by_design
from sim.design.point import DesignPoint

__all__ = ["CI_RUNS", "CiRun", "ci_cases", "run_ci"]


@dataclass(frozen=True)
class CiRun:
    """One entry of the CI set: simulator, design, seeded fuzz cases, stall probabilities."""

    name: str
    simulator: str
    design: dict = field(hash=False)
    cases: int
    bubbles: float
    backpressure: float
    seed: int = 1

    def design_point(self) -> DesignPoint:
        return DesignPoint(**self.design)


CI_RUNS = (
    CiRun("icarus-int2", "icarus", dict(bits=2, word_bits=16, msg_requant=True, upd_requant=True), 14, 0.0, 0.0),
    CiRun("icarus-int4", "icarus", dict(bits=4, word_bits=16), 14, 0.25, 0.35),
    CiRun("icarus-int8", "icarus", dict(bits=8, word_bits=16, signed=True, upd_requant=True), 14, 0.0, 0.0),
    CiRun("verilator-int4", "verilator", dict(bits=4, word_bits=16, msg_requant=True, upd_requant=True), 14,
          0.25, 0.35),
)


def ci_cases(run: CiRun) -> list[RtlCase]:
    """The run's seeded fuzz cases plus a code sweep (every output code of the width)."""
    dp = run.design_point()
    return fuzz_cases(dp, run.cases, seed=run.seed) + [code_sweep_case(dp, run.seed)]


def run_ci(run: CiRun, build_root: str | os.PathLike, *, coverage: bool = True):
    """Run one CI entry; returns ``[(design, cases, CocotbRun), ...]`` (one per build)."""
    from rtl.runner import run_cocotb

    dp = run.design_point()
    out = []
    for d, group in group_by_design(ci_cases(run), dp):
        r = run_cocotb(d, group, run.simulator, Path(build_root) / f"{run.name}-{d.key()}", bubbles=run.bubbles,
                       backpressure=run.backpressure, seed=run.seed, coverage=coverage)
        out.append((d, group, r))
    return out
