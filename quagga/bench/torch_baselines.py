"""FP32 torch / PyG baselines: one aggregation layer and the SMP model (torch imported here).

Two PyG input forms are built for every propagation, and the harness times both:

* ``pyg_edge_index``: ``MessagePassing.propagate`` with an ``edge_index`` (2, E) and edge
  weights: gather ``x_j``, multiply, scatter-add (PyG 2.8 without torch-scatter uses
  ``torch.index_add_`` / ``scatter_reduce``);
* ``pyg_sparse_csr``: the same layer given ``adj_t`` as a ``torch.sparse_csr_tensor``:
  ``message_and_aggregate`` calls :func:`torch_geometric.utils.spmm` (torch's CSR SpMM).

``torch_csr_spmm`` (``torch.sparse.mm`` on the CSR matrix) is the plain torch kernel.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import spmm

from quagga.bench.smp_int import SMPWeights

__all__ = ["GCNProp", "SMPTorch", "csr_tensor", "edge_index_tensors"]


class GCNProp(MessagePassing):
    """``Y = A_hat X`` with precomputed ``gcn_norm`` edge weights (no parameters)."""

    def __init__(self) -> None:
        super().__init__(aggr="add")

    def forward(self, x: torch.Tensor, edge_index, edge_weight: torch.Tensor | None = None):
        return self.propagate(edge_index, x=x, edge_weight=edge_weight)

    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        return edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t, x: torch.Tensor) -> torch.Tensor:
        return spmm(adj_t, x, reduce="sum")


def csr_tensor(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, n: int) -> torch.Tensor:
    """``adj_t`` as a float32 ``torch.sparse_csr_tensor`` (row = destination)."""
    from training.sparse_warnings import quiet_sparse

    with quiet_sparse():
        return torch.sparse_csr_tensor(torch.from_numpy(np.asarray(indptr, np.int64)),
                                       torch.from_numpy(np.asarray(indices, np.int64)),
                                       torch.from_numpy(np.asarray(w, np.float32)), size=(n, n),
                                       dtype=torch.float32)


def edge_index_tensors(indptr: np.ndarray, indices: np.ndarray, w: np.ndarray
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``edge_index`` (row 0 source, row 1 destination, CSR order) and float32 weights."""
    dst = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    ei = torch.from_numpy(np.stack([np.asarray(indices, np.int64), dst]))
    return ei, torch.from_numpy(np.asarray(w, np.float32))


class SMPTorch(torch.nn.Module):
    """FP32 SMP of the same architecture and weights as :func:`quagga.bench.smp_int.smp_int_model`:
    ``h0 = lin2(relu(lin1(x)))``, then per step ``p = A x``, ``xt = (1-a) p + a h0``,
    ``g = xt - x``, ``pg = A g`` (gap propagation), ``x = xt + c_k (pg - g)``; argmax."""

    def __init__(self, wts: SMPWeights) -> None:
        super().__init__()
        self.lin1 = torch.nn.Linear(wts.w1.shape[1], wts.w1.shape[0])
        self.lin2 = torch.nn.Linear(wts.w2.shape[1], wts.w2.shape[0])
        with torch.no_grad():
            self.lin1.weight.copy_(torch.from_numpy(wts.w1))
            self.lin1.bias.copy_(torch.from_numpy(wts.b1))
            self.lin2.weight.copy_(torch.from_numpy(wts.w2))
            self.lin2.bias.copy_(torch.from_numpy(wts.b2))
        self.prop = GCNProp()
        self.teleport = wts.teleport
        self.coefs = list(wts.coefs)

    def forward(self, x: torch.Tensor, edge_index, edge_weight: torch.Tensor | None = None):
        h0 = self.lin2(torch.relu(self.lin1(x)))
        a = self.teleport
        xk = h0
        for c in self.coefs:
            p = self.prop(xk, edge_index, edge_weight)
            xt = (1 - a) * p + a * h0
            g = xt - xk
            pg = self.prop(g, edge_index, edge_weight)
            xk = xt + c * (pg - g)
        return xk.argmax(dim=1)
