"""The quantized models: SMP-GNN, APPNP, EMP (Elastic GNN) and a plain deep GCN.

SMP / APPNP / EMP share the decoupled architecture of the paper (predict, then propagate)::

    x -> dropout -> QLin(F -> hidden) -> ReLU -> dropout -> QLin(hidden -> C) = H0
      -> K propagation steps -> logits

Every tensor that a later integer operation reads is fake-quantized, so that the trained
model lowers one to one onto the integer ops of :mod:`quant.model_ir` (see
:mod:`training.lowering`).  Step ``k`` of SMP (correct mode; ``c_k = 2 eta_H lambda_k``)::

    P  = Qprop(A_hat X)                          quantized message / aggregate / update
    Xt = Qc(0.9 P + 0.1 H0)                      (eta_H = 0.1; comb width)
    G  = Q(Xt - X)                               the layer-wise change (propagated next)
    Pg = Qgap(A_hat G)
    D  = Qc(Pg - G)                              = -(I - A_hat) G
    Y  = Q(Xt + c_k D)                           descent on lambda_k * tr(G^T (I - A_hat) G)
    T  = tr(G^T (I - A_hat) G)                   float, differentiable
    s  <- s - 2 eta_s lambda s ;  lambda <- clip(lambda + eta_lambda (T + s^2 - alpha_c m), 0, 1/(4 eta_H))

The clip keeps ``lambda >= 0`` (an inequality constraint's multiplier) and ``c_k <= 1/2``, where the
step ``G -> G + c (A_hat - I) G`` cannot amplify any graph frequency.

``paper_code=True`` reproduces the published update instead: ``Y = Q(Xt + c_k Pg)``,
``s <- s + 2 eta_s lambda s``, ``lambda <- lambda + eta_lambda (alpha_c m - s^2 - T)``, the
multiplier restarted every forward, and one alpha shared by all steps per stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training import exact as ex
from training.config import ModelConfig
from training.graph import PropGraph, spmm
from training.layers import QuantLinear, QuantPropagate
from training.quantizer_factory import QuantizerFactory


def make_factory(cfg: ModelConfig) -> QuantizerFactory:
    return QuantizerFactory(bits=cfg.bits, bt=cfg.bt, edge_bits=cfg.edge_bits,
                            comb_bits=cfg.comb_bits, paper_code=cfg.paper_code,
                            alpha_reinit=cfg.alpha_reinit, bt_zero=cfg.bt_zero_exact)


def build_model(cfg: ModelConfig, in_features: int, num_classes: int) -> nn.Module:
    """Construct the model of ``cfg`` (parameters drawn from torch's current RNG state)."""
    qf = make_factory(cfg)
    if cfg.model == "gcn":
        return DeepGCN(cfg, qf, in_features, num_classes)
    return DecoupledGNN(cfg, qf, in_features, num_classes)


# ---------------------------------------------------------------------------------------
# propagation steps
# ---------------------------------------------------------------------------------------

class APPNPStep(nn.Module):
    """``X' = Q(a H0 + (1 - a) Qprop(A_hat X))`` (a = teleport)."""

    def __init__(self, cfg: ModelConfig, qf: QuantizerFactory, last: bool) -> None:
        super().__init__()
        self.a = cfg.teleport
        self.prop = QuantPropagate(qf, cfg.msg_quant, cfg.upd_quant, share="prop")
        self.q_x = qf.make("comb" if last else "act", share=None)

    def forward(self, x, h0, graph: PropGraph, w, state: dict) -> torch.Tensor:
        p = self.prop(x, graph, w)
        return self.q_x((1 - self.a) * p + self.a * h0)

    def forward_exact(self, x: ex.QT, h0: ex.QT, graph: PropGraph, w: ex.QT, state: dict,
                      mult_bits: int, record: list | None = None) -> ex.QT:
        """The same step on integer codes (:mod:`training.exact`)."""
        p = ex.propagate_stage(self.prop, x, w, graph, mult_bits, record)
        return ex.add_stage(self.q_x, p, 1 - self.a, h0, self.a, mult_bits, record)


class SMPStep(nn.Module):
    """One smoothness-aware propagation step (module docstring for the equations)."""

    def __init__(self, cfg: ModelConfig, qf: QuantizerFactory, last: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.prop = QuantPropagate(qf, cfg.msg_quant, cfg.upd_quant, share="prop")
        self.gap = QuantPropagate(qf, cfg.msg_quant, cfg.upd_quant, share="prop")
        self.q_xt = qf.make("comb")
        self.q_g = qf.make("act")
        self.q_d = None if cfg.paper_code else qf.make("comb")
        self.q_y = qf.make("comb" if last else "act")

    def forward(self, x, h0, graph: PropGraph, w, state: dict) -> torch.Tensor:
        cfg = self.cfg
        eta = cfg.teleport
        p = self.prop(x, graph, w)
        xt = self.q_xt((1 - eta) * p + eta * h0)
        g = self.q_g(xt - x)
        pg = self.gap(g, graph, w)
        lam, s = state["lambda"], state["slack"]
        state["used"].append(lam)
        c = 2 * eta * lam
        t = (g * g).sum() - (g * spmm(graph, g)).sum()
        budget = cfg.alpha_c * graph.nnz
        if cfg.paper_code:
            y = self.q_y(xt + c * pg)
            s = s + 2 * cfg.eta_s * lam * s
            lam = lam + cfg.eta_lambda * (budget - s * s - t)
        else:
            d = self.q_d(pg - g)
            y = self.q_y(xt + c * d)
            s = s - 2 * cfg.eta_s * lam * s
            lam = torch.clamp(lam + cfg.eta_lambda * (t + s * s - budget), min=0.0,
                              max=1.0 / (4.0 * eta))
        state["lambda"], state["slack"] = lam, s
        return y

    def forward_exact(self, x: ex.QT, h0: ex.QT, graph: PropGraph, w: ex.QT, state: dict,
                      mult_bits: int, record: list | None = None) -> ex.QT:
        """The same step on integer codes (:mod:`training.exact`).  ``c_k`` enters the
        integer ``add`` as the Python float ``2 eta_H lambda_k`` (the export's constant) and
        the fake-quant path as a tensor, so the multiplier keeps its gradient."""
        cfg = self.cfg
        eta = cfg.teleport
        p = ex.propagate_stage(self.prop, x, w, graph, mult_bits, record)
        xt = ex.add_stage(self.q_xt, p, 1 - eta, h0, eta, mult_bits, record)
        g = ex.add_stage(self.q_g, xt, 1.0, x, -1.0, mult_bits, record)
        pg = ex.propagate_stage(self.gap, g, w, graph, mult_bits, record)
        lam, s = state["lambda"], state["slack"]
        state["used"].append(lam)
        c_t = 2 * eta * lam
        c = 2 * eta * float(lam.detach())
        gv = g.value
        t = (gv * gv).sum() - (gv * spmm(graph, gv)).sum()
        budget = cfg.alpha_c * graph.nnz
        if cfg.paper_code:
            y = ex.add_stage(self.q_y, xt, 1.0, pg, c, mult_bits, record, cb_t=c_t)
            s = s + 2 * cfg.eta_s * lam * s
            lam = lam + cfg.eta_lambda * (budget - s * s - t)
        else:
            d = ex.add_stage(self.q_d, pg, 1.0, g, -1.0, mult_bits, record)
            y = ex.add_stage(self.q_y, xt, 1.0, d, c, mult_bits, record, cb_t=c_t)
            s = s - 2 * cfg.eta_s * lam * s
            lam = torch.clamp(lam + cfg.eta_lambda * (t + s * s - budget), min=0.0,
                              max=1.0 / (4.0 * eta))
        state["lambda"], state["slack"] = lam, s
        return y


class EMPStep(nn.Module):
    """Elastic message passing (Liu et al. 2021) with L21 projection, quantized propagation.

    ``Yv = Qc(g H0 + (1 - g) Qprop(A_hat X))``; ``x_bar = Yv - g B^T z``;
    ``z = proj_L21(z + b B x_bar, lambda1)``; ``X' = Q(Yv - g B^T z)`` with ``g = 1/(1+lambda2)``,
    ``b = 1/(2g)`` and ``B`` the normalised incidence matrix (rows = undirected edges).
    """

    def __init__(self, cfg: ModelConfig, qf: QuantizerFactory, last: bool) -> None:
        super().__init__()
        self.gamma = 1.0 / (1.0 + cfg.emp_lambda2)
        self.beta = 1.0 / (2.0 * self.gamma)
        self.radius = cfg.emp_lambda1
        self.prop = QuantPropagate(qf, cfg.msg_quant, cfg.upd_quant, share="prop")
        self.q_y = qf.make("comb")
        self.q_x = qf.make("comb" if last else "act")

    @staticmethod
    def inc(graph: PropGraph, x: torch.Tensor) -> torch.Tensor:
        """``B x``: (U, F), row e = (i, j): ``x_i / sqrt(d_i) - x_j / sqrt(d_j)``."""
        i, j = graph.undirected
        d = graph.deg_inv_sqrt
        return x[i] * d[i, None] - x[j] * d[j, None]

    @staticmethod
    def inc_t(graph: PropGraph, z: torch.Tensor) -> torch.Tensor:
        """``B^T z``: (N, F)."""
        i, j = graph.undirected
        d = graph.deg_inv_sqrt
        out = torch.zeros(graph.num_nodes, z.shape[1], dtype=z.dtype, device=z.device)
        out.index_add_(0, i, z * d[i, None])
        out.index_add_(0, j, -z * d[j, None])
        return out

    def forward(self, x, h0, graph: PropGraph, w, state: dict) -> torch.Tensor:
        p = self.prop(x, graph, w)
        yv = self.q_y(self.gamma * h0 + (1 - self.gamma) * p)
        z = state.get("z")
        if z is None:
            z = torch.zeros(graph.undirected.shape[1], x.shape[1], dtype=x.dtype, device=x.device)
        x_bar = yv - self.gamma * self.inc_t(graph, z)
        z_bar = z + self.beta * self.inc(graph, x_bar)
        norm = z_bar.norm(p=2, dim=1, keepdim=True)
        scale = torch.where(norm > self.radius, self.radius / norm.clamp(min=1e-12),
                            torch.ones_like(norm))
        z = z_bar * scale
        state["z"] = z
        return self.q_x(yv - self.gamma * self.inc_t(graph, z))


STEPS = {"smp": SMPStep, "appnp": APPNPStep, "emp": EMPStep}


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------

class DecoupledGNN(nn.Module):
    """Two quantized linear layers, then K propagation steps (SMP, APPNP or EMP).

    ``forward(x, graph)``: ``x`` (N, F) float32 preprocessed features -> logits (N, C).
    After an eval-mode forward, ``last_lambdas`` (K,) holds the multipliers SMP used.
    """

    def __init__(self, cfg: ModelConfig, qf: QuantizerFactory, in_features: int,
                 num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.lin1 = QuantLinear(in_features, cfg.hidden, qf)
        self.lin2 = QuantLinear(cfg.hidden, num_classes, qf)
        self.q_edge = qf.make("edge")
        step = STEPS[cfg.model]
        self.steps = nn.ModuleList(step(cfg, qf, k == cfg.layers - 1) for k in range(cfg.layers))
        self.register_buffer("lambda0", torch.tensor(cfg.lambda_init, dtype=torch.float32))
        self.register_buffer("slack0", torch.tensor(cfg.lambda_init, dtype=torch.float32))
        self.register_buffer("last_lambdas", torch.zeros(cfg.layers, dtype=torch.float32))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        p, first = self.cfg.dropout, not self.cfg.paper_code
        h = F.relu(self.lin1(x, p, first))
        return self.lin2(h, p, first)

    def forward(self, x: torch.Tensor, graph: PropGraph, record: list | None = None) -> torch.Tensor:
        """Logits (N, C).  With ``cfg.exact_forward`` every stage computes the integer model's
        codes and ``record`` (a list, optional) receives them in the export's op order; with
        ``cfg.exact_eval`` the evaluation forward (``eval()``) does."""
        if self.cfg.exact_forward or (self.cfg.exact_eval and not self.training):
            return self._forward_exact(x, graph, record)
        h0 = self.head(x)
        w = self.q_edge(graph.edge_weight).detach()  # constant weights: alpha kept at its init
        state = self._initial_state()
        xk = h0
        for step in self.steps:
            xk = step(xk, h0, graph, w, state)
        self._keep_state(state)
        return xk

    def _initial_state(self) -> dict:
        """SMP's multiplier and slack at the first step: where the previous training forward
        ended (``warm_start``) or ``lambda_init``; ``used`` collects each step's multiplier."""
        warm = self.cfg.warm_start and not self.cfg.paper_code
        lam0 = self.lambda0 if warm else torch.tensor(self.cfg.lambda_init)
        s0 = self.slack0 if warm else torch.tensor(self.cfg.lambda_init)
        return {"lambda": lam0.clone(), "slack": s0.clone(), "used": []}

    def _keep_state(self, state: dict) -> None:
        """Store the final multiplier and slack (training, ``warm_start``) or the multipliers
        each step used (evaluation: frozen at export)."""
        if self.cfg.model != "smp":
            return
        with torch.no_grad():
            if self.training and self.cfg.warm_start and not self.cfg.paper_code:
                self.lambda0.copy_(state["lambda"].detach())
                self.slack0.copy_(state["slack"].detach())
            if not self.training:
                self.last_lambdas.copy_(torch.stack([v.detach() for v in state["used"]]))

    def _forward_exact(self, x: torch.Tensor, graph: PropGraph, record: list | None) -> torch.Tensor:
        mb, p = self.cfg.mult_bits, self.cfg.dropout
        w = ex.edge_stage(self.q_edge, graph.edge_weight)
        h = ex.input_stage(self.lin1.q_in, x, record)
        h = ex.relu_stage(ex.linear_stage(self.lin1, h, p, mb, record), record)
        h0 = ex.linear_stage(self.lin2, h, p, mb, record)
        state = self._initial_state()
        xk = h0
        for step in self.steps:
            xk = step.forward_exact(xk, h0, graph, w, state, mb, record)
        self._keep_state(state)
        if record is not None:
            record.append(("argmax", torch.argmax(xk.codes, dim=1)))
        return xk.value


class DeepGCN(nn.Module):
    """L layers of ``Qprop(A_hat QLin(x))`` with ReLU between them (bias before propagation)."""

    def __init__(self, cfg: ModelConfig, qf: QuantizerFactory, in_features: int,
                 num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        dims = [in_features] + [cfg.hidden] * (cfg.layers - 1) + [num_classes]
        self.lins = nn.ModuleList(QuantLinear(dims[i], dims[i + 1], qf) for i in range(cfg.layers))
        self.props = nn.ModuleList(
            QuantPropagate(qf, cfg.msg_quant, cfg.upd_quant,
                           out_role="comb" if i == cfg.layers - 1 else "act", share=None)
            for i in range(cfg.layers))
        self.q_edge = qf.make("edge")

    def forward(self, x: torch.Tensor, graph: PropGraph, record: list | None = None) -> torch.Tensor:
        """Logits (N, C); ``record`` as :meth:`DecoupledGNN.forward`."""
        if self.cfg.exact_forward or (self.cfg.exact_eval and not self.training):
            return self._forward_exact(x, graph, record)
        w = self.q_edge(graph.edge_weight).detach()  # constant weights: alpha kept at its init
        h = x
        for i, (lin, prop) in enumerate(zip(self.lins, self.props)):
            h = prop(lin(h, self.cfg.dropout, not self.cfg.paper_code), graph, w)
            if i < self.cfg.layers - 1:
                h = F.relu(h)
        return h

    def _forward_exact(self, x: torch.Tensor, graph: PropGraph, record: list | None) -> torch.Tensor:
        mb, p = self.cfg.mult_bits, self.cfg.dropout
        w = ex.edge_stage(self.q_edge, graph.edge_weight)
        h = ex.input_stage(self.lins[0].q_in, x, record)
        for i, (lin, prop) in enumerate(zip(self.lins, self.props)):
            h = ex.propagate_stage(prop, ex.linear_stage(lin, h, p, mb, record), w, graph, mb, record)
            if i < self.cfg.layers - 1:
                h = ex.relu_stage(h, record)
        if record is not None:
            record.append(("argmax", torch.argmax(h.codes, dim=1)))
        return h.value
