"""Seeded random integer models and graphs for fuzzing the simulator against the reference.

:func:`random_model` builds a :class:`quant.model_ir.IntModel` shaped like the GCN, APPNP or
SMP models the trainer exports (input, linear, ReLU, propagation steps, add-with-requantize
combinations, argmax), with random widths, zero points, multipliers and accumulator widths,
on a graph with the awkward features the hardware must survive: hub rows, isolated rows,
self loops, duplicate edges and accumulators narrow enough to saturate.  numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant.csr import csr_from_edge_index

from quant import model_ir as mi
from quant.aggregate import AggregationParams, Requantizer
from quant.checks import check_int_fields, int_field
from quant.reference import derive_multiplier, derive_shared_multipliers, quantize_bias
from quant.spec import QuantSpec

__all__ = ["ARCHS", "GraphSpec", "random_graph_edges", "random_model"]

ARCHS = ("gcn", "appnp", "smp")


@dataclass(frozen=True)
class GraphSpec:
    """Shape of a fuzz graph.

    num_nodes : nodes; avg_degree : mean extra edges per node; hub_degree : in-degree of one
    hub row (0 for none); isolated : fraction of rows with no in-edge; self_loops : add a self
    loop to every non-isolated node; duplicates : repeat some edges.
    """

    num_nodes: int = int_field(12, 1)
    avg_degree: float = 2.0
    hub_degree: int = int_field(0, 0)
    isolated: float = 0.0
    self_loops: bool = False
    duplicates: bool = False

    def __post_init__(self) -> None:
        check_int_fields(self)


def random_graph_edges(gs: GraphSpec, rng: np.random.Generator) -> np.ndarray:
    """A random ``edge_index`` (2, E) int64 following ``gs``."""
    n = gs.num_nodes
    n_iso = int(round(gs.isolated * n))
    live = np.sort(rng.permutation(n)[n_iso:]) if n_iso < n else np.array([], dtype=np.int64)
    src, dst = [], []
    if live.size:
        e = int(rng.poisson(gs.avg_degree * n))
        src.append(rng.integers(0, n, e))
        dst.append(rng.choice(live, e))
        if gs.hub_degree:
            hub = int(rng.choice(live))
            src.append(rng.integers(0, n, gs.hub_degree))
            dst.append(np.full(gs.hub_degree, hub))
        if gs.self_loops:
            src.append(live)
            dst.append(live)
    s = np.concatenate(src).astype(np.int64) if src else np.zeros(0, np.int64)
    d = np.concatenate(dst).astype(np.int64) if dst else np.zeros(0, np.int64)
    if gs.duplicates and s.size:
        rep = rng.integers(1, 4, s.size)
        s, d = np.repeat(s, rep), np.repeat(d, rep)
    return np.stack([s, d])


def _spec(rng: np.random.Generator, bits: int) -> QuantSpec:
    return QuantSpec(bits, signed=bool(rng.random() < 0.3))


def _zero(rng: np.random.Generator, spec: QuantSpec) -> int:
    if spec.signed:
        return 0 if rng.random() < 0.6 else int(rng.integers(spec.qmin, spec.qmax + 1))
    return int(rng.integers(spec.qmin, min(spec.qmax, spec.qmin + 2 + spec.levels // 4) + 1))


def _rq(rng: np.random.Generator, ratio: float, spec: QuantSpec, mult_bits: int) -> Requantizer:
    m, n = derive_multiplier(ratio * float(2.0 ** rng.uniform(-1.5, 1.5)), mult_bits)
    return Requantizer(m, n, _zero(rng, spec), spec)


def _centred(spec: QuantSpec, z: int) -> int:
    return max(spec.qmax - z, z - spec.qmin, 1)


def random_model(seed: int, arch: str = "gcn", bits: int = 4, graph: GraphSpec | None = None,
                 num_features: int = 6, hidden: int = 5, num_classes: int = 3, steps: int = 2,
                 narrow_acc: bool = False, msg: bool = False, upd: bool = False,
                 mult_bits: int = 16) -> tuple[mi.IntModel, np.ndarray]:
    """A random integer model and raw input features.

    Parameters
    ----------
    seed : int
        Seed of ``np.random.default_rng``.
    arch : {"gcn", "appnp", "smp"}
        ``gcn``: linear, ReLU, propagate, linear, propagate.  ``appnp``: MLP then
        ``steps`` times ``z = add(propagate(z), h0)`` (teleport).  ``smp``: MLP then
        ``steps`` times ``z = add(z, propagate(z))`` with a signed second multiplier
        (a frozen ``lambda_k``).
    bits : int
        Activation code width (input features use 8 bits).
    graph : GraphSpec
    narrow_acc : bool
        Accumulators a few bits narrower than overflow-free, so hub rows saturate.
    msg, upd : bool
        Message / update requantizers in every propagation step.

    Returns
    -------
    (IntModel, x) with ``x`` float32 (N, num_features) raw features.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, not {arch!r}")
    rng = np.random.default_rng(seed)
    gs = graph or GraphSpec()
    n = gs.num_nodes
    ei = random_graph_edges(gs, rng)
    indptr, indices, _ = csr_from_edge_index(ei, n)
    x = (rng.random((n, num_features)) * rng.integers(0, 2, (n, num_features))).astype(np.float32)
    in_spec = QuantSpec(8)
    s_in = 1.0 / 255
    tensors: dict[str, np.ndarray] = {"graph.indptr": indptr, "graph.indices": indices}
    ops: list = [mi.InputOp("x", in_spec, s_in, 0, "row_sum" if rng.random() < 0.5 else None)]
    zeros = {"x": 0}
    specs = {"x": in_spec}
    count = [0]

    def linear(inp: str, k: int, c: int, relu: bool) -> str:
        i = count[0] = count[0] + 1
        wspec = QuantSpec(8, signed=bool(rng.random() < 0.5))
        wz = 0 if wspec.signed else int(rng.integers(100, 156))
        tensors[f"lin{i}.w"] = rng.integers(wspec.qmin, wspec.qmax + 1, (c, k)).astype(np.int32)
        b = quantize_bias(rng.normal(0, 0.5, c), 0.05, 0.01)
        tensors[f"lin{i}.b"] = b
        spec = _spec(rng, bits)
        ratio = spec.levels / (2.0 * _centred(specs[inp], zeros[inp]) * _centred(wspec, wz) * np.sqrt(k))
        rq = _rq(rng, ratio, spec, mult_bits)
        out = f"lin{i}"
        ops.append(mi.LinearOp(inp, out, f"lin{i}.w", wz, zeros[inp], rq,
                               bias=f"lin{i}.b" if rng.random() < 0.8 else None))
        zeros[out], specs[out] = rq.zero_point, spec
        if relu:
            ops.append(mi.ReluOp(out, out + ".relu", rq.zero_point))
            zeros[out + ".relu"], specs[out + ".relu"] = rq.zero_point, spec
            return out + ".relu"
        return out

    def propagate(inp: str) -> str:
        i = count[0] = count[0] + 1
        wspec = QuantSpec(int(rng.choice([4, 8])))
        wz = 0 if rng.random() < 0.7 else int(rng.integers(0, 3))
        ew = f"prop{i}.ew"
        tensors[ew] = rng.integers(wspec.qmin, wspec.qmax + 1, indices.size).astype(np.int32)
        xs, xz = specs[inp], zeros[inp]
        p_max = _centred(xs, xz) * _centred(wspec, wz)
        m_rq = None
        if msg:
            m_rq = _rq(rng, xs.levels / (2.0 * p_max), xs, mult_bits)
            p_max = _centred(xs, m_rq.zero_point)
        deg = int(np.diff(indptr).max(initial=1))
        need = int(p_max * max(deg, 1)).bit_length() + 1
        acc_bits = max(2, min(63, need - int(rng.integers(1, 5)) if narrow_acc else need))
        out_spec = _spec(rng, bits)
        out_rq = _rq(rng, out_spec.levels / (2.0 * p_max * max(1.0, np.sqrt(gs.avg_degree + 1))),
                     out_spec, mult_bits)
        u_rq = _rq(rng, 1.0, out_spec, mult_bits) if upd else None
        params = AggregationParams(xs, xz, wspec, wz, acc_bits, out_rq, m_rq, u_rq)
        out = f"prop{i}"
        ops.append(mi.PropagateOp(inp, out, ew, params))
        zeros[out], specs[out] = params.y_zero, params.y_spec
        return out

    def add(a: str, b: str, ra: float, rb: float) -> str:
        i = count[0] = count[0] + 1
        spec = _spec(rng, bits)
        (ma, mb), sh = derive_shared_multipliers((ra, rb), mult_bits)
        out = f"add{i}"
        ops.append(mi.AddOp(a, b, out, zeros[a], ma, zeros[b], mb, sh, _zero(rng, spec), spec))
        zeros[out], specs[out] = ops[-1].zero_point, spec
        return out

    if arch == "gcn":
        h = linear("x", num_features, hidden, relu=True)
        h = propagate(h)
        h = linear(h, hidden, num_classes, relu=False)
        z = propagate(h)
    else:
        h = linear("x", num_features, hidden, relu=True)
        h0 = linear(h, hidden, num_classes, relu=False)
        z = h0
        for _ in range(steps):
            p = propagate(z)
            if arch == "appnp":
                alpha = float(rng.uniform(0.05, 0.3))
                z = add(p, h0, (1 - alpha) * float(rng.uniform(0.5, 2)), alpha * float(rng.uniform(0.5, 2)))
            else:
                lam = float(rng.uniform(-1.0, 1.0))
                z = add(z, p, float(rng.uniform(0.3, 2)), lam if lam != 0 else 0.5)
    ops.append(mi.ArgmaxOp(z, "pred"))
    graph = {"num_nodes": n, "num_features": num_features, "num_edges": int(ei.shape[1]),
             "hash": mi.graph_hash(ei, n, num_features)}
    model = mi.IntModel(ops, tensors, graph, "pred",
                        {"dataset": "random", "model": arch, "seed": int(seed), "bits": bits})
    return model, x
