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

from dataclasses import dataclass, field
from pathlib import Path

from quagga.bench.smp_int import SMPWeights

__all__ = ["FloatGNN", "FloatGNNTorch", "GCNProp", "SMPTorch", "csr_tensor", "edge_index_tensors",
           "float_gnn_from_checkpoint"]


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


@dataclass
class FloatGNN:
    """The float weights and constants of a trained model, for FP32 inference.

    ``arch``: ``smp`` / ``appnp`` (decoupled: ``h0 = lin2(relu(lin1(x)))``, then the steps)
    or ``gcn`` (``L`` layers ``A (lin(h))`` with ReLU between them).  ``lins`` holds
    ``(weight (out, in), bias (out,))`` float32 per linear layer; ``steps`` the propagation
    steps ``K`` of smp / appnp; ``coefs`` the SMP step
    multipliers ``c_k = 2 teleport lambda_k`` frozen at export; ``paper_code`` the published
    code's SMP update ``x = xt + c_k A g`` instead of ``xt + c_k (A g - g)``.
    """

    arch: str
    lins: list[tuple[np.ndarray, np.ndarray]]
    steps: int = 10
    teleport: float = 0.1
    coefs: list[float] = field(default_factory=list)
    paper_code: bool = False


def float_gnn_from_checkpoint(path: str | Path, lambdas: list[float] | None) -> tuple[FloatGNN, dict]:
    """:class:`FloatGNN` from a ``quagga train`` checkpoint (loaded with ``weights_only=True``).

    ``lambdas`` are the SMP multipliers frozen in the exported model (``meta["lambdas"]``),
    so the FP32 model uses the same constants as the integer one.  Returns the weights and
    the checkpoint's ``model_config``.

    Raises
    ------
    ValueError
        For a model kind without a float inference form here (EMP).
    """
    ck = torch.load(Path(path), weights_only=True, map_location="cpu")
    cfg = dict(ck["model_config"])
    sd = ck["state_dict"]
    arch = cfg["model"]

    def lin(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return (sd[f"{prefix}.lin.weight"].detach().numpy().astype(np.float32),
                sd[f"{prefix}.lin.bias"].detach().numpy().astype(np.float32))

    if arch in ("smp", "appnp"):
        lins = [lin("lin1"), lin("lin2")]
    elif arch == "gcn":
        lins = [lin(f"lins.{i}") for i in range(int(cfg["layers"]))]
    else:
        raise ValueError(f"model must be smp, appnp or gcn for the FP32 forward, not {arch!r}")
    teleport = float(cfg.get("teleport", 0.1))
    coefs = [2.0 * teleport * float(v) for v in (lambdas or [])]
    if arch == "smp" and len(coefs) != int(cfg["layers"]):
        raise ValueError(f"an SMP model needs {cfg['layers']} frozen lambdas, not {len(coefs)}")
    return FloatGNN(arch, lins, int(cfg["layers"]), teleport, coefs, bool(cfg.get("paper_code", False))), cfg


class FloatGNNTorch(torch.nn.Module):
    """FP32 inference of a :class:`FloatGNN` in torch; ``forward(x, prop)`` takes the
    propagation ``h -> A_hat h`` as a callable, so every sparse form (PyG with
    ``edge_index`` or ``adj_t``, ``torch.sparse.mm`` with int64 or int32 indices) runs the
    same model.  Returns the predicted class per node (the float outputs with ``logits``)."""

    def __init__(self, fw: FloatGNN) -> None:
        super().__init__()
        self.fw = fw
        self.lins = torch.nn.ModuleList()
        for wt, b in fw.lins:
            m = torch.nn.Linear(wt.shape[1], wt.shape[0])
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(wt))
                m.bias.copy_(torch.from_numpy(b))
            self.lins.append(m)

    def forward(self, x: torch.Tensor, prop, logits: bool = False) -> torch.Tensor:
        fw = self.fw
        out = (lambda h: h) if logits else (lambda h: h.argmax(dim=1))
        if fw.arch == "gcn":
            h = x
            for i, m in enumerate(self.lins):
                h = prop(m(h))
                if i < len(self.lins) - 1:
                    h = torch.relu(h)
            return out(h)
        h0 = self.lins[1](torch.relu(self.lins[0](x)))
        a = fw.teleport
        xk = h0
        if fw.arch == "appnp":
            for _ in range(fw.steps):
                xk = (1 - a) * prop(xk) + a * h0
            return out(xk)
        for c in fw.coefs:
            xt = (1 - a) * prop(xk) + a * h0
            g = xt - xk
            pg = prop(g)
            xk = xt + c * pg if fw.paper_code else xt + c * (pg - g)
        return out(xk)
