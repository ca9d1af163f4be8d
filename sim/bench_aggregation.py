"""Benchmark: bit-exact packed aggregation (INT2/INT4/INT8) against torch FP32 CSR SpMM.

Both run in the same process on the same synthetic graph, same features count, same
thread count; each kernel is warmed up once, then all are timed in ``repeats`` interleaved
rounds (:func:`sim.timing.time_interleaved`, so load changes hit every kernel alike) and
reported by their medians; the fastest round of each kernel and the ratio of the fastest
rounds are reported beside them (torch's CSR SpMM varies by up to 2.5x between rounds on a
quiet 2-vCPU guest, so the two ratios bracket what a user sees).  The integer kernel is timed writing its output as packed codes,
the form the unit writes and the next layer reads (torch writes its FP32 result).  Every
integer result is checked bit for bit against the exact kernel (:func:`sim.functional.aggregate`,
itself tested equal to ``quant``'s reference), in int16 and packed form, and on the first
rows against :func:`quant.aggregate.aggregate_reference`.

torch is imported lazily inside :func:`_torch_spmm_fn` and :func:`_torch_version` only; the
simulator's library modules never import it.

Run: ``python -m sim.bench_aggregation [--nodes N --edges E --features F --repeats R]``
or ``quagga simulate --bench``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
from collections.abc import Callable

import numpy as np

from quant.fileio import write_text_atomic
from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.reference import acc_bits_required, derive_multiplier
from quant.spec import QuantSpec
from sim import functional
from sim.graph import CSRGraph, degree_stats, synthetic_graph
from sim.timing import median, time_interleaved

log = logging.getLogger(__name__)

__all__ = ["bench_params", "cpu_model", "format_table", "run"]


def _torch_version() -> str:
    import torch

    return torch.__version__


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_params(bits: int, max_degree: int, mean_degree: float, rng: np.random.Generator
                 ) -> AggregationParams:
    """GCN-like parameters: unsigned ``bits`` features with a small zero point, unsigned 8-bit
    edge weights with zero point 0, the overflow-free accumulator for ``max_degree``, and an
    aggregate requantizer mapping a typical row sum onto the output codes."""
    xs, ws = QuantSpec(bits), QuantSpec(8)
    x_zero = int(rng.integers(0, max(1, xs.levels // 4)))
    acc_bits = acc_bits_required(bits, 8, max(1, max_degree))
    typical = max(1.0, mean_degree) * (xs.qmax / 2) * 128
    m, n = derive_multiplier(xs.levels / (2 * typical), 16)
    return AggregationParams(xs, x_zero, ws, 0, acc_bits, Requantizer(m, n, x_zero, xs))


def _torch_spmm_fn(graph: CSRGraph, w_float: np.ndarray, x_float: np.ndarray, threads: int
                   ) -> Callable[[], object]:
    """``torch.sparse.mm(A_csr, X)`` in FP32 as a callable (torch imported here only)."""
    import torch

    torch.set_num_threads(threads)
    n = graph.num_nodes
    a = torch.sparse_csr_tensor(torch.from_numpy(graph.indptr), torch.from_numpy(graph.indices),
                                torch.from_numpy(w_float.astype(np.float32)),
                                size=(n, graph.num_src), dtype=torch.float32)
    x = torch.from_numpy(x_float.astype(np.float32))

    def call():
        with torch.inference_mode():
            return torch.sparse.mm(a, x)
    return call


def run(num_nodes: int = 100_000, num_edges: int = 1_000_000, num_features: int = 64,
        repeats: int = 7, kind: str = "uniform", seed: int = 0, bits: tuple[int, ...] = (2, 4, 8),
        threads: int = 2, check_rows: int = 2000, block: int = 64,
        progress: Callable[[str], None] | None = None) -> dict:
    """Time bit-exact packed aggregation at each width and torch FP32 CSR SpMM, in one run.

    Parameters
    ----------
    num_nodes, num_edges, num_features : int
        Synthetic graph (``kind`` ``uniform`` or ``powerlaw``) and feature count.
    repeats : int
        Timed repetitions per kernel (after one warm-up); medians are reported.
    bits : tuple of int
        Feature widths to time.
    threads : int
        numba and torch threads.
    check_rows : int
        Rows also compared with the plain numpy reference (the exact kernel checks all rows).
    progress : callable, optional
        Called with a short message before each stage (the CLI prints it).

    Returns
    -------
    dict
        ``graph`` (sizes, degree stats), ``machine``, ``torch_fp32`` and ``int<b>`` entries
        (``median_s``, ``min_s``, ``times_s``, ``edges_per_s``, ``speedup_vs_torch_fp32``
        (median over median), ``speedup_best_vs_torch_fp32_best`` (fastest over fastest), ``bit_exact``,
        ``saturations``, ``bytes_per_feature_row``).
    """
    import numba

    say = progress or (lambda msg: log.info(msg))
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(seed)
    say(f"graph: {kind}, {num_nodes} nodes, {num_edges} edges")
    g = synthetic_graph(num_nodes, num_edges, seed, kind=kind)
    stats = degree_stats(g.indptr)
    w = rng.integers(0, 256, size=g.num_edges).astype(np.int64)
    result: dict = {
        "graph": {"kind": kind, "seed": seed, "num_nodes": num_nodes, "num_edges": g.num_edges,
                  "num_features": num_features, "degree": stats},
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
                    "load_average_start": list(os.getloadavg()),
                    "numba": numba.__version__, "numpy": np.__version__,
                    "torch": _torch_version()},
        "repeats": repeats,
    }
    xf = rng.standard_normal((g.num_src, num_features)).astype(np.float32)
    fns: dict[str, Callable[[], object]] = {"torch_fp32": _torch_spmm_fn(g, w.astype(np.float32) / 255.0,
                                                                          xf, threads)}
    checks: dict[int, dict] = {}
    ixc = functional.compact_indices(g.indices, g.num_src)
    for b in bits:
        say(f"INT{b}: pack, compile, check against the exact kernel and the reference")
        params = bench_params(b, stats["max"], stats["mean"], rng)
        x = rng.integers(params.x_spec.qmin, params.x_spec.qmax + 1, size=(g.num_src, num_features))
        xw = functional.pack_operand(x, params.x_spec)
        res = functional.aggregate_packed(g.indptr, g.indices, w, xw, num_features, params,
                                          block=block)  # validated call (and compile)
        w8 = functional.compact_weights(w, params.w_spec)
        timed = functional.aggregate_packed(g.indptr, ixc, w8, xw, num_features, params,
                                            block=block, validate=False, packed_out=True)
        exact = functional.aggregate(g.indptr, g.indices, w, x, params)
        rows = min(check_rows, g.num_nodes)
        e = int(g.indptr[rows])
        ref = aggregate_reference(g.indptr[:rows + 1], g.indices[:e], w[:e], x, params)
        ok = bool(np.array_equal(res.y.astype(np.int32), exact.y)
                  and res.saturations == exact.saturations == timed.saturations
                  and np.array_equal(timed.y, functional.pack_operand(exact.y, params.y_spec))
                  and np.array_equal(res.y[:rows].astype(np.int32), ref.y))
        checks[b] = {"params": params, "ok": ok, "saturations": res.saturations,
                     "out_bytes": timed.y.shape[1]}
        fns[f"int{b}"] = (lambda p=params, xw=xw, w8=w8: functional.aggregate_packed(
            g.indptr, ixc, w8, xw, num_features, p, block=block, validate=False, packed_out=True))
    result["machine"]["numba_threading_layer"] = numba.threading_layer()
    say(f"timing: {repeats} interleaved rounds of torch FP32 and INT{'/'.join(map(str, bits))}")
    times = time_interleaved(fns, repeats)
    result["machine"]["load_average_end"] = list(os.getloadavg())
    t_med = median(times["torch_fp32"])
    t_min = min(times["torch_fp32"])
    result["torch_fp32"] = {"median_s": t_med, "min_s": t_min, "times_s": times["torch_fp32"],
                            "edges_per_s": g.num_edges / t_med,
                            "bytes_per_feature_row": 4 * num_features, "threads": threads}
    for b in bits:
        med = median(times[f"int{b}"])
        c = checks[b]
        result[f"int{b}"] = {
            "median_s": med, "min_s": min(times[f"int{b}"]), "times_s": times[f"int{b}"],
            "edges_per_s": g.num_edges / med, "speedup_vs_torch_fp32": t_med / med,
            "speedup_best_vs_torch_fp32_best": t_min / min(times[f"int{b}"]), "bit_exact": c["ok"],
            "output": f"packed INT{c['params'].y_spec.bits} codes (what the unit writes), uint8 "
                      f"(N, {c['out_bytes']})",
            "checked_against": ["sim.functional.aggregate (all rows)",
                                f"quant.aggregate.aggregate_reference (first {min(check_rows, g.num_nodes)} rows)"],
            "saturations": c["saturations"], "acc_bits": c["params"].acc_bits,
            "bytes_per_feature_row": math.ceil(num_features * b / 8),
        }
    return result


def format_table(res: dict) -> str:
    """A plain-text table of a :func:`run` result."""
    g = res["graph"]
    lines = [f"graph: {g['kind']} N={g['num_nodes']} E={g['num_edges']} F={g['num_features']} "
             f"(max degree {g['degree']['max']}); machine: {res['machine']['cpu']}, "
             f"{res['machine']['threads']} threads; {res['repeats']} interleaved repeats, medians; "
             f"load average {res['machine']['load_average_start'][0]:.1f} -> "
             f"{res['machine']['load_average_end'][0]:.1f}",
             f"{'kernel':<26}{'median ms':>11}{'Medges/s':>11}{'vs torch':>10}"
             f"{'best ms':>9}{'best/best':>11}{'bit-exact':>11}"]
    t = res["torch_fp32"]
    lines.append(f"{'torch FP32 CSR SpMM':<26}{t['median_s'] * 1e3:>11.2f}{t['edges_per_s'] / 1e6:>11.1f}"
                 f"{1.0:>10.2f}{t['min_s'] * 1e3:>9.2f}{1.0:>11.2f}{'-':>11}")
    for k, v in res.items():
        if k.startswith("int"):
            lines.append(f"{k.upper() + ' packed (bit-exact)':<26}{v['median_s'] * 1e3:>11.2f}"
                         f"{v['edges_per_s'] / 1e6:>11.1f}{v['speedup_vs_torch_fp32']:>10.2f}"
                         f"{v['min_s'] * 1e3:>9.2f}{v['speedup_best_vs_torch_fp32_best']:>11.2f}"
                         f"{str(v['bit_exact']):>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.bench_aggregation", description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--edges", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--kind", default="uniform", choices=["uniform", "powerlaw"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the result to this file")
    a = ap.parse_args(argv)
    res = run(a.nodes, a.edges, a.features, a.repeats, a.kind, a.seed, threads=a.threads,
              progress=lambda m: print(f"... {m}", flush=True))
    print(format_table(res))
    if a.json:
        write_text_atomic(a.json, json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
