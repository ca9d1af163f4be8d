"""``quagga run``: the whole flow on one dataset (default: the built-in synthetic graph).

Trains FP32/INT8/INT4/INT2, exports, simulates with the bit-exact check, verifies trained
propagation rows in RTL (cocotb on Icarus), estimates cycles and energy, benchmarks the
low-bit CPU kernels, and writes the report.  See :mod:`quagga.flow`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quagga.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None,
                        help="dataset name (Cora, CiteSeer, Tolokers, ...) or graph file; default: built-in synthetic")
    parser.add_argument("--data-root", default=None, help="dataset root (default $QUAGGA_DATA_ROOT)")
    parser.add_argument("--out", default="runs/default", help="run directory (default runs/default)")
    parser.add_argument("--model", default="smp", choices=("smp", "appnp", "gcn"))
    parser.add_argument("--layers", type=int, default=10, help="propagation steps K (default 10)")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs per precision (default 100)")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated (default 0)")
    parser.add_argument("--precisions", default="fp32,int8,int4,int2",
                        help="comma-separated subset of fp32,int8,int4,int2")
    parser.add_argument("--rtl-rows", type=int, default=64,
                        help="rows of each trained propagation step verified in RTL (default 64)")
    parser.add_argument("--rtl-simulator", default="icarus", choices=("icarus", "verilator"))
    parser.add_argument("--bench-dataset", default="synthetic",
                        help="graph of the measured benchmark: synthetic (5M edges), tolokers or quick")
    parser.add_argument("--bench-repeats", type=int, default=3, help="timed repeats of the benchmark (default 3)")
    parser.add_argument("--bench-steps", type=int, default=2,
                        help="SMP propagation steps K in the end-to-end benchmark (default 2 to keep `quagga run` "
                             "short; `quagga bench` measures K=10)")
    parser.add_argument("--skip", default="", help="comma-separated stages to skip (e.g. bench,rtl)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the stages a previous run in --out finished (same options) and run the rest")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    from quagga.flow import PRECISIONS, Flow, FlowOptions

    precs = tuple(p.strip().lower() for p in args.precisions.split(",") if p.strip())
    known = dict(PRECISIONS)
    for p in precs:
        if p not in known:
            raise CLIError(f"--precisions entry must be one of {sorted(known)}, not {p!r}")
    skip = tuple(s.strip() for s in args.skip.split(",") if s.strip())
    for s in skip:
        if s not in Flow.STAGES:
            raise CLIError(f"--skip entry must be one of {list(Flow.STAGES)}, not {s!r}")
    for name in ("layers", "epochs", "rtl_rows", "bench_repeats", "bench_steps"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, not {getattr(args, name)}")
    opts = FlowOptions(out=Path(args.out), dataset=args.dataset, data_root=args.data_root, model=args.model,
                       layers=args.layers, epochs=args.epochs, seeds=args.seeds, precisions=precs,
                       rtl_simulator=args.rtl_simulator, rtl_rows=args.rtl_rows,
                       bench_dataset=args.bench_dataset, bench_repeats=args.bench_repeats,
                       bench_steps=args.bench_steps, skip=skip, verbose=args.verbose)
    from quagga.commands.train import parse_seeds
    from training.data import load_dataset

    parse_seeds(args.seeds)
    if args.bench_dataset not in ("synthetic", "tolokers", "quick"):
        raise CLIError(f"--bench-dataset must be one of ['quick', 'synthetic', 'tolokers'], "
                       f"not {args.bench_dataset!r}")
    flow = Flow(opts)
    if "data" not in skip:
        flow.graph = load_dataset(args.dataset, args.data_root)  # refuse bad input before writing
    if args.resume:  # refuse a run directory made with other options before anything is shown
        flow.finished = flow.finished_stages()

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(Flow.STAGES), desc="quagga run", unit="stage", file=sys.stderr)

    def progress(stage: str, msg: str) -> None:
        if msg in ("ok", "failed", "skipped"):
            r = flow.results[stage]
            line = f"{stage}: {r.status}" + (f" ({r.error})" if r.error else "")
            if r is flow.finished.get(stage):
                line += " (kept from the previous run)"
            if bar is not None:
                bar.write(line, file=sys.stdout)
                bar.update(1)
            else:
                print(line, flush=True)
        elif bar is not None:
            bar.set_postfix_str(f"{stage}: {msg}")

    flow.progress = progress
    try:
        results = flow.run()
    finally:
        if bar is not None:
            bar.close()
    width = max(len(k) for k in results)
    for name, r in results.items():
        line = f"{name:<{width}}  {r.status:<7}  {r.seconds:7.1f} s"
        if r.error:
            line += f"  {r.error}"
        print(line)
    print(f"report: {Path(args.out) / 'report' / 'index.md'}")
    failed = [k for k, r in results.items() if r.status == "failed"]
    return 1 if failed else 0
