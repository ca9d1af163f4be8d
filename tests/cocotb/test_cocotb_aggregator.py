"""cocotb on Icarus and Verilator: the exported unit == the reference on the CI set
(:data:`rtl.ci_set.CI_RUNS`: a reduced seeded fuzz set and a code sweep, one build + one
simulation per design), with and without stalls, and the set's functional coverage.

The full sets run through ``quagga rtl verify`` (200 cases per bit width) and with
``--runslow``.
"""

from __future__ import annotations

import shutil

import pytest

from rtl.ci_set import CI_RUNS, run_ci
from rtl.coverage import merge
from rtl.runner import run_cocotb, simulator_path
from rtl.vectors import fuzz_cases, group_by_design
from sim.design.point import DesignPoint

pytestmark = pytest.mark.cocotb

simulator_path()
HAVE = {"icarus": shutil.which("iverilog") is not None, "verilator": shutil.which("verilator") is not None}

#: Coverage exported by each CI run of this module, by run name (merged by test_ci_coverage).
COVERAGE: dict[str, list[dict]] = {}


def _check(records, group, stalls: bool):
    for rec in records:
        assert rec["mismatches"] == [], rec
        assert rec["saturations"] == rec["expected_saturations"]
        if not stalls:
            assert rec["cycles"] == rec["ideal_cycles"], rec["name"]
        else:
            assert rec["cycles"] >= rec["ideal_cycles"]
    assert len(records) == len(group)


def _run_ci(tmp_path, run):
    if not HAVE[run.simulator]:
        pytest.skip(f"{run.simulator} not installed")
    results = run_ci(run, tmp_path)
    for _, group, r in results:
        assert r.tests == 1 and r.failed == 0, [x["mismatches"] for x in r.records if x["mismatches"]][:3]
        _check(r.records, group, run.bubbles > 0 or run.backpressure > 0)
    assert any(c.saturations for _, group, _ in results for c in group)
    COVERAGE[run.name] = [r.coverage for _, _, r in results]


def _run(tmp_path, sim, kw, n, bubbles, backpressure, seed=1):
    if not HAVE[sim]:
        pytest.skip(f"{sim} not installed")
    dp = DesignPoint(**kw)
    cases = fuzz_cases(dp, n, seed=seed)
    for d, group in group_by_design(cases, dp):
        r = run_cocotb(d, group, sim, tmp_path / f"{sim}-{d.key()}", bubbles=bubbles,
                       backpressure=backpressure, seed=seed)
        assert r.tests == 1 and r.failed == 0, [x["mismatches"] for x in r.records if x["mismatches"]][:3]
        _check(r.records, group, bubbles > 0 or backpressure > 0)
    assert any(c.saturations for c in cases)


@pytest.mark.parametrize("run", CI_RUNS, ids=[r.name for r in CI_RUNS])
def test_cocotb_fuzz(tmp_path, run):
    _run_ci(tmp_path, run)


def test_ci_coverage(tmp_path):
    """The CI set together hits every functional coverage bin (runs it where an earlier test
    of this module did not)."""
    for run in CI_RUNS:
        if run.name not in COVERAGE:
            _run_ci(tmp_path / run.name, run)
    report = merge(c for runs in COVERAGE.values() for c in runs)
    assert report["bins"] > 0
    assert report["missed"] == [], report["missed"]


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_cocotb_fuzz_full(tmp_path, sim, bits):
    """200 cases per bit width on the shipped 64-bit configs, with stalls."""
    _run(tmp_path, sim, dict(bits=bits, word_bits=64, msg_requant=True, upd_requant=True), 200, 0.2, 0.3)


def test_cocotb_vcd(tmp_path):
    if not HAVE["icarus"]:
        pytest.skip("icarus not installed")
    dp = DesignPoint(bits=4, word_bits=8)
    r = run_cocotb(dp, fuzz_cases(dp, 1, seed=2), "icarus", tmp_path / "wave", waves=True)
    assert r.ok and r.waves is not None and r.waves.stat().st_size > 0
