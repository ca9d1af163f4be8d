"""cocotb on Icarus and Verilator: the exported unit == the reference on a reduced seeded
fuzz set (one build + one simulation per design), with and without stalls.

The full sets run through ``quagga rtl verify`` (200 cases per bit width) and with
``--runslow``.
"""

from __future__ import annotations

import shutil

import pytest

from rtl.runner import run_cocotb, simulator_path
from rtl.vectors import fuzz_cases, group_by_design
from sim.design.point import DesignPoint

pytestmark = pytest.mark.cocotb

simulator_path()
HAVE = {"icarus": shutil.which("iverilog") is not None, "verilator": shutil.which("verilator") is not None}

# (simulator, design kwargs, cases, bubbles, backpressure)
CI = [
    ("icarus", dict(bits=2, word_bits=16, msg_requant=True, upd_requant=True), 14, 0.0, 0.0),
    ("icarus", dict(bits=4, word_bits=16), 14, 0.25, 0.35),
    ("icarus", dict(bits=8, word_bits=16, signed=True, upd_requant=True), 14, 0.0, 0.0),
    ("verilator", dict(bits=4, word_bits=16, msg_requant=True, upd_requant=True), 14, 0.25, 0.35),
]


def _run(tmp_path, sim, kw, n, bubbles, backpressure, seed=1):
    if not HAVE[sim]:
        pytest.skip(f"{sim} not installed")
    dp = DesignPoint(**kw)
    cases = fuzz_cases(dp, n, seed=seed)
    for d, group in group_by_design(cases, dp):
        r = run_cocotb(d, group, sim, tmp_path / f"{sim}-{d.key()}", bubbles=bubbles,
                       backpressure=backpressure, seed=seed)
        assert r.tests == 1 and r.failed == 0, [x["mismatches"] for x in r.records if x["mismatches"]][:3]
        assert len(r.records) == len(group)
        for rec in r.records:
            assert rec["mismatches"] == [], rec
            assert rec["saturations"] == rec["expected_saturations"]
            if bubbles == 0 and backpressure == 0:
                assert rec["cycles"] == rec["ideal_cycles"], rec["name"]
            else:
                assert rec["cycles"] >= rec["ideal_cycles"]
    assert any(c.saturations for c in cases)


@pytest.mark.parametrize("sim,kw,n,bubbles,backpressure", CI,
                         ids=[f"{c[0]}-int{c[1]['bits']}" for c in CI])
def test_cocotb_fuzz(tmp_path, sim, kw, n, bubbles, backpressure):
    _run(tmp_path, sim, kw, n, bubbles, backpressure)


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
