"""``quagga golden``: write golden-vector files for the aggregation unit.

Random cases (cycling through every kind of :data:`sim.verify.golden.KINDS`) for a design point,
or, with ``--from-model``, the propagation steps of an exported model on its dataset.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

from quagga.cli import CLIError
from quagga.design_args import design_from_args

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--design", metavar="CONFIG", help="design point TOML file (configs/*.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a design key (repeatable)")
    parser.add_argument("--cases", type=int, default=12, help="number of random cases (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first case (default 0)")
    parser.add_argument("--nodes", type=int, default=16, help="nodes per random case (default 16)")
    parser.add_argument("--features", type=int, default=None,
                        help="features per node (default: the design's lanes)")
    parser.add_argument("--from-model", metavar="MODEL",
                        help="take the propagation steps of an exported model instead")
    parser.add_argument("--dataset", help="dataset of --from-model (default: the model's)")
    parser.add_argument("--data-root", help="dataset root (default $QUAGGA_DATA_ROOT)")
    parser.add_argument("--max-rows", type=int, default=64,
                        help="--from-model: keep the first N destination rows of each step (default 64)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")


def run(args: argparse.Namespace) -> int:
    from sim.verify import golden
    if args.cases < 0:
        raise CLIError(f"--cases must be >= 0, not {args.cases}")
    if args.nodes < 1:
        raise CLIError(f"--nodes must be >= 1, not {args.nodes}")
    out = Path(args.out)
    if args.from_model:
        from quagga.commands.simulate import load_graph_arrays
        from quant import model_ir as mi
        from sim.verify.model_cases import golden_cases_from_model

        dp = design_from_args(args) if (args.design or args.set) else None
        meta = mi.load(args.from_model).meta
        arrays = load_graph_arrays(args.dataset or meta.get("dataset"), args.data_root, meta)
        cases = golden_cases_from_model(args.from_model, arrays["x"], design=dp,
                                        max_rows=args.max_rows)
    else:
        from tqdm import tqdm

        dp = design_from_args(args)
        cases = []
        for k in tqdm(range(args.cases), desc="golden cases", unit="case", disable=None):
            kind = golden.KINDS[k % len(golden.KINDS)]
            cases.append(golden.make_random_case(
                dp, args.seed + k, kind=kind, num_nodes=args.nodes, num_features=args.features,
                name=f"{dp.key()}-{k:03d}-{kind}-s{args.seed + k}"))
    # write into a temporary sibling directory, then move into place: no partial output
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        golden.save_cases(cases, tmp)
        out.mkdir(exist_ok=True)
        for f in sorted(tmp.iterdir()):
            f.replace(out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sats = sum(c.saturations for c in cases)
    print(f"wrote {len(cases)} golden cases to {out} ({sum(c.num_edges for c in cases)} edges, "
          f"{sats} saturation events); manifest {out / golden.MANIFEST}")
    return 0
