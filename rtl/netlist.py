"""Text-level transforms of the unit's generated Verilog for synthesis.

Amaranth writes one Verilog module per submodule instance (``quagga_aggregator.lane0``,
``.lane1``, ...), so a 32-lane unit holds 32 identical copies of the lane and of the
requantizer.  :func:`share_identical_modules` keeps one definition of each distinct module
and points every instance at it: synthesis then maps each distinct module once (the
hierarchy is flattened after technology mapping), which is what makes the wide units
synthesize in seconds rather than many minutes.  Simulation and export keep the original
text.
"""

from __future__ import annotations

import re

__all__ = ["share_identical_modules", "split_modules"]

_MODULE = re.compile(r"^module\s+(\\\S+|\w+)\s*\(", re.M)
_DUMP = re.compile(r"dump_module\$\d+")


def split_modules(verilog: str) -> tuple[str, list[tuple[str, str]]]:
    """``(preamble, [(name, text), ...])``: each module's text runs from the attributes above
    its ``module`` line through ``endmodule``."""
    starts = [m for m in _MODULE.finditer(verilog)]
    if not starts:
        return verilog, []
    chunks, pos = [], 0
    pieces = []
    for m in starts:
        # attributes ``(* ... *)`` on the lines just above belong to the module
        begin = m.start()
        while True:
            prev = verilog.rfind("\n", 0, begin - 1)
            line = verilog[prev + 1:begin]
            if line.startswith("(*") and begin > pos:
                begin = prev + 1
            else:
                break
        pieces.append((begin, m.group(1)))
    preamble = verilog[:pieces[0][0]]
    for k, (begin, name) in enumerate(pieces):
        end = pieces[k + 1][0] if k + 1 < len(pieces) else len(verilog)
        chunks.append((name, verilog[begin:end]))
    return preamble, chunks


def _normal(name: str, text: str) -> str:
    return _DUMP.sub("dump_module$0", text.replace(name, "\\<self>", 1)).rstrip()


def share_identical_modules(verilog: str) -> str:
    """The same design with each set of identical modules reduced to one definition.

    Modules are identical when their text is, up to their own name and Yosys' numbered
    ``dump_module`` helper; repeated until no two remain identical (a lane that holds a
    message requantizer becomes identical to its neighbours once their requantizers are
    shared).
    """
    while True:
        preamble, mods = split_modules(verilog)
        canon: dict[str, str] = {}
        rename: dict[str, str] = {}
        for name, text in mods:
            key = _normal(name, text)
            if key in canon:
                rename[name] = canon[key]
            else:
                canon[key] = name
        if not rename:
            return verilog
        kept = [(n, t) for n, t in mods if n not in rename]
        out = []
        for _, text in kept:
            for old, new in rename.items():
                # instance lines: ``  <module name>  <instance> (`` (escaped names end with a blank)
                text = re.sub(rf"^(\s+){re.escape(old)}(\s)", lambda m: m.group(1) + new + m.group(2), text,
                              flags=re.M)
            out.append(text.rstrip() + "\n\n")
        verilog = preamble + "".join(out)
