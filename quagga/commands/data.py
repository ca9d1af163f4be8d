"""``quagga data export``: write a dataset, the built-in synthetic graph included, as an ``.npz``.

The file holds the arrays the trainer and the simulator read from a graph file
(``training.data.load_file``, ``quagga simulate --dataset FILE.npz``): ``x`` (N, F) float32
raw features (before the model's input preprocessing), ``y`` (N,) int64, ``edge_index``
(2, E) int64 as loaded (row 0 source, row 1 destination; no self loops added), and the
dataset's ``train_mask`` / ``val_mask`` / ``test_mask`` (N,) bool where it has a split (a mask
that selects no node is left out, as graph files may not carry one).  The archive is written
with fixed timestamps, so the same dataset gives the same bytes, and its graph hash
(:func:`quant.model_ir.graph_hash`) is printed: it equals the hash in a model file trained
on the same graph.  ``--from-model`` takes the dataset name and the synthetic graph's
parameters from a model file's metadata.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from quagga.cli import CLIError
from quagga.dataset_args import add_synthetic_arguments, synthetic_args
from quant.fileio import write_bytes_atomic


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("export", help="write a dataset as .npz (x, y, edge_index, masks)")
    p.add_argument("--dataset", default=None,
                   help="'synthetic' (default), a PyG name (Cora, CiteSeer, ...) or a graph file")
    p.add_argument("--data-root", default=None, help="dataset root (default $QUAGGA_DATA_ROOT)")
    p.add_argument("--from-model", metavar="MODEL",
                   help="a model file (.qim): its dataset and synthetic-graph parameters")
    add_synthetic_arguments(p)
    p.add_argument("--out", required=True, help="output .npz file")


def export_arrays(name: str | None, data_root: str | None, synthetic_args: dict | None) -> dict:
    """The dataset's arrays as written by ``quagga data export`` (see the module docstring)."""
    from training.data import load_dataset

    g = load_dataset(name, data_root, synthetic_args=synthetic_args)
    arrays = {"x": g.x.numpy().astype(np.float32), "y": g.y.numpy().astype(np.int64),
              "edge_index": g.edge_index.numpy().astype(np.int64)}
    for k in ("train_mask", "val_mask", "test_mask"):  # a dataset without a split ships none
        m = getattr(g, k).numpy().astype(bool)
        if m.any():
            arrays[k] = m
    return arrays


def run(args: argparse.Namespace) -> int:
    if args.action != "export":
        raise CLIError("ACTION is required: quagga data export --out FILE.npz")
    from quant import model_ir as mi

    name, syn = args.dataset, synthetic_args(args)
    if args.from_model:
        meta = mi.load(args.from_model).meta
        name = name or meta.get("dataset")
        syn = meta.get("dataset_args") or syn
    out = Path(args.out)
    if out.suffix != ".npz":
        raise CLIError(f"--out must end in .npz, not {out.name!r}")
    arrays = export_arrays(name, args.data_root, syn)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, mi._npz_bytes(arrays))
    x, ei = arrays["x"], arrays["edge_index"]
    h = mi.graph_hash(ei, x.shape[0], x.shape[1])
    print(json.dumps({"out": str(out), "dataset": name or "synthetic", "num_nodes": int(x.shape[0]),
                      "num_features": int(x.shape[1]), "num_edges": int(ei.shape[1]),
                      "graph_hash": h}))
    return 0
