"""Rung 5 of the verification ladder: the cycle model's unit level equals the RTL's cycle count.

Two sources of measured RTL cycles, both with an ideal source and sink:

* the Amaranth simulation of the unit (``rtl.pysim_run``), run here on seeded fuzz cases;
* the records of ``quagga rtl verify --json`` (cocotb on Icarus / Verilator), read from the
  JSON files under ``reports/rtl/`` or ``$QUAGGA_RTL_VERIFY_JSON``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from sim.cycle import unit_ideal_cycles, unit_latency, unit_total_beats
from sim.design import DesignPoint

REPO = Path(__file__).resolve().parents[2]


def _local_formula(indptr, F, dp) -> int:
    """The documented formula, written independently of sim.unit_stream."""
    deg = np.diff(np.asarray(indptr))
    return -(-F // dp.lanes) * int(np.maximum(deg, 1).sum()) + unit_latency(dp)


DESIGNS = [
    DesignPoint(bits=2, word_bits=16, max_degree=32),
    DesignPoint(bits=4, word_bits=16, max_degree=32, msg_requant=True),
    DesignPoint(bits=8, word_bits=16, max_degree=32, upd_requant=True, signed=True),
]


@pytest.mark.parametrize("dp", DESIGNS, ids=lambda d: f"b{d.bits}-m{int(d.msg_requant)}u{int(d.upd_requant)}")
def test_unit_model_equals_amaranth_cycles(dp):
    pytest.importorskip("amaranth")
    from rtl.pysim_run import run_cases
    from rtl.vectors import fuzz_cases, group_by_design

    cases = fuzz_cases(dp, 7, seed=11)
    checked = 0
    for design, group in group_by_design(cases, dp):
        runs = run_cases(design, group)
        for case, run in zip(group, runs):
            assert not run.mismatches, (case.name, run.mismatches[:2])
            model = unit_ideal_cycles(case.indptr, case.n_feat, design)
            assert run.cycles == model, (design.key(), case.name, run.cycles, model)
            assert model == _local_formula(case.indptr, case.n_feat, design)
            assert model == unit_total_beats(case.indptr, case.n_feat, design.lanes) + unit_latency(design)
            checked += 1
    assert checked == len(cases)


def _verify_json_files() -> list[Path]:
    env = os.environ.get("QUAGGA_RTL_VERIFY_JSON")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return sorted((REPO / "reports" / "rtl").glob("**/*.json"))


def _records(doc):
    """Per-case records of a ``quagga rtl verify --json`` document (any nesting of lists/dicts)."""
    if isinstance(doc, dict):
        if "cycles" in doc and ("indptr" in doc or "golden" in doc or "case" in doc):
            yield doc
        for v in doc.values():
            yield from _records(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _records(v)


def _case_graph(rec: dict, base: Path):
    """(indptr, F, design) of a record: inline arrays, or the golden-vector files it names."""
    design = DesignPoint.from_dict(rec["design"]) if isinstance(rec.get("design"), dict) else None
    if "indptr" in rec:
        return np.asarray(rec["indptr"]), int(rec.get("num_features") or rec.get("F")), design
    ref = rec.get("golden") or rec.get("case")
    if isinstance(ref, str):
        from sim.golden import load_case

        for cand in (Path(ref), base / ref, REPO / ref):
            if cand.with_suffix(".json").exists() or cand.exists():
                case = load_case(cand.with_suffix(""))
                return case.indptr, int(case.x.shape[1]), design or case.design
    return None


def test_unit_model_equals_rtl_verify_json_cycles():
    files = _verify_json_files()
    if not files:
        pytest.skip("no `quagga rtl verify --json` output found under reports/rtl/ (or $QUAGGA_RTL_VERIFY_JSON)")
    checked = 0
    for f in files:
        doc = json.loads(f.read_text())
        for rec in _records(doc):
            if rec.get("cycles") in (None, -1) or rec.get("ideal") is False or rec.get("backpressure"):
                continue  # only ideal source/sink runs are comparable
            got = _case_graph(rec, f.parent)
            if got is None or got[2] is None:
                continue
            indptr, F, design = got
            assert int(rec["cycles"]) == unit_ideal_cycles(indptr, F, design), (str(f), rec.get("name"))
            checked += 1
    if not checked:
        pytest.skip(f"RTL JSON files found ({len(files)}) but no ideal-source case records with a graph")
