"""The unit in Amaranth's simulator == the reference, bit for bit, and its cycle count ==
sim.design.stream.ideal_cycles with an ideal source and sink."""

from __future__ import annotations

import numpy as np
import pytest

from rtl.pysim_run import run_cases
from rtl.vectors import FUZZ_KINDS, RtlCase, fuzz_cases, group_by_design
from sim.verify import golden
from sim.design.point import DesignPoint
from sim.design.stream import ideal_cycles

DESIGNS = {
    "int2": dict(bits=2, word_bits=16),
    "int4-msg-upd": dict(bits=4, word_bits=16, msg_requant=True, upd_requant=True),
    "int8-upd": dict(bits=8, word_bits=16, upd_requant=True),
    "int4-signed-msg": dict(bits=4, word_bits=8, signed=True, msg_requant=True, weight_bits=4),
    "int1": dict(bits=1, word_bits=8),
}


def _check(dp, cases, **kw):
    for d, group in group_by_design(cases, dp):
        runs = run_cases(d, group, **kw)
        for run, case in zip(runs, group):
            assert run.mismatches == [], (case.name, run.mismatches[:3])
            assert run.saturations == case.saturations, case.name
            ideal = ideal_cycles(case.indptr, case.n_feat, d)
            if kw.get("bubbles", 0) == 0 and kw.get("backpressure", 0) == 0:
                assert run.cycles == ideal, case.name
            else:
                assert run.cycles >= ideal, case.name


@pytest.mark.parametrize("name", list(DESIGNS))
def test_fuzz_ideal_stream(name):
    dp = DesignPoint(name=name, **DESIGNS[name])
    cases = fuzz_cases(dp, len(FUZZ_KINDS), seed=7)
    assert any(c.saturations for c in cases)
    _check(dp, cases)


@pytest.mark.parametrize("name", ["int2", "int4-msg-upd", "int8-upd"])
def test_fuzz_bubbles_and_backpressure(name):
    dp = DesignPoint(name=name, **DESIGNS[name])
    _check(dp, fuzz_cases(dp, len(FUZZ_KINDS), seed=11), bubbles=0.3, backpressure=0.4, seed=3)


def test_configured_designs_small_cases():
    """configs/int{2,4,8}.toml as shipped (64-bit word), a few small cases each."""
    for bits in (2, 4, 8):
        dp = DesignPoint.load(f"configs/int{bits}.toml")
        cases = [RtlCase.build(f"g{k}", golden.params_for_design(dp, np.random.default_rng(k)),
                               *_tiny_graph(k), np.random.default_rng(k).integers(
                                   dp.feat_spec.qmin, dp.feat_spec.qmax + 1, (4, dp.lanes + 3)))
                 for k in range(3)]
        _check(dp, cases)


def _tiny_graph(seed):
    rng = np.random.default_rng(seed)
    deg = rng.integers(0, 4, 5)
    indptr = np.concatenate([[0], np.cumsum(deg)])
    indices = rng.integers(0, 4, int(indptr[-1]))
    w = rng.integers(0, 256, int(indptr[-1]))
    return indptr, indices, w


def test_single_edge_latency():
    """One row, one edge: cycles = 1 + latency."""
    dp = DesignPoint(bits=4, word_bits=8)
    p = golden.params_for_design(dp, np.random.default_rng(0))
    case = RtlCase.build("one", p, [0, 1], [0], [3], [[1, 2]])
    (run,) = run_cases(dp, [case])
    assert run.mismatches == [] and run.cycles == 1 + 4
