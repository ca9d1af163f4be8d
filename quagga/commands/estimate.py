"""``quagga estimate``: cycles, time and energy of a model on the accelerator template.

``quagga estimate MODEL.qim`` lowers the exported integer model op by op (each ``linear`` on
the dense unit, each ``propagate`` on the aggregation units, each ``input``/``add``/``relu``/
``truncate``/``argmax`` on the vector unit, all at their stored widths) on the model's own
graph; with ``--dataset`` the dataset's graph hash is checked against the model's.  The
result at the model's own precision is the model as stored; FP32, INT8 (and the other
requested precisions) are the same op list with the widths replaced.  Without a model,
``--workload appnp|gcn|aggregate`` runs a stand-in on each ``--dataset``, labelled as such.

The output has, per precision, ``cycles``, ``seconds``, ``energy_j`` (with
``energy_j_low``/``energy_j_high``), ``speedup_vs_fp32``, ``energy_ratio_vs_fp32`` (= E_fp32 /
E, an x-fold saving), the same against INT8, the per-unit breakdowns, ``ops`` (one record
per op with its unit, cycles, bound, DRAM bytes and energy) and the bytes-per-edge ceiling.
``--json`` with one graph writes that dict; with several, ``{"estimates": [dict, ...]}``.
``--markdown``, ``--plot`` and ``--roofline`` render a report.  All files are written
atomically, after everything has been computed.
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
    parser.add_argument("--design", metavar="NAME|CONFIG",
                        help="design preset (balanced, edge, edge-ddr4, datacenter, rtl-unit; default balanced) "
                             "or a design point TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a design key (repeatable), e.g. --set word_bits=128")
    parser.add_argument("--host-probe", metavar="FILE",
                        help="with --design host: the host probe (python -m quagga.bench.host_probe "
                             "--out FILE) whose measured clock, SIMD width, threads, L2 and DRAM "
                             "bandwidth make the design point")
    parser.add_argument("--data-root", help="dataset root (default $QUAGGA_DATA_ROOT)")
    parser.add_argument("--workload", default=None, choices=("appnp", "gcn", "aggregate"),
                        help="stand-in workload instead of a model file (appnp: lin1, lin2, K x (propagate, add); "
                             "gcn: two GCN layers; aggregate: one propagation of --features features)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden width of a stand-in's linear layers (default 64)")
    parser.add_argument("--k-steps", type=int, default=10, help="propagation steps of the appnp stand-in (default 10)")
    parser.add_argument("--features", type=int, default=None,
                        help="feature width of --workload aggregate (default: the dataset's)")
    parser.add_argument("--cache-policy", default="lru", choices=("lru", "direct"),
                        help="feature buffer replacement (default lru)")
    parser.add_argument("--edge-buffer-kib", type=int, default=256, help="edge buffer, KiB (default 256)")
    parser.add_argument("--tile-rows", type=int, default=32, help="rows per unit in an overlap window (default 32)")
    parser.add_argument("--agg-units", type=int, default=None,
                        help="parallel aggregation units (default: the design's; same as --set agg_units=N)")
    parser.add_argument("--no-split-rows", action="store_true",
                        help="keep each row on one aggregation unit (hub rows serialise their window)")
    parser.add_argument("--tech-nm", type=int, default=45, choices=(45, 32, 16, 7),
                        help="technology node of the energy table (default 45)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL.qim",
                        help="exported integer model to estimate (its own graph); omit for a --workload stand-in")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME",
                        help="Cora, CiteSeer, Tolokers, Minesweeper, synthetic[:uniform|powerlaw[:N[:E[:SEED]]]] "
                             "or PATH.npz (repeatable); with a model, the one dataset whose graph hash must match")
    add_template_arguments(parser)
    parser.add_argument("--precisions", default=",".join(DEFAULT_PRECISIONS),
                        help="comma-separated precisions (default fp32,int8,int4,int2; a model's own is always added)")
    parser.add_argument("--json", metavar="FILE", help="write the estimates as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write a markdown report")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG plot of speed-up and energy ratio")
    parser.add_argument("--roofline", metavar="FILE", help="write a PNG roofline of every op at every precision")
    parser.add_argument("--phases", action="store_true", help="keep per-phase details and action counts in the JSON")


def check_graph_names(names: list[str]) -> None:
    """Refuse unreadable ``.npz`` graph files before the cycle model reads them (pickles refused)."""
    from quant.graph_arrays import read_npz

    for name in names:
        if name.lower().endswith(".npz"):
            read_npz(name, "--dataset")


def template_from_args(args: argparse.Namespace):
    """``(Workload or None, TemplateOptions)`` from the shared arguments."""
    from sim.accel.accelerator import Workload
    from sim.accel.cycle import TemplateOptions

    wl = (Workload(args.workload, hidden=args.hidden, k_steps=args.k_steps, features=args.features)
          if args.workload else None)
    return wl, TemplateOptions(cache_policy=args.cache_policy, edge_buffer_kib=args.edge_buffer_kib,
                               tile_rows=args.tile_rows, tech_nm=args.tech_nm, split_rows=not args.no_split_rows)


def model_workload(path: str, datasets: list[str], data_root: str | None):
    """The :class:`ModelWorkload` of ``path``; with one dataset, its graph hash is checked."""
    from sim.accel.accelerator import ModelWorkload
    from sim.graphs.datasets import dataset_graph_hash

    if len(datasets) > 1:
        raise CLIError(f"--dataset must be given at most once with a model file (its own graph), not {len(datasets)} times")
    expect = dataset_graph_hash(datasets[0], data_root) if datasets else None
    return ModelWorkload.load(path, expect_graph_hash=expect)


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
    if args.model and args.workload:
        raise CLIError(f"--workload {args.workload!r} is a stand-in: give it without a model file, not with {args.model!r}")
    if not args.model and not args.workload:
        raise CLIError("give a model file (quagga estimate MODEL.qim) or a stand-in --workload appnp|gcn|aggregate")
    if not args.model and not args.dataset:
        raise CLIError("--dataset is required with a stand-in --workload")
    if not (args.json or args.markdown or args.plot or args.roofline):
        log.info("no --json/--markdown/--plot/--roofline given: printing a summary only")
    dp = design_from_args(args)
    wl, opts = template_from_args(args)
    check_graph_names(args.dataset or [])
    if args.model:
        wl = model_workload(args.model, args.dataset, args.data_root)
        graphs = [wl.graph]
    else:
        graphs = [load_graph(name, args.data_root) for name in args.dataset]  # fail early on bad names
    out = []
    for g in tqdm(graphs, desc="estimate", unit="graph", disable=None):
        d = compare(g, dp, precisions, wl, opts, phases=args.phases)
        d["command"] = command_line(args)
        out.append(d)
    doc = out[0] if len(out) == 1 else {"estimates": out}
    # render everything first, then write: no partial output on error
    from quagga.commands import estimate_render as render

    files: list[tuple[str, str | bytes]] = []
    if args.json:
        files.append((args.json, json.dumps(doc, indent=1, sort_keys=True, default=float) + "\n"))
    if args.markdown:
        files.append((args.markdown, render.render_markdown(
            out, plot_name=Path(args.plot).name if args.plot else None,
            roofline_name=Path(args.roofline).name if args.roofline else None)))
    if args.plot:
        files.append((args.plot, render.render_plot(out)))
    if args.roofline:
        files.append((args.roofline, render.render_roofline(out)))
    for path, data in files:
        write_bytes_atomic(path, data.encode() if isinstance(data, str) else data)
    for d in out:
        name = d["graph"]["name"] + (" (stand-in)" if d["stand_in"] else "")
        for p, r in d["results"].items():
            print(f"{name:>12} {p:>5}: {r['cycles']:>12d} cycles  {r['seconds'] * 1e6:10.1f} us  "
                  f"{r['energy_j'] * 1e6:10.2f} uJ  speed-up vs fp32 {r.get('speedup_vs_fp32', float('nan')):6.2f}x  "
                  f"energy ratio vs fp32 {r.get('energy_ratio_vs_fp32', float('nan')):6.2f}x  "
                  f"aggregation {r.get('agg_bound')}-bound")
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The ``quagga estimate`` command that reproduces ``args`` (for the report's provenance)."""
    parts = ["quagga estimate"]
    if args.model:
        parts.append(str(args.model))
    for ds in args.dataset:
        parts += ["--dataset", ds]
    for flag in ("design", "workload", "features", "agg_units"):
        v = getattr(args, flag, None)
        if v is not None:
            parts += [f"--{flag.replace('_', '-')}", str(v)]
    if args.workload == "appnp":
        parts += ["--k-steps", str(args.k_steps), "--hidden", str(args.hidden)]
    for s_ in args.set:
        parts += ["--set", s_]
    if args.no_split_rows:
        parts.append("--no-split-rows")
    if args.precisions != ",".join(DEFAULT_PRECISIONS):
        parts += ["--precisions", args.precisions]
    return " ".join(parts)
