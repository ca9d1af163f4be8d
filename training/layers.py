"""Quantized building blocks: a linear layer and one propagation step.

:class:`QuantLinear` fake-quantizes its input, weight and output (bias exported as int32 at
``s_x * s_w``).  Models with the integer-exact forward (:mod:`training.exact`) compute the
linear op on integer codes and use only the module's quantizers and parameters.  :class:`QuantPropagate` is a PyG
``MessagePassing`` (sum aggregation) whose ``message``, ``aggregate`` and ``update``
hooks fake-quantize the per-edge message ``w_ij * x_j``, the row sum and the output: the
three stages of the aggregation unit (``quant.aggregate``).  With the message stage
quantized, the default path is PyG's fused ``message_and_aggregate`` hook running
:func:`training.fused_message.quantized_message_sum` (same forward values, no per-edge
tensors kept for the backward pass); ``fused=False`` keeps the per-edge ``message`` /
``aggregate`` hooks (the reference the fused path is tested against).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing

from quant.reference import BIAS_MAX, BIAS_MIN
from training.fused_message import fusable, quantized_message_sum
from training.graph import PropGraph, csr_matmul
from training.quantizer_factory import QuantizerFactory


def _scale(q) -> torch.Tensor:
    """The float32 scale ``q`` quantizes with now (the forward's; ``qparams()`` in eval mode)."""
    lo_s, hi_s = q._scaled_range_t()
    return q._scale_zero_t(lo_s, hi_s, q.code_spec)[0].detach()


def fake_quant_bias(bias: torch.Tensor, scale_x: torch.Tensor, scale_w: torch.Tensor) -> torch.Tensor:
    """The bias the integer model adds: ``round(b / (s_x s_w)) * s_x s_w``, straight-through.

    The integer code is computed as :func:`quant.reference.quantize_bias` computes it (float64
    product of the float32 scales, half to even, saturated to int32), so it equals the
    exported int32 bias; the value is returned in float32 as ``b + (v - b)`` (straight-through),
    which is ``v`` exactly unless the bias saturated (then to one float32 rounding of ``b``).
    Gradient: identity on ``bias``.

    Shapes: ``bias`` (C,) float32, scales 0-d float32; returns (C,) float32.
    """
    s = scale_x.to(torch.float64) * scale_w.to(torch.float64)
    bq = torch.clamp(torch.round(bias.detach().to(torch.float64) / s), BIAS_MIN, BIAS_MAX)
    return bias + ((bq * s).to(bias.dtype) - bias).detach()


class QuantLinear(nn.Module):
    """``Q_out(dropout(Q_in(x)) @ Q_w(W).T + b)``.

    In ``--paper-code`` mode (``qf.paper_code``) the bias is fake-quantized as the integer
    model stores it, at ``s_x * s_w`` (:func:`fake_quant_bias`), so that fake-quant and
    integer inference compute the same linear output (docs/training.md, "Integer inference
    and export").  This float forward keeps the float bias otherwise; the integer-exact
    forward (:func:`training.exact.linear_stage`) always adds the int32 bias.

    Shapes: input (N, in_features) float32, output (N, out_features) float32.
    """

    def __init__(self, in_features: int, out_features: int, qf: QuantizerFactory,
                 out_role: str = "act") -> None:
        super().__init__()
        self.lin = nn.Linear(in_features, out_features)
        self.q_in = qf.make("act")
        self.q_w = qf.make("weight")
        self.q_out = qf.make(out_role)
        self.bias_quant = bool(qf.enabled and qf.paper_code)

    def forward(self, x: torch.Tensor, dropout: float = 0.0, quantize_first: bool = True) -> torch.Tensor:
        """``dropout`` is applied to the input (training only): after the input quantizer when
        ``quantize_first`` (its range then sees the same distribution in training and
        evaluation), before it otherwise (the published code's order)."""
        if quantize_first:
            xq = F.dropout(self.q_in(x), dropout, self.training)
        else:
            xq = self.q_in(F.dropout(x, dropout, self.training))
        wq = self.q_w(self.lin.weight)
        bias = self.lin.bias
        if getattr(self, "bias_quant", False) and bias is not None:
            bias = fake_quant_bias(bias, _scale(self.q_in), _scale(self.q_w))
        return self.q_out(F.linear(xq, wq, bias))


class QuantPropagate(MessagePassing):
    """One quantized propagation step ``Q_upd(Q_agg(sum_j Q_msg(w_ij x_j)))``.

    Parameters
    ----------
    qf : QuantizerFactory
    msg, upd : bool
        Whether the message and update stages are quantized (the aggregate always is).
    out_role : str
        Role of the last quantized stage (``"comb"`` for a model's final output).
    share : str, optional
        Prefix of shared-alpha keys in paper-code mode.
    fused : bool
        Quantized messages through :func:`training.fused_message.quantized_message_sum`
        (default) instead of per-edge PyG ``message`` / ``aggregate`` hooks.  Quantizer
        kinds the fused op does not know always take the per-edge path.

    Shapes: ``x`` (N, F), ``edge_weight`` (E,) in the graph's canonical order; returns (N, F).
    """

    def __init__(self, qf: QuantizerFactory, msg: bool = True, upd: bool = True,
                 out_role: str = "act", share: str | None = "prop", fused: bool = True) -> None:
        super().__init__(aggr="sum", flow="source_to_target")
        self.fused = bool(fused)
        key = (lambda s: f"{share}.{s}") if share else (lambda s: None)
        self.q_msg = qf.make("inner", share=key("msg")) if msg else None
        self.q_agg = qf.make(out_role if not upd else "inner", share=key("agg"))
        self.q_upd = qf.make(out_role, share=key("upd")) if upd else None

    def forward(self, x: torch.Tensor, graph: PropGraph, edge_weight: torch.Tensor) -> torch.Tensor:
        """PyG's fused ``message_and_aggregate`` path on the sparse adjacency (no E x F tensor
        kept), or, with ``fused=False`` and a quantized message stage, per-edge messages."""
        if self.q_msg is not None and not (getattr(self, "fused", True) and fusable(self.q_msg)):
            return self.propagate(graph.edge_index, x=x, edge_weight=edge_weight, graph=graph)
        return self.propagate(graph.adj_t, x=x, edge_weight=edge_weight, graph=graph)

    def message_and_aggregate(self, adj_t, x: torch.Tensor, edge_weight: torch.Tensor,
                              graph: PropGraph) -> torch.Tensor:
        """``Q_agg(A_hat x)``: one CSR SpMM, or with the message stage quantized the fused
        gather / quantize / sum over the canonical edge list (PyG's sum aggregation)."""
        if self.q_msg is None:
            return self.q_agg(csr_matmul(graph, edge_weight, x))
        src, dst = graph.edge_index
        agg = lambda vals, index, ptr, n: self.aggr_module(  # noqa: E731
            vals, None, ptr=ptr, dim_size=n, dim=self.node_dim)  # segment sum over CSR rows
        tr = None if graph.t_perm is None else (graph.t_indptr, graph.t_indices, graph.t_perm)
        return self.q_agg(quantized_message_sum(self.q_msg, x, edge_weight, src, dst,
                                                graph.indptr_t, graph.num_nodes, agg, tr))

    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        m = edge_weight.unsqueeze(-1) * x_j
        return self.q_msg(m) if self.q_msg is not None else m

    def aggregate(self, inputs: torch.Tensor, index: torch.Tensor, ptr=None,
                  dim_size: int | None = None) -> torch.Tensor:
        return self.q_agg(super().aggregate(inputs, index, ptr=ptr, dim_size=dim_size))

    def update(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.q_upd(inputs) if self.q_upd is not None else inputs
