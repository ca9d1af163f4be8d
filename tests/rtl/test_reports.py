"""The committed RTL reports hold what they claim: the pnr table and its FPGA presets agree,
the 64-bit unit's rows were built in under five minutes, the mutation score and the
coverage of the CI set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sim.design.point import DesignPoint

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / "reports" / "rtl"
PNR = REPORTS / "pnr.json"
SYNTH = REPORTS / "synth.json"
PRESETS = sorted((REPO / "configs").glob("fpga-*.toml"))


def test_pnr_table_rows():
    doc = json.loads(PNR.read_text())
    rows = doc["rows"]
    assert sorted(r["bits"] for r in rows) == [2, 4, 8]
    assert len({r["word_bits"] for r in rows}) == 1
    for r in rows:
        assert r["fmax_mhz"] > 0 and r["luts"] > 0 and r["ffs"] > 0
        assert {"device", "brams", "dsps", "seconds"} <= set(r)
        if r["word_bits"] == 64:
            assert r["cpu_seconds"] < 300, r      # under 5 minutes of (single-threaded) CPU
    assert doc["command"].startswith("quagga rtl pnr-table")


def test_synth_table_has_the_64_bit_unit_built_in_time():
    rows = [r for r in json.loads(SYNTH.read_text())["designs"] if r["word_bits"] == 64]
    assert sorted(r["bits"] for r in rows) == [2, 4, 8]
    assert all(r["seconds"] < 300 and r["cpu_seconds"] < 300 for r in rows)


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_fpga_preset_clock_is_the_pnr_fmax(preset):
    dp = DesignPoint.load(preset)
    rows = json.loads(PNR.read_text())["rows"]
    row = next(r for r in rows if preset.stem == f"fpga-{r['device']}-int{r['bits']}")
    assert dp.bits == row["bits"] and dp.word_bits == row["word_bits"] and dp.key().startswith(
        f"b{row['bits']}w{row['word_bits']}")
    assert dp.clock_hz == math.floor(row["fmax_mhz"]) * 1e6


def test_presets_exist_for_every_row():
    rows = json.loads(PNR.read_text())["rows"]
    assert {f"fpga-{r['device']}-int{r['bits']}" for r in rows} <= {p.stem for p in PRESETS}


def test_mutation_report_meets_the_bar():
    doc = json.loads((REPORTS / "mutation.json").read_text())
    assert doc["mutants"] >= 100 and doc["score"] >= 0.95
    assert doc["killed"] + doc["equivalent"] + doc["survived"] + doc["invalid"] == doc["mutants"]
    assert len(doc["results"]) == doc["mutants"]
    for r in doc["results"]:
        assert r["description"] and r["status"] in ("killed", "equivalent", "survived", "invalid")
        assert r["status"] != "killed" or r["killed_by"]
    assert {r["category"] for r in doc["results"]} == {"operator", "constant", "off_by_one", "stuck"}


def test_coverage_report_hits_every_bin():
    doc = json.loads((REPORTS / "coverage.json").read_text())
    assert doc["bins"] > 0 and doc["hit"] == doc["bins"] and doc["missed"] == []
    assert doc["failed_runs"] == []
