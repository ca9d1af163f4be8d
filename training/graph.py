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

from quant.csr import csr_from_edge_index
from training.fused_message import transposed_csr
from training.sparse_warnings import quiet_sparse


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
    t_perm: torch.Tensor | None = None
    t_indptr: torch.Tensor | None = None
    t_indices: torch.Tensor | None = None

    @property
    def nnz(self) -> int:
        """Non-zeros of ``A_hat`` (the paper's ``m``)."""
        return int(self.edge_index.shape[1])

    def to(self, device) -> "PropGraph":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PropGraph(self.edge_index.to(device), self.edge_weight.to(device), self.num_nodes,
                         self.indptr, self.indices, self.max_degree, self.deg_inv_sqrt.to(device),
                         self.undirected.to(device), mv(self.t_perm), mv(self.t_indptr),
                         mv(self.t_indices))

    @property
    def adj_t(self) -> torch.Tensor:
        """``A_hat`` as a torch sparse CSR tensor (rows = destinations), built once."""
        if getattr(self, "_adj_t", None) is None:
            with quiet_sparse():
                self._adj_t = torch.sparse_csr_tensor(
                    self.indptr_t, self.indices_t, self.edge_weight, (self.num_nodes, self.num_nodes))
        return self._adj_t

    @property
    def indptr_t(self) -> torch.Tensor:
        return torch.from_numpy(self.indptr).to(self.edge_index.device)

    @property
    def indices_t(self) -> torch.Tensor:
        return torch.from_numpy(self.indices).to(self.edge_index.device)


def build_prop_graph(edge_index: torch.Tensor, num_nodes: int) -> PropGraph:
    """Normalise and order ``edge_index`` (2, E) int64 for propagation."""
    ei, w = gcn_norm(edge_index.to(torch.int64), None, num_nodes, improved=False,
                     add_self_loops=True, flow="source_to_target", dtype=torch.float32)
    indptr, indices, perm = csr_from_edge_index(ei.numpy(), num_nodes)
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
    # the transpose (source-sorted CSR) for the backward pass of the fused product
    t_indptr, t_indices, t_perm = csr_from_edge_index(ei.numpy()[::-1].copy(), num_nodes)
    return PropGraph(ei, w, num_nodes, indptr, indices, max(1, int(deg.max()) if deg.size else 1),
                     dis, und, torch.from_numpy(t_perm), torch.from_numpy(t_indptr),
                     torch.from_numpy(t_indices))


class _CSRMatmul(torch.autograd.Function):
    """``A @ x`` with ``A`` given by CSR structure and per-edge values ``w``.

    Forward: one CSR SpMM.  Backward: ``A^T @ g`` with the precomputed transposed structure
    (torch's own sparse backward transposes the matrix on every call, which is slow), and,
    when ``w`` needs a gradient, ``dL/dw_e = <g[dst_e], x[src_e]>``.
    """

    @staticmethod
    def forward(ctx, w, x, graph):  # noqa: D102
        a = torch.sparse_csr_tensor(graph.indptr_t, graph.indices_t, w, (graph.num_nodes, x.shape[0]))
        ctx.save_for_backward(w, x)
        ctx.graph = graph
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        w, x = ctx.saved_tensors
        gr = ctx.graph
        gw = gx = None
        if ctx.needs_input_grad[1]:
            at = transposed_csr(  # cached: built once per edge-weight tensor, not per call
                w, gr.t_indptr, gr.t_indices, gr.t_perm, (x.shape[0], gr.num_nodes))
            gx = torch.sparse.mm(at, g.contiguous())
        if ctx.needs_input_grad[0]:
            src, dst = gr.edge_index
            gw = (g[dst] * x[src]).sum(dim=1)
        return gw, gx, None


def csr_matmul(graph: PropGraph, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A @ x`` (N, F) with edge values ``w`` (E,) in canonical order; differentiable in both."""
    with quiet_sparse():
        return _CSRMatmul.apply(w, x, graph)


def spmm(graph: PropGraph, x: torch.Tensor) -> torch.Tensor:
    """Float ``A_hat @ x`` (N, F) with the graph's own (unquantized) weights."""
    return csr_matmul(graph, graph.edge_weight, x)
