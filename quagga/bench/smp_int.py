"""A calibrated SMP integer model for timing (numpy only).

:func:`smp_int_model` builds the :class:`quant.model_ir.IntModel` the trainer's exporter
(``training/lowering.py``) produces for an SMP model, op for op, from seeded random float
weights instead of trained ones (timing does not depend on the weights):

``input -> lin1 (F_in -> hidden) -> relu -> lin2 (hidden -> C) = h0``, then K steps of::

    p  = propagate(x_k)          xt = add(p, h0)  (1 - a, a)     g = add(xt, x_k) (1, -1)
    pg = propagate(g)  (gap)     d  = add(pg, g)  (1, -1)        x_k+1 = add(xt, d) (1, c_k)

and ``argmax``.  Scales and zero points are calibrated on a float32 forward pass of the same
weights (per-tensor min/max, unsigned codes, as QLR at alpha = 1); propagation inputs and
outputs use ``bits``, combination intermediates 8 bits, edge weights 8 bits (zero point 0),
message requantization off (the trainer's ``msg_quant=False``; with it on, every step would
run the exact per-edge path), update requantization on.  The float weights are returned too,
so the FP32 PyG model computes the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant.csr import csr_from_edge_index

from quant import model_ir as mi
from quant.aggregate import AggregationParams, Requantizer
from quant.reference import (acc_bits_required, derive_multiplier, derive_shared_multipliers,
                             qparams_from_range, quantize, quantize_bias)
from quant.spec import QuantSpec

__all__ = ["SMPWeights", "gcn_norm_numpy", "smp_int_model"]


@dataclass
class SMPWeights:
    """Float32 weights and constants of one SMP model (shared by the integer and FP32 forms)."""

    w1: np.ndarray  # (hidden, F_in)
    b1: np.ndarray  # (hidden,)
    w2: np.ndarray  # (C, hidden)
    b2: np.ndarray  # (C,)
    teleport: float
    coefs: list[float]  # c_k = 2 * teleport * lambda_k per step


def gcn_norm_numpy(edge_index: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """``A_hat = D^-1/2 (A + I) D^-1/2`` edge list: self loops appended, weights
    ``1 / sqrt(d_src d_dst)`` with in-degrees counted with the self loop (PyG's ``gcn_norm``).

    Returns ``(edge_index (2, E + N) int64, weight (E + N,) float32)``.
    """
    ei = np.asarray(edge_index, dtype=np.int64)
    loops = np.arange(num_nodes, dtype=np.int64)
    ei = np.concatenate([ei, np.stack([loops, loops])], axis=1)
    deg = np.bincount(ei[1], minlength=num_nodes).astype(np.float64)
    dinv = 1.0 / np.sqrt(deg)
    return ei, (dinv[ei[0]] * dinv[ei[1]]).astype(np.float32)


def _qp(t: np.ndarray, bits: int) -> tuple[float, int, QuantSpec]:
    spec = QuantSpec(bits)
    s, z = qparams_from_range(float(t.min()), float(t.max()), spec)
    return float(s), int(z), spec


def smp_int_model(edge_index: np.ndarray, x: np.ndarray, num_classes: int, bits: int,
                  seed: int = 0, hidden: int = 64, steps: int = 10, teleport: float = 0.1,
                  lam: float = 0.05, mult_bits: int = 16
                  ) -> tuple[mi.IntModel, SMPWeights, np.ndarray, np.ndarray]:
    """Build the calibrated SMP integer model.

    Parameters
    ----------
    edge_index : int (2, E) graph without self loops (they are added, as ``gcn_norm`` does)
    x : float (N, F_in) raw input features
    num_classes, bits, hidden, steps, teleport : model shape and widths
    lam : float
        Frozen multiplier ``lambda_k`` of every step (``c_k = 2 teleport lambda_k``).
    seed : int
        Seed of the random float weights.

    Returns
    -------
    (IntModel, SMPWeights, norm_edge_index (2, E') int64, norm_weight (E',) float32)
    """
    rng = np.random.default_rng(seed)
    n, f_in = x.shape
    ei, ew = gcn_norm_numpy(edge_index, n)
    indptr, indices, perm = csr_from_edge_index(ei, n)
    w_csr = ew[perm]
    wts = SMPWeights(
        w1=(rng.standard_normal((hidden, f_in)) / np.sqrt(f_in)).astype(np.float32),
        b1=(0.1 * rng.standard_normal(hidden)).astype(np.float32),
        w2=(rng.standard_normal((num_classes, hidden)) / np.sqrt(hidden)).astype(np.float32),
        b2=(0.1 * rng.standard_normal(num_classes)).astype(np.float32),
        teleport=float(teleport), coefs=[2 * teleport * lam] * steps)

    # float32 forward pass for calibration (CSR SpMM with numpy: rows via reduceat)
    def prop_f(h: np.ndarray) -> np.ndarray:
        msg = h[indices] * w_csr[:, None]
        out = np.zeros_like(h)
        nz = np.flatnonzero(np.diff(indptr) > 0)
        if nz.size:
            out[nz] = np.add.reduceat(msg, indptr[nz], axis=0)
        return out

    xf = np.asarray(x, dtype=np.float32)
    e_s, e_z, e_spec = float(w_csr.max()) / 255.0, 0, QuantSpec(8)
    w_codes = np.clip(np.rint(w_csr / e_s), 0, 255).astype(np.int32)
    ops: list = []
    tensors: dict[str, np.ndarray] = {"graph.indptr": indptr, "graph.indices": indices,
                                      "graph.edge_weight": w_codes}
    qp: dict[str, tuple[float, int, QuantSpec]] = {}

    sx = _qp(xf, bits)
    ops.append(mi.InputOp("x", sx[2], sx[0], sx[1], None))
    qp["x"] = sx

    def linear(inp: str, out: str, w: np.ndarray, b: np.ndarray, y_float: np.ndarray) -> None:
        s_in, z_in, _ = qp[inp]
        ws = _qp(w, bits)
        tensors[f"{out}.weight"] = quantize(w, ws[0], ws[1], ws[2])
        tensors[f"{out}.bias"] = quantize_bias(b, s_in, ws[0])
        so = _qp(y_float, bits)
        m, sh = derive_multiplier(s_in * ws[0] / so[0], mult_bits)
        ops.append(mi.LinearOp(inp, out, f"{out}.weight", ws[1], z_in,
                               Requantizer(m, sh, so[1], so[2]), bias=f"{out}.bias"))
        qp[out] = so

    h1 = xf @ wts.w1.T + wts.b1
    linear("x", "lin1", wts.w1, wts.b1, h1)
    ops.append(mi.ReluOp("lin1", "relu1", qp["lin1"][1]))
    qp["relu1"] = qp["lin1"]
    h0 = np.maximum(h1, 0) @ wts.w2.T + wts.b2
    linear("relu1", "h0", wts.w2, wts.b2, h0)

    def propagate(inp: str, out: str, y_float: np.ndarray) -> None:
        s_in, z_in, spec_in = qp[inp]
        agg = _qp(y_float, bits)
        upd = _qp(y_float, bits)
        m, sh = derive_multiplier(s_in * e_s / agg[0], mult_bits)
        mu, shu = derive_multiplier(agg[0] / upd[0], mult_bits)
        acc = acc_bits_required(spec_in.bits, e_spec.bits, int(np.diff(indptr).max(initial=1)))
        params = AggregationParams(spec_in, z_in, e_spec, e_z, acc,
                                   Requantizer(m, sh, agg[1], agg[2]),
                                   upd=Requantizer(mu, shu, upd[1], upd[2]))
        ops.append(mi.PropagateOp(inp, out, "graph.edge_weight", params))
        qp[out] = upd

    def add(a: str, ca: float, b: str, cb: float, out: str, y_float: np.ndarray, b_bits: int) -> None:
        so = _qp(y_float, b_bits)
        (ma, mb), sh = derive_shared_multipliers((ca * qp[a][0] / so[0], cb * qp[b][0] / so[0]),
                                                 mult_bits)
        ops.append(mi.AddOp(a, b, out, qp[a][1], ma, qp[b][1], mb, sh, so[1], so[2]))
        qp[out] = so

    xk_f, xk = h0, "h0"
    a = teleport
    for k in range(steps):
        st = f"step{k}"
        p_f = prop_f(xk_f)
        propagate(xk, f"{st}.prop", p_f)
        xt_f = (1 - a) * p_f + a * h0
        add(f"{st}.prop", 1 - a, "h0", a, f"{st}.xt", xt_f, 8)
        g_f = xt_f - xk_f
        add(f"{st}.xt", 1.0, xk, -1.0, f"{st}.g", g_f, bits)
        pg_f = prop_f(g_f)
        propagate(f"{st}.g", f"{st}.gap", pg_f)
        d_f = pg_f - g_f
        add(f"{st}.gap", 1.0, f"{st}.g", -1.0, f"{st}.d", d_f, 8)
        y_f = xt_f + wts.coefs[k] * d_f
        add(f"{st}.xt", 1.0, f"{st}.d", wts.coefs[k], f"{st}.y", y_f, bits if k < steps - 1 else 8)
        xk_f, xk = y_f, f"{st}.y"
    ops.append(mi.ArgmaxOp(xk, "pred"))
    graph = {"num_nodes": n, "num_features": f_in, "num_edges": int(np.asarray(edge_index).shape[1]),
             "hash": mi.graph_hash(np.asarray(edge_index), n, f_in)}
    meta = {"model": "smp", "source": "quagga.bench.smp_int (calibrated random weights)",
            "bits": bits, "hidden": hidden, "steps": steps, "teleport": teleport, "lambda": lam,
            "msg_requant": False, "upd_requant": True, "edge_bits": 8, "comb_bits": 8}
    model = mi.IntModel(ops, tensors, graph, "pred", meta)
    model.validate()
    return model, wts, ei, ew
