"""Quantized building blocks: a linear layer and one propagation step.

:class:`QuantLinear` fake-quantizes its input, weight and output (bias kept in float while
training; exported as int32 at ``s_x * s_w``).  :class:`QuantPropagate` is a PyG
``MessagePassing`` (sum aggregation) whose ``message``, ``aggregate`` and ``update``
hooks fake-quantize the per-edge message ``w_ij * x_j``, the row sum and the output: the
three stages of the aggregation unit (``quant.aggregate``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing

from training.graph import PropGraph, csr_matmul
from training.quantizer_factory import QuantizerFactory


class QuantLinear(nn.Module):
    """``Q_out(dropout(Q_in(x)) @ Q_w(W).T + b)``.

    Shapes: input (N, in_features) float32, output (N, out_features) float32.
    """

    def __init__(self, in_features: int, out_features: int, qf: QuantizerFactory,
                 out_role: str = "act") -> None:
        super().__init__()
        self.lin = nn.Linear(in_features, out_features)
        self.q_in = qf.make("act")
        self.q_w = qf.make("weight")
        self.q_out = qf.make(out_role)

    def forward(self, x: torch.Tensor, dropout: float = 0.0, quantize_first: bool = True) -> torch.Tensor:
        """``dropout`` is applied to the input (training only): after the input quantizer when
        ``quantize_first`` (its range then sees the same distribution in training and
        evaluation), before it otherwise (the published code's order)."""
        if quantize_first:
            xq = F.dropout(self.q_in(x), dropout, self.training)
        else:
            xq = self.q_in(F.dropout(x, dropout, self.training))
        return self.q_out(F.linear(xq, self.q_w(self.lin.weight), self.lin.bias))


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

    Shapes: ``x`` (N, F), ``edge_weight`` (E,) in the graph's canonical order; returns (N, F).
    """

    def __init__(self, qf: QuantizerFactory, msg: bool = True, upd: bool = True,
                 out_role: str = "act", share: str | None = "prop") -> None:
        super().__init__(aggr="sum", flow="source_to_target")
        key = (lambda s: f"{share}.{s}") if share else (lambda s: None)
        self.q_msg = qf.make("inner", share=key("msg")) if msg else None
        self.q_agg = qf.make(out_role if not upd else "inner", share=key("agg"))
        self.q_upd = qf.make(out_role, share=key("upd")) if upd else None

    def forward(self, x: torch.Tensor, graph: PropGraph, edge_weight: torch.Tensor) -> torch.Tensor:
        """Per-edge messages when the message stage is quantized; otherwise PyG's fused
        ``message_and_aggregate`` path on the sparse adjacency (one CSR SpMM, no E x F tensor)."""
        if self.q_msg is None:
            return self.propagate(graph.adj_t, x=x, edge_weight=edge_weight, graph=graph)
        return self.propagate(graph.edge_index, x=x, edge_weight=edge_weight, graph=graph)

    def message_and_aggregate(self, adj_t, x: torch.Tensor, edge_weight: torch.Tensor,
                              graph: PropGraph) -> torch.Tensor:
        return self.q_agg(csr_matmul(graph, edge_weight, x))

    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        m = edge_weight.unsqueeze(-1) * x_j
        return self.q_msg(m) if self.q_msg is not None else m

    def aggregate(self, inputs: torch.Tensor, index: torch.Tensor, ptr=None,
                  dim_size: int | None = None) -> torch.Tensor:
        return self.q_agg(super().aggregate(inputs, index, ptr=ptr, dim_size=dim_size))

    def update(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.q_upd(inputs) if self.q_upd is not None else inputs
