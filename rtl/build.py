"""Design-point checks and deterministic Verilog export of the aggregation unit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from quant.fileio import write_text_atomic
from quant.pack import PACKABLE_BITS
from sim.design.point import DesignError, DesignPoint

__all__ = ["TOP_NAME", "check_design", "design_header", "to_verilog", "write_verilog"]

log = logging.getLogger(__name__)

#: Module name of the top in the generated Verilog (the cocotb ``hdl_toplevel``).
TOP_NAME = "quagga_aggregator"
#: Largest number of lanes the generator accepts (keeps elaboration and simulation sane).
MAX_LANES = 256


def check_design(dp: DesignPoint) -> None:
    """Refuse a design point the unit cannot be built from, before any elaboration.

    ``DesignPoint`` already validates itself; this repeats the checks the RTL relies on
    (so a hand-forged object is caught too) and adds the generator's own limits.

    Raises
    ------
    DesignError
        Naming the field and value: unsupported ``bits``, lanes not dividing ``word_bits``,
        an accumulator narrower than the overflow bound, too many lanes.
    """
    if not isinstance(dp, DesignPoint):
        raise DesignError(f"design must be a sim.design.point.DesignPoint, not {type(dp).__name__}")
    if dp.bits not in PACKABLE_BITS:
        raise DesignError(f"bits must be one of {PACKABLE_BITS} for the RTL, not {dp.bits!r}")
    if dp.word_bits % dp.bits:
        raise DesignError(f"word_bits must be a multiple of bits={dp.bits} so lanes divide the word, "
                          f"not {dp.word_bits!r}")
    if dp.acc_width < dp.required_acc_bits:
        raise DesignError(f"acc_bits must be >= {dp.required_acc_bits} for max_degree={dp.max_degree}, "
                          f"not {dp.acc_width!r}")
    if not 1 <= dp.lanes <= MAX_LANES:
        raise DesignError(f"lanes (word_bits // bits) must be in 1..{MAX_LANES}, not {dp.lanes!r}")


def design_header(dp: DesignPoint) -> str:
    """A Verilog comment naming the design point (deterministic: no paths, no dates)."""
    return (f"// Quagga aggregation unit, design {dp.key()} ({dp.name}): bits={dp.bits} "
            f"signed={dp.signed} word_bits={dp.word_bits} lanes={dp.lanes} weight_bits={dp.weight_bits} "
            f"mult_bits={dp.mult_bits} acc_bits={dp.acc_width} msg_requant={dp.msg_requant} "
            f"upd_requant={dp.upd_requant}\n")


def to_verilog(dp: DesignPoint, name: str = TOP_NAME) -> str:
    """Elaborate the unit for ``dp`` and return its Verilog (``emit_src=False``: reproducible)."""
    from amaranth.back import verilog

    from rtl.aggregator import Aggregator

    check_design(dp)
    top = Aggregator(dp)
    text = verilog.convert(top, name=name, emit_src=False)
    return design_header(dp) + text


def write_verilog(dp: DesignPoint, path: str | os.PathLike, name: str = TOP_NAME) -> Path:
    """Write :func:`to_verilog` to ``path`` atomically (temp file in the same dir + rename)."""
    text = to_verilog(dp, name=name)
    path = write_text_atomic(path, text)
    log.info("wrote %s (%d bytes)", path, len(text))
    return path
