"""The aggregation benchmark: one bit-exact packed propagation step (INT2/INT4/INT8) against
every FP32 CPU form we can run on the same input, in one run.

FP32 forms (:data:`FP32_FORMS`), built by :func:`fp32_forms`:

``torch_csr_spmm`` / ``torch_csr_spmm_i32``
    ``torch.sparse.mm`` on the CSR matrix with int64 / int32 indices.
``pyg_edge_index`` / ``pyg_sparse_csr``
    PyG ``MessagePassing`` given an ``edge_index`` or a sparse-CSR ``adj_t``
    (:mod:`quagga.bench.torch_baselines`).
``own_fp32``
    Our own FP32 CSR SpMM (:func:`quagga.bench.fp32_spmm.spmm_f32`): row accumulators in
    vector registers (LLVM IR), the integer kernel's narrow index dtype.

Each kernel is warmed up once, then all are timed in ``repeats`` interleaved rounds
(:func:`quagga.bench.timing.time_interleaved`, so load changes hit every kernel alike) and
reported by their medians, with the fastest round beside them.  Ratios are taken against
the fastest FP32 form by median (``speedup_vs_fastest_fp32``) and against each form.  The
integer kernel is timed writing packed codes, the form the unit writes and the next layer
reads.  Every integer result is checked bit for bit (:func:`check_bit_exact`) against the
exact kernel on all rows and :func:`quant.aggregate.aggregate_reference` on the first rows.

Run: ``python -m quagga.bench.aggregation [--nodes N --edges E --features F --repeats R]``
or ``quagga simulate --bench``; ``quagga bench`` uses :func:`measure` on its graphs.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable

import numpy as np

from quagga.bench import machine
from quagga.bench.timing import median, time_interleaved, timing_table
from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.fileio import write_text_atomic
from quant.reference import acc_bits_required, derive_multiplier
from quant.spec import QuantSpec

log = logging.getLogger(__name__)

__all__ = ["FP32_FORMS", "add_predictions", "bench_params", "check_bit_exact", "format_table", "fp32_forms",
           "measure", "run"]

FP32_FORMS = ("torch_csr_spmm", "torch_csr_spmm_i32", "pyg_edge_index", "pyg_sparse_csr",
              "own_fp32")
PYG_FORMS = ("pyg_edge_index", "pyg_sparse_csr")


def bench_params(bits: int, max_degree: int, mean_row_weight: float, rng: np.random.Generator
                 ) -> AggregationParams:
    """GCN-like parameters of one benchmark step: unsigned ``bits`` features with a small zero
    point, unsigned 8-bit edge codes with zero point 0, the overflow-free accumulator for
    ``max_degree``, and an output requantizer mapping a typical row sum (``mean_row_weight``
    = mean over rows of the sum of a row's edge codes) onto the output codes."""
    xs, ws = QuantSpec(bits), QuantSpec(8)
    x_zero = int(rng.integers(0, max(1, xs.levels // 4)))
    typical = max(1.0, mean_row_weight) * (xs.qmax / 2)
    m, n = derive_multiplier(xs.levels / (2 * typical), 16)
    return AggregationParams(xs, x_zero, ws, 0, acc_bits_required(bits, 8, max(1, max_degree)),
                             Requantizer(m, n, x_zero, xs))


def check_bit_exact(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, x: np.ndarray,
                    params: AggregationParams, timed_y: np.ndarray, check_rows: int = 2000
                    ) -> tuple[bool, int]:
    """Check a packed aggregation bit for bit.

    ``timed_y`` (N, B) uint8 is the packed output of the timed call.  The validated packed
    call (int16 output) and ``timed_y`` must equal the exact kernel
    (:func:`sim.exact.functional.aggregate`) on all rows, and the first ``check_rows`` rows
    must equal :func:`quant.aggregate.aggregate_reference`.  Returns ``(ok, saturations)``.
    """
    from sim.exact import functional
    from sim.packed import propagate

    xb = propagate.pack_operand(x, params.x_spec)
    r = propagate.aggregate_packed(indptr, indices, w, xb, x.shape[1], params)
    exact = functional.aggregate(indptr, indices, w, x, params)
    rows = min(check_rows, indptr.size - 1)
    e = int(indptr[rows])
    ref = aggregate_reference(indptr[:rows + 1], indices[:e], w[:e], x, params)
    ok = bool(np.array_equal(r.y.astype(np.int32), exact.y) and r.saturations == exact.saturations
              and np.array_equal(timed_y, propagate.pack_operand(exact.y, params.y_spec))
              and np.array_equal(r.y[:rows].astype(np.int32), ref.y))
    return ok, int(r.saturations)


def fp32_forms(indptr: np.ndarray, indices: np.ndarray, w_float: np.ndarray, xf: np.ndarray,
               forms: tuple[str, ...] = FP32_FORMS) -> dict[str, Callable[[], object]]:
    """Callables computing ``A X`` in FP32 in each of ``forms`` on the same input.

    Shapes: ``indptr`` (N + 1,), ``indices`` (E,), ``w_float`` (E,), ``xf`` float32 (N, F).
    torch and PyG are imported here only.
    """
    import torch

    from quagga.bench.fp32_spmm import spmm_f32
    from quagga.bench.torch_baselines import GCNProp, csr_tensor, edge_index_tensors

    unknown = [f for f in forms if f not in FP32_FORMS]
    if unknown:
        raise ValueError(f"FP32 form must be one of {list(FP32_FORMS)}, not {unknown[0]!r}")
    n = indptr.size - 1
    xt = torch.from_numpy(np.ascontiguousarray(xf, dtype=np.float32))
    a64 = csr_tensor(indptr, indices, w_float, n)
    a32 = torch.sparse_csr_tensor(torch.from_numpy(indptr.astype(np.int32)),
                                  torch.from_numpy(indices.astype(np.int32)),
                                  torch.from_numpy(np.asarray(w_float, np.float32)), size=(n, n),
                                  dtype=torch.float32)
    ei_t, ew_t = edge_index_tensors(indptr, indices, w_float)
    from sim.packed.propagate import compact_indices

    ixc = compact_indices(indices, n)  # the integer kernel's index dtype
    wf = np.asarray(w_float, np.float32)
    x32 = np.ascontiguousarray(xf, dtype=np.float32)
    prop = GCNProp()
    all_forms = {"torch_csr_spmm": lambda: torch.sparse.mm(a64, xt),
                 "torch_csr_spmm_i32": lambda: torch.sparse.mm(a32, xt),
                 "pyg_edge_index": lambda: prop(xt, ei_t, ew_t),
                 "pyg_sparse_csr": lambda: prop(xt, a64),
                 "own_fp32": lambda: spmm_f32(indptr, ixc, wf, x32, 64)}
    return {f: all_forms[f] for f in forms}


def measure(indptr: np.ndarray, indices: np.ndarray, w_codes: np.ndarray, w_float: np.ndarray,
            num_features: int, bits: tuple[int, ...] = (2, 4, 8), repeats: int = 7, seed: int = 0,
            forms: tuple[str, ...] = FP32_FORMS, check_rows: int = 2000, block: int = 64,
            say: Callable[[str], None] | None = None, host=None) -> dict:
    """Time one aggregation step at each width in ``bits`` against the FP32 ``forms``.

    Parameters
    ----------
    indptr, indices : int64 (N + 1,), (E,)
        Destination-sorted CSR (square: sources are the N nodes).
    w_codes : int (E,)
        Unsigned 8-bit edge-weight codes of the integer kernels.
    w_float : float (E,)
        Edge weights of the FP32 forms.
    num_features : int
        ``F``: columns of the random feature matrix.
    host : sim.design.host.HostPoint, optional
        A host probe: each kernel the CPU model covers (``own_fp32`` and the
        integer widths) gets ``predicted_s``, ``predicted`` (the model's breakdown) and
        ``predicted_over_measured`` (:func:`add_predictions`).

    Returns
    -------
    dict
        ``num_features``, ``baselines`` (form -> ``median_s``, ``min_s``, ``times_s``,
        ``edges_per_s``), ``fastest_fp32`` (form name) and ``int<b>`` entries with
        ``speedup_vs_fastest_fp32``, ``speedup_best_vs_fastest_fp32_best``,
        ``speedup_vs_<form>`` for each form, ``speedup_vs_pyg`` (faster PyG form) when both
        PyG forms ran, ``bit_exact`` and the bytes per edge.
    """
    import torch

    from sim.packed import propagate

    say = say or log.info
    rng = np.random.default_rng(seed + 1)
    n = indptr.size - 1
    e = int(indices.size)
    ixc = propagate.compact_indices(indices, n)
    w8 = w_codes.astype(np.uint8)
    xf = rng.standard_normal((n, num_features)).astype(np.float32)
    fns = fp32_forms(indptr, indices, w_float, xf, forms)
    deg = np.diff(indptr)
    max_deg = int(deg.max(initial=1))
    row_weight = float(w_codes.sum()) / max(1, n)
    cases = {}
    for b in bits:
        p = bench_params(b, max_deg, row_weight, rng)
        x = rng.integers(p.x_spec.qmin, p.x_spec.qmax + 1, (n, num_features))
        xb = propagate.pack_operand(x, p.x_spec)
        cases[b] = (p, x, xb)
        fns[f"int{b}"] = (lambda p=p, xb=xb: propagate.aggregate_packed(
            indptr, ixc, w8, xb, num_features, p, block=block, validate=False, packed_out=True))
    say(f"aggregation F={num_features}: timing {', '.join(fns)} x {repeats} (interleaved)")
    cpu: dict[str, list[float]] = {}
    with torch.inference_mode():
        times = time_interleaved(fns, repeats, cpu_times=cpu)
    res: dict = {"num_features": num_features, "baselines": {}}
    for f in forms:
        med = median(times[f])
        res["baselines"][f] = {"median_s": med, "min_s": min(times[f]), "times_s": times[f],
                               "edges_per_s": e / med, "cpu_times_s": cpu[f],
                               "cpu_median_s": median(cpu[f])}
    fastest = min(forms, key=lambda f: res["baselines"][f]["median_s"])
    res["fastest_fp32"] = fastest
    base = res["baselines"]
    for b in bits:
        p, x, xb = cases[b]
        say(f"aggregation INT{b}: bit-exactness check")
        timed = propagate.aggregate_packed(indptr, ixc, w8, xb, num_features, p, block=block,
                                           validate=False, packed_out=True)
        ok, sats = check_bit_exact(indptr, indices, w_codes, x, p, timed.y, check_rows)
        med = median(times[f"int{b}"])
        best = min(times[f"int{b}"])
        ent = {"median_s": med, "min_s": best, "times_s": times[f"int{b}"], "edges_per_s": e / med,
               "cpu_times_s": cpu[f"int{b}"], "cpu_median_s": median(cpu[f"int{b}"]),
               "bit_exact": ok,
               "output": f"packed INT{p.y_spec.bits} codes, uint8 (N, {timed.y.shape[1]})",
               "checked_against": ["sim.exact.functional.aggregate (all rows)",
                                   f"quant.aggregate.aggregate_reference (first "
                                   f"{min(check_rows, n)} rows)"],
               "saturations": sats, "acc_bits": p.acc_bits,
               "bytes_per_edge": {"index": ixc.itemsize, "weight": 1,
                                  "feature_row": int(xb.shape[1])},
               "speedup_vs_fastest_fp32": base[fastest]["median_s"] / med,
               "speedup_best_vs_fastest_fp32_best": base[fastest]["min_s"] / best}
        for f in forms:
            ent[f"speedup_vs_{f}"] = base[f]["median_s"] / med
        if all(f in forms for f in PYG_FORMS):
            ent["speedup_vs_pyg"] = min(base[f]["median_s"] for f in PYG_FORMS) / med
        res[f"int{b}"] = ent
    res["fp32_bytes_per_edge"] = {"index": 8, "weight": 4, "feature_row": 4 * num_features}
    if host is not None:
        add_predictions(res, host, n, e, ixc.itemsize, num_features,
                        {b: (int(cases[b][2].shape[1]), cases[b][0].y_spec.bits) for b in bits},
                        indices)
    return res


def add_predictions(res: dict, host, num_rows: int, num_edges: int, index_bytes: int,
                    num_features: int, int_rows: dict[int, tuple[int, int]],
                    indices: np.ndarray | None = None) -> None:
    """Add the host model's prediction (:mod:`sim.accel.host_model`) beside each
    measured median of a :func:`measure` result ``res`` (in place).

    ``int_rows`` maps a width ``b`` to ``(packed row bytes, output bits)``; ``indices`` (the
    CSR sources) gives the gathers' skew (:func:`sim.accel.host_model.source_coverage`).  Forms without a
    calibrated kernel cost (torch, PyG) are not predicted.  Adds ``host_model``: the probe
    used (:meth:`sim.design.host.HostPoint.to_dict`), the threads of the call and the measured
    statistic the ratio uses (``median_s``, or ``min_s`` for a probe of fastest repeats).
    Where the entry has ``cpu_median_s`` (process CPU seconds per call, median), also
    ``busy_s`` = CPU seconds / threads (a thread's busy time, which on a shared machine leaves
    out the time the scheduler gave other processes) and ``predicted_over_busy``.
    """
    import numba

    from quagga.bench.host_probe import kernel_out_bytes
    from sim.accel.host_model import AggregationWork, predict_aggregation, source_coverage

    threads = int(numba.get_num_threads())
    kernels = {c.kernel for c in host.kernel_costs}
    measured = {"median": "median_s", "best": "min_s", "busy": "busy_s"}[host.statistic]
    cov = source_coverage(indices, num_rows) if indices is not None else ()
    works = {}
    if "own_fp32" in res["baselines"] and "own_fp32" in kernels:
        works[("baselines", "own_fp32")] = AggregationWork(
            "own_fp32", num_rows, num_edges, num_rows, 4 * num_features, index_bytes, 4,
            kernel_out_bytes("own_fp32", num_features), threads, cov)
    for b, (row_bytes, out_bits) in int_rows.items():
        if f"int{b}" in res and f"int{b}" in kernels:
            works[(None, f"int{b}")] = AggregationWork(
                f"int{b}", num_rows, num_edges, num_rows, row_bytes, index_bytes, 1,
                kernel_out_bytes(f"int{b}", num_features, out_bits), threads, cov)
    for (group, name), work in works.items():
        ent = res[group][name] if group else res[name]
        pred = predict_aggregation(host, work)
        ent["predicted_s"] = pred.time_s
        ent["predicted"] = pred.to_dict()
        if "cpu_median_s" in ent:  # busy time per thread: the load-independent measure
            ent["busy_s"] = ent["cpu_median_s"] / threads
            ent["predicted_over_busy"] = pred.time_s / ent["busy_s"]
        ent["predicted_over_measured"] = pred.time_s / ent[measured]
    res["host_model"] = {"model": "sim.accel.host_model.predict_aggregation", "threads": threads,
                         "compared_with": measured, "host": host.to_dict()}


def run(num_nodes: int = 100_000, num_edges: int = 1_000_000, num_features: int = 64,
        repeats: int = 7, kind: str = "uniform", seed: int = 0, bits: tuple[int, ...] = (2, 4, 8),
        threads: int = 2, check_rows: int = 2000, block: int = 64,
        progress: Callable[[str], None] | None = None, host=None) -> dict:
    """:func:`measure` on a seeded synthetic graph (:func:`sim.graphs.synthetic.synthetic_graph`)
    with uniform random 8-bit edge codes (FP32 weights ``w / 255``).

    Returns
    -------
    dict
        ``graph`` (sizes, degree statistics), ``machine`` (:func:`quagga.bench.machine.describe`),
        ``repeats`` and ``aggregation`` (the :func:`measure` result).
    """
    import numba
    import torch

    from sim.graphs.csr import degree_stats
    from sim.graphs.synthetic import synthetic_graph

    say = progress or log.info
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    say(f"graph: {kind}, {num_nodes} nodes, {num_edges} edges")
    g = synthetic_graph(num_nodes, num_edges, seed=seed, kind=kind)
    w = rng.integers(0, 256, size=g.num_edges).astype(np.int64)
    result = {"graph": {"kind": kind, "seed": seed, "num_nodes": num_nodes,
                        "num_edges": g.num_edges, "num_features": num_features,
                        "degree": degree_stats(g.indptr)},
              "machine": machine.describe(threads), "repeats": repeats}
    result["aggregation"] = measure(g.indptr, g.indices, w, w.astype(np.float32) / 255.0,
                                    num_features, bits, repeats, seed, check_rows=check_rows,
                                    block=block, say=say, host=host)
    result["machine"]["load_average_end"] = machine.load_average()
    return result


def format_table(agg: dict) -> list[str]:
    """Plain-text table lines of a :func:`measure` result (``*``: the fastest FP32 form)."""
    return [*timing_table(agg, [("vs fastest", "speedup_vs_fastest_fp32"),
                                ("best/best", "speedup_best_vs_fastest_fp32_best")]),
            f"  (* fastest FP32 form by median: {agg['fastest_fp32']})"]


def describe_run(res: dict) -> str:
    """The header and table of a :func:`run` result."""
    g, m = res["graph"], res["machine"]
    head = (f"graph: {g['kind']} N={g['num_nodes']} E={g['num_edges']} F={g['num_features']} "
            f"(max degree {g['degree']['max']}); machine: {m['cpu']}, {m['threads']} threads; "
            f"{res['repeats']} interleaved repeats, medians; load average "
            f"{m['load_average_start'][:1]} -> {m['load_average_end'][:1]}")
    return "\n".join([head, *format_table(res["aggregation"])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m quagga.bench.aggregation",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--edges", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--kind", default="uniform", choices=["uniform", "powerlaw"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the result to this file")
    ap.add_argument("--host-probe", help="host probe file: print the host model's predictions")
    a = ap.parse_args(argv)
    machine.prefer_passive_omp()
    host = None
    if a.host_probe:
        from sim.design.host import load_host

        host = load_host(a.host_probe)
    res = run(a.nodes, a.edges, a.features, a.repeats, a.kind, a.seed, threads=a.threads,
              progress=lambda msg: print(f"... {msg}", flush=True), host=host)
    print(describe_run(res))
    if a.json:
        write_text_atomic(a.json, json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
