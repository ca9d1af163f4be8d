"""Lower a trained fake-quant model to the integer model IR (:mod:`quant.model_ir`).

Every fake-quant stage of the trained model becomes one integer op; a stage followed by
another quantizer becomes a requantization with ``(M, n)`` from the ratio of the float32
scales (:func:`quant.reference.derive_multiplier`, ``mult_bits`` of the model config):

* input quantizer of the first linear layer -> ``input`` (with the dataset's preprocessing);
* ``QuantLinear`` -> ``linear`` (int GEMM, int32 bias at ``s_x s_w``, requantize to ``Q_out``);
  a linear whose input quantizer differs from the producer's codes is preceded by a
  requantizing ``add`` (``b_mult = 0``);
* ReLU -> ``relu`` (clamp at the zero point);
* ``QuantPropagate`` -> ``propagate``: edge-weight codes (``edge`` quantizer, zero point 0),
  message requantization ``s_x s_w / s_msg``, row requantization, update requantization,
  accumulator width :func:`quant.reference.acc_bits_required` at the graph's max degree;
* each combination ``Q(ca * a + cb * b)`` -> ``add`` with signed multipliers
  ``ca s_a / s_out`` and ``cb s_b / s_out`` at one shift; SMP's ``lambda_k`` enters as the
  constant of its ``add`` (frozen from the last eval-mode forward);
* prediction -> ``argmax``.

EMP's L21 projection has no integer op, so EMP models are not lowered
(:class:`LoweringError`).  BT / BT* stages are lowered as 8-bit codes on BT's 8-bit grid
with their snap to four levels as two ``add`` ops (:meth:`_Builder.finish`); inside a
propagation step (message, aggregate) the factory gives plain INT2 QLR quantizers, because
the aggregation unit has no truncation stage (docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from quant.aggregate import Requantizer
from quant.errors import QuantError
from quant.model_ir import (
    AddOp,
    ArgmaxOp,
    InputOp,
    IntModel,
    LinearOp,
    PropagateOp,
    ReluOp,
    graph_hash,
)
from quant.reference import quantize_bias
from quant.spec import QuantSpec
from quant.truncation import BT_STEP
from training.exact import (  # noqa: F401
    TRUNC_SHIFT,
    add_multipliers,
    linear_requant,
    propagate_params,
    requantizer,
    truncation_multipliers,
)
from training.graph import PropGraph
from training.layers import QuantLinear, QuantPropagate
from training.models import APPNPStep, DecoupledGNN, DeepGCN, SMPStep


class LoweringError(QuantError):
    """A model that cannot be expressed in integer ops (FP32, EMP, unused quantizer)."""


@dataclass(frozen=True)
class QP:
    """Quantization parameters of one named code tensor."""

    name: str
    scale: float
    zero: int
    spec: QuantSpec


class _Builder:
    def __init__(self, mult_bits: int) -> None:
        self.ops: list = []
        self.tensors: dict[str, np.ndarray] = {}
        self.mult_bits = mult_bits
        self.n = 0

    def fresh(self, stem: str) -> str:
        self.n += 1
        return f"{stem}.{self.n}"

    def requant(self, ratio: float, q) -> Requantizer:
        qparams(q)
        return requantizer(ratio, q, self.mult_bits)

    def add(self, a: QP, ca: float, b: QP, cb: float, q, stem: str) -> QP:
        s, z, spec = qparams(q)
        ma, mb, n = add_multipliers(ca, a.scale, cb, b.scale, s, self.mult_bits)
        out = self.fresh(stem)
        self.ops.append(AddOp(a=a.name, b=b.name, out=out, a_zero=a.zero, a_mult=ma, b_zero=b.zero,
                              b_mult=mb, shift=n, zero_point=z, spec=spec))
        return self.finish(QP(out, s, z, spec), q)

    def finish(self, qp: QP, q) -> QP:
        """Append BT / BT*'s snap to ``{0, 85, 170, 255}`` when ``q`` truncates (two ``add`` ops:
        ``c = clamp(floor((y + skew + 42) / 85), 0, 3)``, then ``85 c``); else return ``qp``."""
        mode = getattr(q, "bt_mode", None)
        if mode is None:
            return qp
        if "const.one" not in self.tensors:
            self.tensors["const.one"] = np.ones((1, 1), dtype=np.int32)
        ma, mb, n = truncation_multipliers(q._skew())
        c = self.fresh(f"{qp.name}.bt_level")
        self.ops.append(AddOp(a=qp.name, b="const.one", out=c, a_zero=0, a_mult=ma, b_zero=0,
                              b_mult=mb, shift=n, zero_point=0, spec=QuantSpec(2)))
        out = self.fresh(f"{qp.name}.bt")
        self.ops.append(AddOp(a=c, b=c, out=out, a_zero=0, a_mult=BT_STEP, b_zero=0, b_mult=0,
                              shift=0, zero_point=0, spec=qp.spec))
        return QP(out, qp.scale, qp.zero, qp.spec)

    def convert(self, a: QP, q, stem: str) -> QP:
        """Requantize ``a`` to quantizer ``q``'s codes (no op if they are identical)."""
        s, z, spec = qparams(q)
        if float(s) == a.scale and z == a.zero and spec == a.spec:
            return a
        return self.add(a, 1.0, a, 0.0, q, stem)


def qparams(q) -> tuple[float, int, QuantSpec]:
    if q is None or not q.enabled:
        raise LoweringError("model has a disabled quantizer: FP32 models have no integer form")
    if not bool(q.initialized):
        raise LoweringError("quantizer was never run: run an eval-mode forward before lowering")
    s, z, spec = q.qparams()
    return float(s), int(z), spec


def _linear(b: _Builder, lin: QuantLinear, x: QP, stem: str) -> QP:
    x = b.convert(x, lin.q_in, f"{stem}.in")
    sw, zw, _ = qparams(lin.q_w)
    wname, bname = f"{stem}.weight", f"{stem}.bias"
    with torch.no_grad():
        b.tensors[wname] = lin.q_w.to_int(lin.lin.weight.detach().cpu()).numpy().astype(np.int32)
        bias = lin.lin.bias.detach().cpu().numpy().astype(np.float64)
    b.tensors[bname] = quantize_bias(bias, x.scale, sw)
    so, zo, spo = qparams(lin.q_out)
    out = b.fresh(stem)
    b.ops.append(LinearOp(inp=x.name, out=out, weight=wname, w_zero=zw, x_zero=x.zero,
                          requant=linear_requant(x.scale, lin, b.mult_bits), bias=bname))
    return b.finish(QP(out, so, zo, spo), lin.q_out)


def _propagate(b: _Builder, prop: QuantPropagate, x: QP, edge: QP, max_degree: int, stem: str) -> QP:
    for q in (prop.q_msg, prop.q_agg, prop.q_upd):
        if q is not None:
            qparams(q)
    for inner in (prop.q_msg, prop.q_agg if prop.q_upd is not None else None):
        if getattr(inner, "bt_mode", None) is not None:
            raise LoweringError("BT inside a propagation step (message / aggregate) has no integer form")
    params, last = propagate_params(prop, x.scale, x.zero, x.spec, edge.scale, edge.zero,
                                    edge.spec, max_degree, b.mult_bits)
    s, z, spec = qparams(last)
    name = b.fresh(stem)
    b.ops.append(PropagateOp(inp=x.name, out=name, edge_weight=edge.name, params=params))
    return b.finish(QP(name, s, z, spec), last)


def lower(model: torch.nn.Module, graph: PropGraph, *, num_features: int, normalize: str | None,
          meta: dict | None = None, source_edge_index: np.ndarray | None = None) -> IntModel:
    """Translate ``model`` (trained, after an eval-mode forward) to an :class:`IntModel`.

    Parameters
    ----------
    model : DecoupledGNN (smp / appnp) or DeepGCN
    graph : the PropGraph it was trained on (canonical CSR order)
    num_features : input feature count
    normalize : input preprocessing (``"row_sum"`` or ``None``), as given to the model
    meta : extra metadata for the file (dataset, config, accuracies)
    source_edge_index : (2, E) the dataset's edges as loaded (before self loops and
        normalisation); the file's graph hash is taken over these, so a simulator loading the
        same dataset can check it.  Defaults to the propagation graph's edges.
    """
    cfg = model.cfg
    if cfg.bits is None:
        raise LoweringError("bits must be 1..8 for integer inference, not FP32")
    if cfg.model == "emp":
        raise LoweringError("model 'emp' has no integer form (its L21 projection is not an integer op)")
    b = _Builder(cfg.mult_bits)
    b.tensors["graph.indptr"] = graph.indptr.astype(np.int64)
    b.tensors["graph.indices"] = graph.indices.astype(np.int64)
    se, ze, spe = qparams(model.q_edge)
    with torch.no_grad():
        b.tensors["graph.edge_weight"] = model.q_edge.to_int(graph.edge_weight.cpu()).numpy().astype(np.int32)
    edge = QP("graph.edge_weight", se, ze, spe)
    first = model.lin1.q_in if isinstance(model, DecoupledGNN) else model.lins[0].q_in
    sx, zx, spx = qparams(first)
    b.ops.append(InputOp(out="x", spec=spx, scale=sx, zero_point=zx, normalize=normalize))
    x = b.finish(QP("x", sx, zx, spx), first)
    lambdas: list[float] = []
    if isinstance(model, DecoupledGNN):
        h = _linear(b, model.lin1, x, "lin1")
        r = b.fresh("relu1")
        b.ops.append(ReluOp(inp=h.name, out=r, zero_point=h.zero))
        h = QP(r, h.scale, h.zero, h.spec)
        h0 = _linear(b, model.lin2, h, "lin2")
        xk = h0
        a = cfg.teleport
        for k, step in enumerate(model.steps):
            st = f"step{k}"
            if isinstance(step, APPNPStep):
                p = _propagate(b, step.prop, xk, edge, graph.max_degree, f"{st}.prop")
                xk = b.add(p, 1 - a, h0, a, step.q_x, f"{st}.x")
            elif isinstance(step, SMPStep):
                lam = float(model.last_lambdas[k])
                lambdas.append(lam)
                c = 2 * a * lam
                p = _propagate(b, step.prop, xk, edge, graph.max_degree, f"{st}.prop")
                xt = b.add(p, 1 - a, h0, a, step.q_xt, f"{st}.xt")
                g = b.add(xt, 1.0, xk, -1.0, step.q_g, f"{st}.g")
                pg = _propagate(b, step.gap, g, edge, graph.max_degree, f"{st}.gap")
                if cfg.paper_code:
                    xk = b.add(xt, 1.0, pg, c, step.q_y, f"{st}.y")
                else:
                    d = b.add(pg, 1.0, g, -1.0, step.q_d, f"{st}.d")
                    xk = b.add(xt, 1.0, d, c, step.q_y, f"{st}.y")
            else:
                raise LoweringError(f"step type {type(step).__name__} has no integer form")
    elif isinstance(model, DeepGCN):
        xk = x
        for i, (lin, prop) in enumerate(zip(model.lins, model.props)):
            xk = _linear(b, lin, xk, f"gcn{i}.lin")
            xk = _propagate(b, prop, xk, edge, graph.max_degree, f"gcn{i}.prop")
            if i < cfg.layers - 1:
                r = b.fresh(f"gcn{i}.relu")
                b.ops.append(ReluOp(inp=xk.name, out=r, zero_point=xk.zero))
                xk = QP(r, xk.scale, xk.zero, xk.spec)
    else:
        raise LoweringError(f"model type {type(model).__name__} has no integer form")
    b.ops.append(ArgmaxOp(inp=xk.name, out="pred"))
    ei = graph.edge_index.cpu().numpy() if source_edge_index is None else np.asarray(source_edge_index)
    info = {"num_nodes": graph.num_nodes, "num_features": int(num_features),
            "num_edges": int(ei.shape[1]), "hash": graph_hash(ei, graph.num_nodes, num_features)}
    m = dict(meta or {})
    m.update({"model_config": cfg.to_dict(), "lambdas": lambdas, "logits_scale": xk.scale,
              "logits_zero_point": xk.zero})
    model_ir = IntModel(ops=b.ops, tensors=b.tensors, graph=info, output="pred", meta=m)
    model_ir.validate()
    return model_ir
