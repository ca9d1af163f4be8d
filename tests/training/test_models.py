"""Model pieces: fused and per-edge propagation agree, CSR product gradients, SMP / EMP invariants."""

from __future__ import annotations

import torch

from training.config import ModelConfig
from training.graph import build_prop_graph, csr_matmul
from training.layers import QuantPropagate
from training.models import EMPStep
from training.quantizer_factory import QuantizerFactory

from trainer_fixtures import tiny_graph, train_tiny


def _index_add(graph, w, x):
    src, dst = graph.edge_index
    return torch.zeros(graph.num_nodes, x.shape[1], dtype=x.dtype).index_add_(0, dst, x[src] * w[:, None])


def test_csr_matmul_matches_gather_scatter_with_grads():
    d = tiny_graph(1)
    g = build_prop_graph(d.edge_index, d.num_nodes)
    torch.manual_seed(0)
    x1 = torch.randn(d.num_nodes, 3, dtype=torch.float64, requires_grad=True)
    w1 = g.edge_weight.double().requires_grad_(True)
    x2, w2 = x1.detach().clone().requires_grad_(True), w1.detach().clone().requires_grad_(True)
    y1, y2 = csr_matmul(g, w1, x1), _index_add(g, w2, x2)
    assert torch.allclose(y1, y2)
    up = torch.randn_like(y1)
    (y1 * up).sum().backward()
    (y2 * up).sum().backward()
    assert torch.allclose(x1.grad, x2.grad) and torch.allclose(w1.grad, w2.grad)


def test_fused_and_message_paths_agree_in_fp32():
    d = tiny_graph(2)
    g = build_prop_graph(d.edge_index, d.num_nodes)
    qf = QuantizerFactory(bits=None)
    fused, per_edge = QuantPropagate(qf, msg=False), QuantPropagate(qf, msg=True)
    x = torch.randn(d.num_nodes, 4)
    assert torch.allclose(fused(x, g, g.edge_weight), per_edge(x, g, g.edge_weight), atol=1e-6)


def test_smp_lambdas_stay_in_bounds():
    _, _, res = train_tiny("smp", 4, epochs=3, alpha_c=1e-6, eta_lambda=1.0)
    lam = res.model.last_lambdas
    assert (lam >= 0).all() and (lam <= 1 / (4 * 0.1) + 1e-6).all()


def test_emp_l21_projection_and_runs():
    d = tiny_graph(3)
    g = build_prop_graph(d.edge_index, d.num_nodes)
    step = EMPStep(ModelConfig(model="emp", bits=None, emp_lambda1=0.05), QuantizerFactory(None), last=True)
    state = {}
    h0 = torch.randn(d.num_nodes, 3)
    out = step(h0, h0, g, g.edge_weight, state)
    assert out.shape == h0.shape
    assert (state["z"].norm(dim=1) <= 0.05 + 1e-6).all()
    # B^T is the adjoint of B
    z = torch.randn(g.undirected.shape[1], 3)
    assert torch.allclose((EMPStep.inc(g, h0) * z).sum(), (h0 * EMPStep.inc_t(g, z)).sum(), atol=1e-4)


def test_best_state_snapshot_equals_a_deep_copy():
    # the trainer's best-validation snapshot: the state dict's values, keys and metadata,
    # unchanged by later training
    import copy

    from training.trainer import snapshot_state

    _, _, res = train_tiny("smp", 2, epochs=2, bt="BT*")
    model = res.model
    snap, deep = snapshot_state(model), copy.deepcopy(model.state_dict())
    assert list(snap) == list(deep) and snap._metadata == deep._metadata
    for k, v in deep.items():
        assert snap[k].dtype == v.dtype and torch.equal(snap[k], v) and not snap[k].requires_grad
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert all(torch.equal(snap[k], v) for k, v in deep.items())
    model.load_state_dict(snap)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in deep.items())
