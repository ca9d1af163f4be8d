"""``quagga sweep``: design points x precisions x datasets through Dask, a CSV and a Pareto plot.

Every (dataset, design point) is one task with one cache file in ``--cache-dir``; a rerun reads
finished tasks back and computes only the missing ones.  Tasks run on a local Dask cluster
(``LocalCluster``, ``--workers`` processes, default 2), on an existing scheduler
(``--scheduler tcp://HOST:8786``), or in this process (``--no-dask``).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

from quagga.cli import CLIError
from quant.fileio import write_bytes_atomic, write_text_atomic
from quagga.commands.estimate import (DEFAULT_PRECISIONS, add_template_arguments,
                                      check_graph_names, model_workload, template_from_args)
from quagga.design_args import design_from_args

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL.qim",
                        help="exported integer model to sweep (its own graph); omit for a --workload stand-in")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME",
                        help="dataset (repeatable; as for quagga estimate; with a model, its graph hash is checked)")
    add_template_arguments(parser)
    parser.add_argument("--grid", metavar="TOML", help="sweep file: [base] design keys, [grid] key = [values]")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="sweep a design key over values (repeatable; adds to --grid)")
    parser.add_argument("--precisions", default=",".join(DEFAULT_PRECISIONS),
                        help="comma-separated precisions (default fp32,int8,int4,int2)")
    parser.add_argument("--csv", required=True, metavar="FILE", help="output CSV")
    parser.add_argument("--plot", metavar="FILE", help="Pareto plot (time vs energy) PNG")
    parser.add_argument("--cache-dir", default=".quagga-cache/sweep", help="one result file per point "
                        "(default .quagga-cache/sweep)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler, e.g. tcp://HOST:8786")
    parser.add_argument("--workers", type=int, default=2, help="local cluster worker processes (default 2)")
    parser.add_argument("--no-dask", action="store_true", help="run the points in this process")


def _grid(args: argparse.Namespace) -> tuple[dict, dict]:
    from sim.design.point import parse_override
    from sim.accel.sweep import load_grid

    base, grid = load_grid(args.grid) if args.grid else ({}, {})
    for spec in args.vary:
        if "=" not in spec:
            raise CLIError(f"--vary must look like key=v1,v2,..., not {spec!r}")
        k, vals = spec.split("=", 1)
        grid[k.strip()] = [parse_override(f"{k}={v}")[1] for v in vals.split(",") if v.strip()]
    return base, grid


def _client(args: argparse.Namespace):
    from dask.distributed import Client, LocalCluster

    if args.scheduler:
        try:
            return Client(args.scheduler, timeout="20s"), None
        except OSError as exc:
            raise CLIError(f"--scheduler {args.scheduler!r} cannot be reached: {exc}") from None
    if args.workers < 1:
        raise CLIError(f"--workers must be >= 1, not {args.workers}")
    with warnings.catch_warnings():
        # the scheduler's HTTP endpoint falls back to a free port when 8787 is taken (another cluster)
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, preload=["quagga.dask_worker_setup"])
    return Client(cluster), cluster


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sim.accel.cycle import PRECISIONS
    from sim.design.point import DesignPoint
    from sim.graphs.datasets import load_graph
    from sim.accel.sweep import expand_grid, make_tasks, missing_tasks, rows_to_csv, run_sweep

    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise CLIError(f"--precisions entries must be in {sorted(PRECISIONS)}, not {args.precisions!r}")
    base_over, grid = _grid(args)
    base = design_from_args(args)
    if base_over:
        base = DesignPoint.from_dict({**base.to_dict(), **base_over})
    designs = expand_grid(base, grid)
    check_graph_names(args.dataset or [])
    wl, opts = template_from_args(args)
    if args.model:
        if args.workload:
            raise CLIError(f"--workload {args.workload!r} is a stand-in: give it without a model file")
        mw = model_workload(args.model, args.dataset, args.data_root)  # checks the file and the graph hash
        datasets, wl_dict = [mw.graph.name], mw.to_dict()
    else:
        if not args.workload or not args.dataset:
            raise CLIError("give a model file (quagga sweep MODEL.qim) or a stand-in --workload with --dataset")
        for name in args.dataset:  # fail early on a bad dataset name
            load_graph(name, args.data_root)
        datasets, wl_dict = args.dataset, wl.to_dict()
    tasks = make_tasks(datasets, designs, precisions, wl_dict, opts.to_dict(), args.data_root, args.model)
    log.info("%d tasks (%d designs x %d datasets), %d precisions each", len(tasks), len(designs),
             len(args.dataset), len(precisions))
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("distributed").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    client = cluster = None
    bar = tqdm(total=len(tasks), desc="sweep", unit="point", disable=None)
    try:
        if not args.no_dask and missing_tasks(tasks, args.cache_dir):
            client, cluster = _client(args)
        res = run_sweep(tasks, args.cache_dir, client, progress=bar.update)
    except KeyboardInterrupt:
        # tearing the cluster down under a running task makes Dask warn (workers killed after a
        # grace period); on Ctrl-C that is expected, so the command says only that it was interrupted
        logging.getLogger("distributed").setLevel(logging.ERROR)
        raise
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    csv_text = rows_to_csv(res.rows)
    png = None
    if args.plot:
        from quagga.commands.sweep_plot import pareto_plot

        png = pareto_plot(res.rows)
    write_text_atomic(args.csv, csv_text)
    if png is not None:
        write_bytes_atomic(args.plot, png)
    print(f"sweep: {len(tasks)} points x {len(precisions)} precisions -> {len(res.rows)} rows; "
          f"{res.computed} computed, {res.cached} from cache, {time.perf_counter() - t0:.1f} s")
    return 0
