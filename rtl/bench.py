"""cocotb testbench of the exported aggregation unit (run by :mod:`rtl.runner`).

Everything comes through the environment (set by the runner's ``extra_env``):

``QUAGGA_RTL_DESIGN``        the design point as JSON (``DesignPoint.to_json``)
``QUAGGA_RTL_CASES``         a case batch file (:func:`rtl.vectors.save_batch`)
``QUAGGA_RTL_RESULTS``       where to write the per-case results (JSON)
``QUAGGA_RTL_BUBBLES``       probability of a source bubble per cycle (default 0)
``QUAGGA_RTL_BACKPRESSURE``  probability of ``o.ready`` low per cycle (default 0)
``QUAGGA_RTL_SEED``          seed of the bubble / back-pressure pattern (default 0)
``QUAGGA_RTL_COVERAGE``      where to write the functional coverage hits (JSON; optional)
``QUAGGA_RTL_STOP_ON_FAIL``  ``1``: stop after the first case that differs (mutation runs)

All cases run back to back in one simulation, with a one-cycle synchronous reset and new
configuration values before each.  Cycles are counted as ``sim.design.stream`` defines them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from quant.fileio import write_text_atomic
from rtl.coverage import Collector, beat_kinds
from rtl.vectors import compare_words, load_batch
from sim.design.point import DesignPoint
from sim.design.stream import beats, config_values, ideal_cycles

#: Give up on a case after this many cycles without a transfer.
MAX_IDLE = 1000


def _write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))


@cocotb.test()
async def aggregate_cases(dut):
    """Stream every case through the unit and compare with the reference, bit for bit."""
    dp = DesignPoint.from_dict(json.loads(os.environ["QUAGGA_RTL_DESIGN"]))
    cases = load_batch(os.environ["QUAGGA_RTL_CASES"])
    bubbles = float(os.environ.get("QUAGGA_RTL_BUBBLES", "0"))
    backpressure = float(os.environ.get("QUAGGA_RTL_BACKPRESSURE", "0"))
    rng = np.random.default_rng(int(os.environ.get("QUAGGA_RTL_SEED", "0")))
    results_path = Path(os.environ["QUAGGA_RTL_RESULTS"])
    coverage_path = os.environ.get("QUAGGA_RTL_COVERAGE")
    cover = Collector(dp) if coverage_path else None
    stop_on_fail = os.environ.get("QUAGGA_RTL_STOP_ON_FAIL") == "1"
    ideal = bubbles == 0 and backpressure == 0

    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    Clock(dut.clk, 10, unit="ns").start()
    records = []
    for case in cases:
        stream = [b for p in beats(case.indptr, case.indices, case.w, case.x, dp, case.params) for b in p]
        n_chunks = -(-case.n_feat // dp.lanes)
        n_out = case.n_rows * n_chunks
        kinds = beat_kinds(case.indptr, n_chunks) if cover else None
        await RisingEdge(dut.clk)
        dut.rst.value = 1
        for port, value in config_values(dp, case.params).items():
            getattr(dut, port).value = value
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        words: list[int] = []
        k = edge = idle = 0
        first_in = last_out = None
        offering = False
        while len(words) < n_out:
            if k < len(stream) and not offering:
                offering = bool(rng.random() >= bubbles)
            ready = bool(rng.random() >= backpressure)
            dut.i__valid.value = int(offering)
            if offering:
                dut.i__payload.value = stream[k]
            dut.o__ready.value = int(ready)
            await ReadOnly()
            i_ready = int(dut.i__ready.value)
            o_valid = int(dut.o__valid.value)
            in_fire = offering and i_ready == 1
            out_fire = ready and o_valid == 1
            if cover:
                more = k < len(stream)
                cover.cycle(int(offering), i_ready, o_valid, int(ready), kinds[k] if more else None,
                            more and not offering)
            word = int(dut.o__payload.value) if out_fire else None
            await RisingEdge(dut.clk)
            if in_fire:
                first_in = edge if first_in is None else first_in
                k += 1
                offering = False
            if out_fire:
                words.append(word)
                last_out = edge
            idle = 0 if (in_fire or out_fire) else idle + 1
            if idle > MAX_IDLE:
                break
            edge += 1
        dut.i__valid.value = 0
        await ReadOnly()
        sats = int(dut.saturations.value)
        cycles = last_out - first_in + 1 if first_in is not None and last_out is not None else -1
        mismatches = compare_words(case, words, dp)
        if cover:
            cover.case(case, words)
        if sats != case.saturations % (1 << len(dut.saturations)):
            mismatches.append({"pass": -1, "row": -1, "lane": -1, "got": sats, "expected": case.saturations,
                               "what": "saturations"})
        records.append({"name": case.name, "rows": case.n_rows, "features": case.n_feat,
                        "edges": int(case.indptr[-1]), "beats": len(stream), "cycles": cycles,
                        "ideal_cycles": ideal_cycles(case.indptr, case.n_feat, dp),
                        "saturations": sats, "expected_saturations": case.saturations,
                        "mismatches": mismatches})
        if stop_on_fail and (mismatches or (ideal and cycles != records[-1]["ideal_cycles"])):
            break
    _write_json(results_path, records)
    if cover:
        _write_json(Path(coverage_path), cover.export())
    bad = [r["name"] for r in records if r["mismatches"]]
    assert not bad, f"{len(bad)} of {len(records)} cases differ from the reference: {bad[:10]}"
    if ideal:
        slow = [r["name"] for r in records if r["cycles"] != r["ideal_cycles"]]
        assert not slow, f"cycle count differs from ideal_cycles on {slow[:10]}"
