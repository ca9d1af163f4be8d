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

from sim.accel.cycle import unit_ideal_cycles, unit_latency, unit_total_beats
from sim.design.point import DesignPoint

REPO = Path(__file__).resolve().parents[3]


def _local_formula(indptr, F, dp) -> int:
    """The documented formula, written independently of sim.design.stream."""
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
        return [Path(p) for p in env.split(os.pathsep) if p and Path(p).is_file()]
    return sorted((REPO / "reports" / "rtl").glob("**/*.json"))


def _cases_of_summary(doc: dict):
    """Rebuild the cases of a ``quagga rtl verify --json`` summary: ``{name: (RtlCase, design)}``.

    The summary names its source (``fuzz:seed=S`` with ``design`` and ``cases``, or
    ``golden:DIR``); fuzz cases are regenerated deterministically, golden ones are read back.
    """
    from rtl.vectors import from_golden, fuzz_cases, group_by_design

    src = str(doc.get("source", ""))
    dp = DesignPoint.from_dict(doc["design"])
    if src.startswith("fuzz:seed="):
        cases = fuzz_cases(dp, int(doc["cases"]), seed=int(src.split("=", 1)[1]))
    elif src.startswith("golden:") and Path(src[7:]).is_dir():
        from sim.verify import golden
        cases = [from_golden(c) for c in golden.load_cases(src[7:])]
    else:
        return {}
    return {c.name: (c, d) for d, group in group_by_design(cases, dp) for c in group}


def test_unit_model_equals_rtl_verify_json_cycles():
    files = _verify_json_files()
    if not files:
        pytest.skip("no `quagga rtl verify --json` output found under reports/rtl/ (or $QUAGGA_RTL_VERIFY_JSON)")
    pytest.importorskip("amaranth")
    checked = 0
    for f in files:
        doc = json.loads(f.read_text())
        if not isinstance(doc, dict) or "per_case" not in doc:
            continue
        if doc.get("bubbles") or doc.get("backpressure"):
            continue  # only ideal source/sink runs are comparable
        cases = _cases_of_summary(doc)
        for rec in doc["per_case"]:
            if rec.get("name") not in cases:
                continue
            case, design = cases[rec["name"]]
            assert design.key() == rec["design_key"], (str(f), rec["name"])
            model = unit_ideal_cycles(case.indptr, case.n_feat, design)
            assert int(rec["cycles"]) == model, (str(f), rec["name"], rec["cycles"], model)
            checked += 1
    if not checked:
        pytest.skip(f"RTL JSON files found ({len(files)}) but none with ideal-source fuzz/golden case records")
