"""``quagga estimate``: cycles, time and energy of the accelerator at FP32/INT8/INT4/INT2.

For each ``--dataset`` the same template (the design point, with its ``bits`` replaced by each
precision) runs the model workload; the output has, per precision, ``cycles``, ``seconds``,
``energy_j`` (with ``energy_j_low``/``energy_j_high``), ``speedup_vs_fp32``,
``energy_ratio_vs_fp32`` (= E_fp32 / E, an x-fold saving), the same against INT8, the
per-unit cycle and energy breakdowns, and the bytes-per-edge ceiling.  ``--json`` with one
dataset writes that dict; with several, ``{"estimates": [dict, ...]}``.  ``--markdown`` and
``--plot`` render a report.  All files are written atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from quant.fileio import write_bytes_atomic
from quagga.cli import CLIError
from quagga.design_args import design_from_args

log = logging.getLogger(__name__)

DEFAULT_PRECISIONS = ("fp32", "int8", "int4", "int2")


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``estimate`` and ``sweep``: design, workload, template options."""
    parser.add_argument("--design", metavar="CONFIG", help="design point TOML file (default: built-in defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a design key (repeatable), e.g. --set word_bits=128")
    parser.add_argument("--data-root", help="dataset root (default $QUAGGA_DATA_ROOT)")
    parser.add_argument("--workload", default="appnp", choices=("appnp", "gcn", "aggregate"),
                        help="model mapped on the template (default appnp: the paper's SMP/APPNP model)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden width of the linear layers (default 64)")
    parser.add_argument("--k-steps", type=int, default=10, help="propagation steps of appnp (default 10)")
    parser.add_argument("--features", type=int, default=None,
                        help="feature width of --workload aggregate (default: the dataset's)")
    parser.add_argument("--cache-policy", default="lru", choices=("lru", "direct"),
                        help="feature buffer replacement (default lru)")
    parser.add_argument("--edge-buffer-kib", type=int, default=256, help="edge buffer, KiB (default 256)")
    parser.add_argument("--tile-rows", type=int, default=32, help="rows per overlap tile (default 32)")
    parser.add_argument("--agg-units", type=int, default=1, help="parallel aggregation units (default 1)")
    parser.add_argument("--tech-nm", type=int, default=45, choices=(45, 32, 16, 7),
                        help="technology node of the energy table (default 45)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", action="append", required=True, metavar="NAME",
                        help="Cora, CiteSeer, Tolokers, Minesweeper, synthetic[:uniform|powerlaw[:N[:E[:SEED]]]] "
                             "or PATH.npz (repeatable)")
    add_template_arguments(parser)
    parser.add_argument("--precisions", default=",".join(DEFAULT_PRECISIONS),
                        help="comma-separated precisions (default fp32,int8,int4,int2)")
    parser.add_argument("--json", metavar="FILE", help="write the estimates as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write a markdown report")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG plot of speed-up and energy ratio")
    parser.add_argument("--phases", action="store_true", help="keep per-phase results and action counts in the JSON")


def check_graph_names(names: list[str]) -> None:
    """Refuse unreadable ``.npz`` graph files before the cycle model reads them (pickles refused)."""
    from quant.graph_arrays import read_npz

    for name in names:
        if name.lower().endswith(".npz"):
            read_npz(name, "--dataset")


def template_from_args(args: argparse.Namespace):
    """``(Workload, TemplateOptions)`` from the shared arguments."""
    from sim.accel.accelerator import Workload
    from sim.accel.cycle import TemplateOptions

    return (Workload(args.workload, hidden=args.hidden, k_steps=args.k_steps, features=args.features),
            TemplateOptions(cache_policy=args.cache_policy, edge_buffer_kib=args.edge_buffer_kib,
                            tile_rows=args.tile_rows, tech_nm=args.tech_nm, agg_units=args.agg_units))


def _strip_phases(d: dict) -> dict:
    for r in d["results"].values():
        r.pop("phases", None)
        r.pop("action_counts", None)
    return d


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sim.accel.accelerator import compare
    from sim.accel.cycle import PRECISIONS
    from sim.graphs.datasets import load_graph

    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    for p in precisions:
        if p not in PRECISIONS:
            raise CLIError(f"--precisions entry must be one of {sorted(PRECISIONS)}, not {p!r}")
    if not precisions:
        raise CLIError("--precisions must name at least one precision")
    if not (args.json or args.markdown or args.plot):
        log.info("no --json/--markdown/--plot given: printing a summary only")
    dp = design_from_args(args)
    wl, opts = template_from_args(args)
    check_graph_names(args.dataset)
    graphs = [load_graph(name, args.data_root) for name in args.dataset]  # fail early on bad names
    out = []
    for g in tqdm(graphs, desc="estimate", unit="dataset", disable=None):
        d = compare(g, dp, precisions, wl, opts)
        out.append(d if args.phases else _strip_phases(d))
    doc = out[0] if len(out) == 1 else {"estimates": out}
    # render everything first, then write: no partial output on error
    files: list[tuple[str, str | bytes]] = []
    if args.json:
        files.append((args.json, json.dumps(doc, indent=1, sort_keys=True, default=float) + "\n"))
    if args.markdown:
        from quagga.commands.estimate_render import render_markdown

        files.append((args.markdown, render_markdown(out, plot_name=Path(args.plot).name if args.plot else None)))
    if args.plot:
        from quagga.commands.estimate_render import render_plot

        files.append((args.plot, render_plot(out)))
    for path, data in files:
        write_bytes_atomic(path, data.encode() if isinstance(data, str) else data)
    for d in out:
        name = d["graph"]["name"]
        for p, r in d["results"].items():
            print(f"{name:>12} {p:>5}: {r['cycles']:>12d} cycles  {r['seconds'] * 1e6:10.1f} us  "
                  f"{r['energy_j'] * 1e6:10.2f} uJ  speed-up vs fp32 {r.get('speedup_vs_fp32', float('nan')):6.2f}x  "
                  f"energy ratio vs fp32 {r.get('energy_ratio_vs_fp32', float('nan')):6.2f}x")
    return 0
