"""``quagga simulate``: bit-exact functional simulation of an exported integer model.

Loads the model file (``quant.model_ir``), the dataset it was exported for (checked by node
count, feature count and graph hash), runs every op with the simulator's numba kernels,
compares every stage with the model IR's numpy executor and with the trainer's integer
predictions when the file holds them, and writes ``predictions.npy`` and ``simulate.json``.

``--bench`` instead runs the aggregation benchmark (:mod:`quagga.bench.aggregation`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from quant.fileio import write_bytes_atomic
from quagga.cli import CLIError

log = logging.getLogger(__name__)

#: Tensor names under which an exporter may store the evaluation split's test mask (N,).
TEST_MASK_TENSORS = ("split.test_mask", "test_mask", "mask.test")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL", help="exported model file (.qim)")
    parser.add_argument("--dataset", help="dataset name (cora, citeseer, tolokers, synthetic, ...) or "
                                          "an .npz with x, y, edge_index (default: the model's)")
    parser.add_argument("--data-root", help="dataset root (default $QUAGGA_DATA_ROOT)")
    parser.add_argument("--out", metavar="DIR", help="output directory")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the stage-by-stage comparison with the numpy executor")
    parser.add_argument("--bench", action="store_true",
                        help="run the aggregation benchmark instead (bit-exact INT2/4/8 vs torch FP32)")
    parser.add_argument("--nodes", type=int, default=100_000, help="--bench: nodes (default 100000)")
    parser.add_argument("--edges", type=int, default=1_000_000, help="--bench: edges (default 1000000)")
    parser.add_argument("--features", type=int, default=64, help="--bench: features (default 64)")
    parser.add_argument("--repeats", type=int, default=7, help="--bench: timed repeats (default 7)")
    parser.add_argument("--graph-kind", default="uniform", choices=["uniform", "powerlaw"],
                        help="--bench: synthetic graph kind")
    parser.add_argument("--seed", type=int, default=0, help="--bench: graph seed")
    parser.add_argument("--threads", type=int, default=2,
                        help="--bench: numba and torch threads (default 2)")


def load_graph_arrays(name: str | None, data_root: str | None, meta: dict) -> dict:
    """Raw dataset arrays as numpy: ``x`` (N, F) float32, ``y`` (N,), ``edge_index`` (2, E),
    optional ``test_mask``.  An ``.npz`` is read with numpy; a dataset name goes through the
    trainer's loader (PyG, imported only here)."""
    if name is None:
        raise CLIError("--dataset is required: the model file does not name its dataset (meta.dataset)")
    if name.endswith(".npz"):
        from quant.graph_arrays import MASK_NAMES, read_npz, validate_graph

        arrays = read_npz(name, "--dataset file")
        for k in ("x", "edge_index"):
            if k not in arrays:
                raise CLIError(f"--dataset file {name!r} must contain {k!r}; it has {sorted(arrays)}")
        validate_graph(arrays["x"], arrays.get("y"), arrays["edge_index"],
                       {k: arrays[k] for k in MASK_NAMES if k in arrays}, source=name)
        return arrays
    from training.data import load_dataset  # torch + PyG, only for named datasets

    g = load_dataset(name, data_root, synthetic_args=meta.get("dataset_args") or None)
    out = {"x": g.x.numpy(), "y": g.y.numpy(), "edge_index": g.edge_index.numpy()}
    if g.test_mask is not None and bool(g.test_mask.any()):
        out["test_mask"] = g.test_mask.numpy()
    return out


def _accuracy(model, pred: np.ndarray, arrays: dict) -> tuple[float | None, str]:
    y = arrays.get("y")
    if y is None:
        return None, "none (no labels)"
    mask, src = None, ""
    for k in TEST_MASK_TENSORS:
        if k in model.tensors:
            mask, src = np.asarray(model.tensors[k]).astype(bool), f"model tensor {k}"
            break
    if mask is None and "test_mask" in arrays:
        mask, src = np.asarray(arrays["test_mask"]).astype(bool), "dataset test_mask"
    if mask is None:
        mask, src = np.ones(pred.shape[0], dtype=bool), "all nodes"
    if not mask.any():
        return None, src
    return float((pred[mask] == np.asarray(y)[mask]).mean()), src


def run(args: argparse.Namespace) -> int:
    if args.bench:
        return _run_bench(args)
    if not args.model:
        raise CLIError("MODEL is required (or pass --bench)")
    if not args.out:
        raise CLIError("--out is required")
    from quant import model_ir as mi
    from sim.exact.model_sim import check_graph, compare_stages

    t0 = time.perf_counter()
    model = mi.load(args.model)
    name = args.dataset or model.meta.get("dataset")
    arrays = load_graph_arrays(name, args.data_root, model.meta)
    x = np.asarray(arrays["x"], dtype=np.float32)
    check_graph(model, arrays["edge_index"], x.shape[0], x.shape[1])
    t1 = time.perf_counter()
    rep = compare_stages(model, x, reference=not args.no_reference)
    t2 = time.perf_counter()
    acc, acc_on = _accuracy(model, rep.predictions, arrays)
    summary = {
        "model": str(args.model), "dataset": name, "num_nodes": int(x.shape[0]),
        "graph_hash": model.graph["hash"],
        "bit_exact": rep.bit_exact if rep.stages or rep.trainer_mismatches is not None else None,
        "mismatches": rep.mismatches,
        "stages_checked": len(rep.stages),
        "stages": [s.to_dict() for s in rep.stages],
        "reference": "quant.model_ir numpy executor" if rep.stages else None,
        "trainer_predictions": rep.trainer_mismatches is not None,
        "trainer_mismatches": rep.trainer_mismatches,
        "accuracy": acc, "accuracy_on": acc_on,
        "saturations": rep.saturations, "saturations_per_stage": rep.extra["saturations_per_stage"],
        "seconds": {"load": round(t1 - t0, 3), "simulate_and_check": round(t2 - t1, 3)},
    }
    if "accuracy" in model.meta:
        summary["trainer_reported_accuracy"] = model.meta["accuracy"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.save(buf, rep.predictions)
    write_bytes_atomic(out / "predictions.npy", buf.getvalue())
    write_bytes_atomic(out / "simulate.json", (json.dumps(summary, indent=1) + "\n").encode())
    state = "bit-exact" if rep.bit_exact else f"NOT bit-exact: {rep.mismatches} mismatches"
    acc_s = f", accuracy {acc:.4f} on {acc_on}" if acc is not None else ""
    print(f"{args.model}: {len(rep.stages)} stages checked, {state}{acc_s}; wrote {out / 'simulate.json'}")
    return 0 if rep.bit_exact or not rep.stages else 1


def _run_bench(args: argparse.Namespace) -> int:
    from quagga.bench.machine import prefer_passive_omp

    prefer_passive_omp()
    from quagga.bench import aggregation as bench_aggregation
    if args.threads < 1:
        raise CLIError(f"--threads must be at least 1, got {args.threads}")
    res = bench_aggregation.run(num_nodes=args.nodes, num_edges=args.edges,
                                num_features=args.features, repeats=args.repeats,
                                kind=args.graph_kind, seed=args.seed, threads=args.threads,
                                progress=lambda m: print(f"... {m}", flush=True))
    print(bench_aggregation.describe_run(res))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out / "bench_aggregation.json", (json.dumps(res, indent=1) + "\n").encode())
        print(f"wrote {out / 'bench_aggregation.json'}")
    return 0
