"""``quagga bench``: measured speed of the bit-exact packed INT2/INT4/INT8 CPU kernels against
every FP32 CPU form and against our own FP32 kernel, in one run.

``quagga bench MODEL.qim`` times the exported (trained) model end to end on its own graph
against FP32 inference of the same model from the run's ``checkpoint.pt``
(:mod:`quagga.bench.model_bench`), plus one 64-feature aggregation on that graph.
Without a model: a single 64-feature aggregation layer and end-to-end SMP (K=10) inference of
a calibrated model on a benchmark graph (:mod:`quagga.bench.harness`).  Prints the timings,
ratios, bit-exactness and the machine; ``--json`` writes the full result (every repeat time)
atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quant.fileio import write_bytes_atomic
from quagga.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="an exported model (.qim) to time end to end against FP32 inference "
                             "of the same model (float weights from checkpoint.pt next to it)")
    parser.add_argument("--dataset", default=None,
                        help="without MODEL: tolokers (from $QUAGGA_DATA_ROOT), synthetic (500k "
                             "nodes, 5M edges) or quick (small graph for tests); default synthetic. "
                             "With MODEL: the dataset of the features (default: the model's)")
    parser.add_argument("--data-root", default=None,
                        help="with MODEL: dataset root (default $QUAGGA_DATA_ROOT)")
    parser.add_argument("--checkpoint", default=None,
                        help="with MODEL: the run's checkpoint.pt (default: next to MODEL)")
    parser.add_argument("--bits", default="2,4,8", help="comma-separated widths (default 2,4,8)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="numba and torch threads (default 2)")
    parser.add_argument("--workload", choices=["all", "aggregation", "smp"], default="all",
                        help="with MODEL, 'smp' times the model only (no aggregation layer)")
    parser.add_argument("--features", type=int, default=64,
                        help="features of the aggregation layer (default 64)")
    parser.add_argument("--steps", type=int, default=10, help="SMP propagation steps K (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="the small 'quick' graph, 3 repeats, K=2 (tests/CI)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    parser.add_argument("--host-probe", metavar="FILE",
                        help="a host probe (python -m quagga.bench.host_probe --out FILE): print the "
                             "host model's predicted time beside each measured aggregation "
                             "kernel and store it in the JSON")
    parser.add_argument("--probe", action="store_true",
                        help="measure the host probe now, with --threads, before the benchmark (saved "
                             "to --host-probe FILE if given)")
    parser.add_argument("--probe-statistic", choices=["median", "best", "busy"], default="median",
                        help="with --probe: median wall time of the probe's repeats (compared with the "
                             "medians), the fastest (compared with the fastest rounds) or the median "
                             "busy time, CPU seconds / threads (compared with the busy time)")


def _bits(text: str) -> tuple[int, ...]:
    try:
        bits = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise CLIError(f"--bits must be comma-separated integers, not {text!r}") from None
    if not bits or any(b not in (1, 2, 4, 8) for b in bits):
        raise CLIError(f"--bits must list widths from 1, 2, 4, 8, not {text!r}")
    return bits


def run(args) -> int:
    from quagga.bench.machine import prefer_passive_omp

    prefer_passive_omp()
    from tqdm import tqdm

    from quagga.bench import harness

    bits = _bits(args.bits)
    for name in ("repeats", "threads", "features", "steps"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name} must be >= 1, not {getattr(args, name)}")
    host = _host(args)
    if args.model:
        return _run_model(args, host)
    dataset, repeats, steps = args.dataset or "synthetic", args.repeats, args.steps
    if args.quick:
        dataset, repeats, steps = "quick", min(repeats, 3), min(steps, 2)
    if dataset not in harness.DATASETS:
        raise CLIError(f"--dataset must be one of {list(harness.DATASETS)}, not {dataset!r}")
    workloads = ("aggregation", "smp") if args.workload == "all" else (args.workload,)
    bar = tqdm(desc="bench", unit="stage", leave=False)

    def progress(msg: str) -> None:
        bar.set_postfix_str(msg[:60])
        bar.update(1)

    try:
        res = harness.run(dataset, bits, repeats, args.threads, workloads, args.features, steps,
                          args.seed, progress, host)
    finally:
        bar.close()
    print(harness.format_table(res))
    if args.json:
        write_bytes_atomic(Path(args.json), (json.dumps(res, indent=1) + "\n").encode())
        print(f"wrote {args.json}")
    return 0 if res["bit_exact"] else 1


def _host(args):
    """The host probe of ``--host-probe`` / ``--probe`` (None without either)."""
    from sim.design.host import load_host

    if args.probe:
        from quagga.bench.host_probe import describe_host, probe

        host = probe(args.threads, statistic=args.probe_statistic,
                     say=lambda msg: print(f"... host probe: {msg}", flush=True))
        if args.host_probe:
            host.save(args.host_probe)
            print(f"wrote {args.host_probe}")
        print(describe_host(host))
        return host
    if args.host_probe:
        return load_host(args.host_probe)  # DesignError (exit 2) names the file and field
    return None


def _run_model(args, host=None) -> int:
    from quagga.bench import model_bench

    if not Path(args.model).is_file():
        raise CLIError(f"MODEL {args.model!r} does not exist")
    res = model_bench.run_model_bench(
        args.model, args.dataset, args.data_root, args.checkpoint, args.repeats, args.threads,
        None if args.workload == "smp" else args.features,
        progress=lambda msg: print(f"... {msg}", flush=True), host=host)
    print(model_bench.format_model_table(res))
    if args.json:
        write_bytes_atomic(Path(args.json), (json.dumps(res, indent=1) + "\n").encode())
        print(f"wrote {args.json}")
    return 0 if res["bit_exact"] else 1
