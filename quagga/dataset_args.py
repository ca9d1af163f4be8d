"""The built-in synthetic graph's command-line arguments, shared by the commands that build
it (``quagga train``, ``quagga data export``)."""

from __future__ import annotations

import argparse


def add_synthetic_arguments(group) -> None:
    """Add ``--synthetic-nodes/-classes/-features/-degree/-homophily/-seed`` to ``group``
    (an ``argparse`` parser or argument group)."""
    group.add_argument("--synthetic-nodes", type=int, default=1000)
    group.add_argument("--synthetic-classes", type=int, default=4)
    group.add_argument("--synthetic-features", type=int, default=32)
    group.add_argument("--synthetic-degree", type=float, default=8.0)
    group.add_argument("--synthetic-homophily", type=float, default=0.8)
    group.add_argument("--synthetic-seed", type=int, default=0)


def synthetic_args(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`training.data.synthetic_csbm` given on the command line."""
    return {"num_nodes": args.synthetic_nodes, "num_classes": args.synthetic_classes,
            "num_features": args.synthetic_features, "avg_degree": args.synthetic_degree,
            "homophily": args.synthetic_homophily, "seed": args.synthetic_seed}
