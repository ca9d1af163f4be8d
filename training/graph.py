"""The propagation graph: GCN normalisation in canonical CSR order, built once per dataset.

``A_hat = D^-1/2 (A + I) D^-1/2`` (PyG's ``gcn_norm``: self loops added where missing,
degrees counted at the destination).  Edges are put in the canonical order of
:func:`quant.model_ir.csr_from_edges` (by destination, then source), so the per-edge
tensors the trainer quantizes are, position for position, the edge-weight codes of the
exported model.  Sparse throughout: nothing of size N x N is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from quant.model_ir import csr_from_edges


@dataclass
class PropGraph:
    """A normalised graph ready for propagation.

    Attributes
    ----------
    edge_index : (2, E) int64, canonical order, self loops included
    edge_weight : (E,) float32, ``A_hat`` entries
    num_nodes : int
    indptr : (N + 1,) int64 numpy, destination-sorted CSR row pointers
    indices : (E,) int64 numpy, source of each edge
    max_degree : int, largest in-degree (self loop included), at least 1
    undirected : (2, U) int64, each non-loop edge once (``src < dst``), for EMP's incidence matrix
    """

    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    num_nodes: int
    indptr: np.ndarray
    indices: np.ndarray
    max_degree: int
    deg_inv_sqrt: torch.Tensor
    undirected: torch.Tensor

    @property
    def nnz(self) -> int:
        """Non-zeros of ``A_hat`` (the paper's ``m``)."""
        return int(self.edge_index.shape[1])

    def to(self, device) -> "PropGraph":
        return PropGraph(self.edge_index.to(device), self.edge_weight.to(device), self.num_nodes,
                         self.indptr, self.indices, self.max_degree, self.deg_inv_sqrt.to(device),
                         self.undirected.to(device))


def build_prop_graph(edge_index: torch.Tensor, num_nodes: int) -> PropGraph:
    """Normalise and order ``edge_index`` (2, E) int64 for propagation."""
    ei, w = gcn_norm(edge_index.to(torch.int64), None, num_nodes, improved=False,
                     add_self_loops=True, flow="source_to_target", dtype=torch.float32)
    indptr, indices, perm = csr_from_edges(ei.numpy(), num_nodes)
    perm_t = torch.from_numpy(perm)
    ei = ei[:, perm_t].contiguous()
    w = w[perm_t].contiguous()
    deg = np.diff(indptr)
    dst = ei[1]
    deg_hat = torch.zeros(num_nodes, dtype=torch.float32).index_add_(
        0, dst, torch.ones_like(dst, dtype=torch.float32))
    dis = deg_hat.clamp(min=1).pow(-0.5)
    src, tgt = edge_index[0], edge_index[1]
    keep = src < tgt
    und = torch.stack([src[keep], tgt[keep]])
    back = torch.stack([tgt[tgt < src], src[tgt < src]])
    und = torch.unique(torch.cat([und, back], dim=1), dim=1)
    return PropGraph(ei, w, num_nodes, indptr, indices, max(1, int(deg.max()) if deg.size else 1),
                     dis, und)


def spmm(graph: PropGraph, x: torch.Tensor) -> torch.Tensor:
    """Float ``A_hat @ x`` (N, F) by gather / index_add (deterministic on CPU)."""
    src, dst = graph.edge_index
    out = torch.zeros(graph.num_nodes, x.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add_(0, dst, x[src] * graph.edge_weight[:, None])
