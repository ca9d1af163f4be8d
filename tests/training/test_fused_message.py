"""The fused quantized message path against the per-edge PyG hooks it replaces.

Forward values (outputs and every quantizer buffer) must be equal with ``torch.equal``.
Gradients are float sums taken in another order (a CSR product and dot products instead of
elementwise autograd ops), so they are compared with ``torch.allclose(rtol=1e-5,
atol=1e-5 * scale)`` where ``scale`` is the largest magnitude of the reference gradient.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.nn.aggr import SumAggregation
from torch_geometric.utils import scatter

import training.layers as layers
from quant.csr import csr_from_edge_index
from quant import model_ir
from quant.errors import QuantError
from quant.model_ir import preprocess_features
from quant.quantizers import make_quantizer
from training import fused_message, integer
from training.fused_message import fusable, quantized_message_sum
from training.graph import build_prop_graph
from training.layers import QuantPropagate
from training.lowering import lower
from training.quantizer_factory import QuantizerFactory
from trainer_fixtures import train_tiny

KINDS = [("qlr", 4, {}), ("qlr", 8, {"momentum": 0.3}), ("qlr", 3, {"rounding": "half_up"}),
         ("qlr_paper", 4, {}), ("symmetric", 4, {}), ("observer", 4, {}),
         ("observer", 4, {"signed": True}), ("bt", 2, {}), ("bt*", 2, {}), ("qlr_paper", 2, {})]
KIND_IDS = [f"{k}-{b}{'-' + '-'.join(kw) if kw else ''}" for k, b, kw in KINDS]


def random_edges(seed: int, n: int = 40, e: int = 160) -> torch.Tensor:
    """(2, E) edges with a hub (node 0), an isolated node (n - 1), self loops and duplicates."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n - 1, (2, e), generator=g)
    hub = torch.stack([torch.zeros(n // 2, dtype=torch.long), torch.randperm(n - 1, generator=g)[:n // 2]])
    loops = torch.arange(0, n - 1, 7).repeat(2, 1)
    ei = torch.cat([ei, hub, hub.flip(0), loops, ei[:, :10]], dim=1)  # last block: duplicates
    return ei


def _pair(kind: str, bits: int, kw: dict):
    """A fused propagation step with a message quantizer of ``kind`` and an unfused copy."""
    a = QuantPropagate(QuantizerFactory(bits=4))
    a.q_msg = make_quantizer(kind, bits, **kw)
    b = copy.deepcopy(a)
    b.fused = False
    return a, b


def _close(got: torch.Tensor, ref: torch.Tensor) -> bool:
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    return torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * max(scale, 1e-3))


def _check_step(a, b, g, x, w, seed):
    """One forward + backward of both modules; forward equal, gradients close."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    wa, wb = w.clone().requires_grad_(), w.clone().requires_grad_()
    ya, yb = a(xa, g, wa), b(xb, g, wb)
    assert torch.equal(ya, yb)
    up = torch.randn(ya.shape, generator=torch.Generator().manual_seed(seed))
    (ya * up).sum().backward()
    (yb * up).sum().backward()
    assert _close(xa.grad, xb.grad)
    assert _close(wa.grad, wb.grad)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for k in pa:
        if pb[k].grad is None:
            assert pa[k].grad is None or float(pa[k].grad.abs().max()) == 0.0, k
        else:
            assert _close(pa[k].grad, pb[k].grad), (k, pa[k].grad, pb[k].grad)
    for k, v in b.state_dict().items():
        assert torch.equal(a.state_dict()[k], v), k
    for m in (a, b):
        m.zero_grad(set_to_none=True)


@pytest.mark.parametrize("kind,bits,kw", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_propagate_equal_to_unfused(kind, bits, kw, seed):
    g = build_prop_graph(random_edges(seed), 40)
    a, b = _pair(kind, bits, kw)
    assert a.fused and fusable(a.q_msg)
    torch.manual_seed(seed)
    x = torch.randn(40, 3)
    for it in range(4):   # first call (range / alpha init), then training calls
        _check_step(a, b, g, x * (1.0 + 0.4 * it) - 0.1 * it, g.edge_weight, seed + it)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(x, g, g.edge_weight), b(x, g, g.edge_weight))


@pytest.mark.parametrize("kind,bits,kw", KINDS[:1] + KINDS[3:4] + KINDS[7:8], ids=["qlr", "paper", "bt"])
def test_heavy_clipping_and_no_transpose(kind, bits, kw, monkeypatch):
    """Most messages clipped (the edge-by-edge input gradient) and a graph without the
    transposed structure (always edge by edge)."""
    calls = []
    real = fused_message.transposed_csr
    monkeypatch.setattr(fused_message, "transposed_csr", lambda *a: calls.append(1) or real(*a))
    g = build_prop_graph(random_edges(3), 40)
    a, b = _pair(kind, bits, kw)
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(3))
    _check_step(a, b, g, x, g.edge_weight, 0)
    assert calls or kind == "bt"   # BT: its initial alpha already clips over a quarter
    for m in (a, b):
        m.q_msg.alpha.data.fill_(0.02)
    calls.clear()
    _check_step(a, b, g, x, g.edge_weight, 1)
    assert not calls or kind == "qlr_paper"
    g.t_perm = g.t_indptr = g.t_indices = None
    calls.clear()
    _check_step(a, b, g, x, g.edge_weight, 2)
    assert not calls


def test_wide_features_and_disabled_quantizer():
    g = build_prop_graph(random_edges(5, n=30, e=90), 30)
    a, b = _pair("qlr", 4, {})
    x = torch.randn(30, 17, generator=torch.Generator().manual_seed(5))
    _check_step(a, b, g, x, g.edge_weight, 0)
    a = QuantPropagate(QuantizerFactory(bits=None))   # FP32: message stage is a passthrough
    b = copy.deepcopy(a)
    b.fused = False
    _check_step(a, b, g, x, g.edge_weight, 1)


def test_function_on_raw_edges_with_empty_rows():
    """Rows without any edge (no self loop either) sum to zero, as PyG's scatter gives."""
    n = 12
    ei = random_edges(7, n=n, e=30)
    ei = ei[:, ei[1] % 3 != 0]   # every third node has no in-edge
    order = torch.argsort(ei[1] * n + ei[0])
    src, dst = ei[0, order], ei[1, order]
    ptr = torch.zeros(n + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)
    w = torch.rand(src.numel(), generator=torch.Generator().manual_seed(7))
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(8))
    q = make_quantizer("qlr", 4)
    q_ref = copy.deepcopy(q)
    aggr = SumAggregation()
    out = quantized_message_sum(q, x, w, src, dst, ptr, n,
                                lambda v, i, p, k: aggr(v, None, ptr=p, dim_size=k, dim=-2))
    ref = scatter(q_ref(w.unsqueeze(-1) * x[src]), dst, dim=0, dim_size=n, reduce="sum")
    assert torch.equal(out, ref)
    assert torch.equal(out[::3], torch.zeros_like(out[::3]))


def test_non_finite_message_refused_like_unfused():
    g = build_prop_graph(random_edges(0), 40)
    a, b = _pair("qlr", 4, {})
    x = torch.randn(40, 3)
    x[5, 1] = float("nan")
    errs = []
    for m in (a, b):
        with pytest.raises(QuantError) as e:
            m(x, g, g.edge_weight)
        errs.append(str(e.value))
    assert errs[0] == errs[1]
    assert not bool(a.q_msg.initialized) and not bool(b.q_msg.initialized)


def test_unknown_quantizer_kind_takes_unfused_path():
    class Custom(type(make_quantizer("qlr", 4))):
        pass

    g = build_prop_graph(random_edges(0), 40)
    a = QuantPropagate(QuantizerFactory(bits=4))
    a.q_msg = Custom(4)
    assert not fusable(a.q_msg)
    b = copy.deepcopy(a)
    b.fused = False
    _check_step(a, b, g, torch.randn(40, 3), g.edge_weight, 0)


def _set_fused(model, fused: bool) -> None:
    for m in model.modules():
        if isinstance(m, QuantPropagate):
            m.fused = fused


@pytest.mark.parametrize("model", ["smp", "appnp", "gcn"])
def test_model_forward_and_export_unchanged(model, tmp_path):
    """A trained model: eval logits and the exported integer model file are the same
    through either path."""
    d, g, res = train_tiny(model, 4, epochs=3)
    x = torch.from_numpy(preprocess_features(d.x.numpy(), d.normalize))
    m = res.model
    outs, files = [], []
    for fused in (True, False):
        _set_fused(m, fused)
        m.eval()
        with torch.no_grad():
            outs.append(m(x, g))
        im = lower(m, g, num_features=d.num_features, normalize=d.normalize)
        files.append(model_ir.save(im, tmp_path / f"fused-{fused}.qim").read_bytes())
    assert torch.equal(outs[0], outs[1])
    assert files[0] == files[1]


def test_training_matches_unfused(monkeypatch):
    """Three epochs of SMP INT4 through each path: same predictions of the integer model,
    parameters equal to float rounding."""
    d, g, fused_res = train_tiny("smp", 4, epochs=3)
    monkeypatch.setattr(layers, "fusable", lambda q: False)
    _, _, ref_res = train_tiny("smp", 4, epochs=3)
    for (k, p), (_, r) in zip(fused_res.model.state_dict().items(),
                              ref_res.model.state_dict().items()):
        if p.dtype.is_floating_point:
            assert torch.allclose(p, r, rtol=1e-4, atol=1e-5), k
        else:
            assert torch.equal(p, r), k
    ims = [lower(r.model, g, num_features=d.num_features, normalize=d.normalize)
           for r in (fused_res, ref_res)]
    assert torch.equal(integer.predict(ims[0], d.x), integer.predict(ims[1], d.x))


def test_workspaces_and_caches_between_graphs():
    """Two graphs of different sizes with forward and backward interleaved, an edge-weight
    tensor changed in place between calls, and cleared caches: every result as unfused."""
    g1 = build_prop_graph(random_edges(1), 40)
    g2 = build_prop_graph(random_edges(2, n=25, e=60), 25)
    a1, b1 = _pair("qlr", 4, {})
    a2, b2 = _pair("qlr", 4, {})
    x1 = torch.randn(40, 3).requires_grad_()
    x2 = torch.randn(25, 2).requires_grad_()
    w1 = g1.edge_weight.clone()
    y1, y2 = a1(x1, g1, w1), a2(x2, g2, g2.edge_weight)
    y1.sum().backward()
    y2.sum().backward()
    gx1, gx2 = x1.grad.clone(), x2.grad.clone()
    x1.grad = x2.grad = None
    z1, z2 = b1(x1, g1, w1), b2(x2, g2, g2.edge_weight)
    (z1.sum() + z2.sum()).backward()
    assert torch.equal(y1, z1) and torch.equal(y2, z2)
    assert _close(gx1, x1.grad) and _close(gx2, x2.grad)
    with torch.no_grad():
        w1.mul_(0.5)        # same tensor, new values: cached products must not be reused
        assert torch.equal(a1(x1, g1, w1), b1(x1, g1, w1))
        fused_message.clear_caches()
        assert torch.equal(a1(x1, g1, w1), b1(x1, g1, w1))


def test_no_clipping_skips_the_scan(monkeypatch):
    """With a range wider than every message (alpha > 1) the clip positions are known to be
    empty from the minimum and maximum alone; gradients still match."""
    scans = []
    real = fused_message._nonzero_flat
    monkeypatch.setattr(fused_message, "_nonzero_flat", lambda t: scans.append(1) or real(t))
    g = build_prop_graph(random_edges(4), 40)
    a, b = _pair("qlr", 4, {})
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(4))
    _check_step(a, b, g, x, g.edge_weight, 0)
    for m in (a, b):
        m.q_msg.alpha.data.fill_(1.5)
    scans.clear()
    _check_step(a, b, g, x, g.edge_weight, 1)
    assert not scans


@pytest.mark.parametrize("seed", range(6))
def test_message_ends_equal_scan(seed):
    """Per-node extreme weights give the exact minimum and maximum message (any weight
    signs, zero weights and features, nodes without out-edges)."""
    gen = torch.Generator().manual_seed(seed)
    if seed % 2:   # raw edges: node 39 and others have no out-edge, signed weights
        ei = random_edges(seed)
        t_indptr, t_indices, t_perm = (torch.from_numpy(a) for a in
                                       csr_from_edge_index(ei.numpy()[::-1].copy(), 40))
        src = ei[0]
        w = torch.randn(src.shape, generator=gen)
        w[::5] = 0.0
    else:          # a propagation graph (every node has its self loop)
        g = build_prop_graph(random_edges(seed), 40)
        src, w = g.edge_index[0], g.edge_weight.clone()
        t_indptr, t_indices, t_perm = g.t_indptr, g.t_indices, g.t_perm
    x = torch.randn(40, 3, generator=gen) * 10 ** float(seed - 3)
    x[3] = 0.0
    x[4, 1] = -0.0
    x[39] = 1e30 if seed % 2 else x[39]   # never in a message when node 39 has no out-edge
    m = w.unsqueeze(-1) * x[src]
    lo, hi = fused_message._message_ends(x, w, (t_indptr, t_indices, t_perm))
    assert torch.equal(lo, m.min()) and torch.equal(hi, m.max())


@pytest.mark.parametrize("n", [0, 1, 7, 64, 1001])
def test_nonzero_flat_equals_nonzero(n):
    gen = torch.Generator().manual_seed(n)
    t = torch.randn(n, generator=gen)
    t[torch.rand(n, generator=gen) < 0.8] = 0.0
    t[::9] = -0.0
    for v in (t, t.view(-1, 1), t.to(torch.bool), t[1:] if n else t):
        assert torch.equal(fused_message._nonzero_flat(v),
                           torch.nonzero(v.reshape(-1)).view(-1))


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 8])
def test_gather_rows_bit_exact(c):
    """Rows gathered as one wide element (C = 1, 2, 4) or element by element: same bits,
    including -0.0, subnormals and odd storage offsets."""
    gen = torch.Generator().manual_seed(c)
    base = torch.randn(31 * c + 1, generator=gen)
    base[::7] = -0.0
    base[1::11] = 1e-41
    for x in (base[:30 * c].view(30, c), base[1:30 * c + 1].view(30, c)):
        src = torch.randint(0, 30, (200,), generator=gen)
        out = torch.empty(200, c)
        fused_message._gather_rows(x, src, out)
        assert torch.equal(out.view(torch.int32), x[src].view(torch.int32))


@pytest.mark.parametrize("seed", range(6))
def test_one_pass_kernel_equals_the_torch_forward(seed):
    # the numba forward against the torch ops it replaces: values, clipped positions and
    # the scale-gradient row sums equal bit for bit (hubs, self loops, duplicates, clipping)
    from quant.spec import QuantSpec

    g = build_prop_graph(random_edges(seed, n=50, e=300), 50)
    gen = torch.Generator().manual_seed(seed)
    c = [1, 2, 3, 4, 7, 16][seed]
    x = torch.randn(g.num_nodes, c, generator=gen) * (seed + 1)
    spec = QuantSpec([2, 4, 8][seed % 3])
    s = torch.tensor(0.01 * (seed + 1), dtype=torch.float32)
    z = spec.qmax // 3
    src, dst = g.edge_index
    agg = lambda vals, index, ptr, n: SumAggregation()(vals, None, ptr=ptr, dim_size=n, dim=0)  # noqa: E731
    plan = fused_message._Plan(src=src, dst=dst, ptr=g.indptr_t, num_nodes=g.num_nodes,
                               aggregate=agg, spec=spec, z=z)
    msg = fused_message._gather_message(x, g.edge_weight, src, torch.empty(src.numel(), c))
    want = [t.clone() for t in fused_message._forward_clip(msg, s, plan, True, True)]
    plan.kernel = (g.indptr, g.indices)
    got = fused_message._forward_kernel(x, g.edge_weight, s, plan, True, True)
    assert want[1].numel() > 0                            # some messages are clipped
    for a, b in zip(got, want):
        assert torch.equal(a, b)


@pytest.mark.parametrize("seed", range(12))
def test_clipped_correction_kernel_equals_the_torch_ops(seed):
    # the backward's input-gradient correction for clipped messages: the numba loop and the
    # flat torch index ops (the path off the CPU) give the same float32 bits, with many
    # clipped messages landing on the same source entry (the order of the adds matters)
    import numpy as np

    from training.exact_kernels import subtract_clipped

    rng = np.random.default_rng(seed)
    n, c, e = int(rng.integers(1, 40)), int(rng.integers(1, 6)), int(rng.integers(1, 2000))
    src = torch.from_numpy(rng.integers(0, max(1, n // 5), e))
    dst = torch.from_numpy(rng.integers(0, n, e))
    g = torch.from_numpy((rng.standard_normal((n, c)) * 10.0 ** rng.uniform(-3, 3, (n, c)))
                         .astype(np.float32))
    w = torch.from_numpy(rng.standard_normal(e).astype(np.float32))
    cut = torch.from_numpy(np.sort(rng.choice(e * c, int(rng.integers(0, e * c + 1)),
                                              replace=False)))
    gx = torch.from_numpy(rng.standard_normal((n, c)).astype(np.float32))
    ed = torch.div(cut, c, rounding_mode="floor")
    ch = cut - ed * c
    corr = g.view(-1).index_select(0, dst.index_select(0, ed).mul_(c).add_(ch))
    corr.mul_(w.index_select(0, ed)).neg_()
    want = gx.clone()
    want.view(-1).index_add_(0, src.index_select(0, ed).mul_(c).add_(ch), corr)
    got = gx.clone()
    subtract_clipped(got.view(-1).numpy(), g.view(-1).numpy(), w.numpy(), src.numpy(),
                     dst.numpy(), cut.numpy(), c)
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))
    assert fused_message._numpy_ready(got, g, w, src, dst, cut)
    assert not fused_message._numpy_ready(got.double(), g, w, src, dst, cut)


@pytest.mark.parametrize("seed", range(12))
def test_edge_by_edge_gradient_kernel_equals_the_torch_ops(seed):
    # the backward's input gradient summed edge by edge (many clipped messages): the numba
    # loop and the gather / index_fill / index_add ops give the same float32 bits, with many
    # messages landing on the same source entry, zero and negative-zero products, and
    # clipped positions anywhere (none, all, the first and the last)
    import numpy as np

    from training.exact_kernels import scatter_unclipped

    rng = np.random.default_rng(200 + seed)
    n, c, e = int(rng.integers(1, 40)), int(rng.integers(1, 6)), int(rng.integers(1, 2000))
    src = torch.from_numpy(rng.integers(0, max(1, n // 5), e))
    dst = torch.from_numpy(rng.integers(0, n, e))
    g = torch.from_numpy((rng.standard_normal((n, c)) * 10.0 ** rng.uniform(-3, 3, (n, c)))
                         .astype(np.float32))
    g[0] = -0.0
    w = torch.from_numpy(rng.standard_normal(e).astype(np.float32))
    w[: e // 7] = 0.0
    count = [0, e * c, int(rng.integers(0, e * c + 1))][seed % 3]
    cut = np.sort(rng.choice(e * c, count, replace=False))
    if seed % 4 == 1 and e * c > 1:
        cut = np.union1d(cut, [0, e * c - 1])
    cut = torch.from_numpy(cut.astype(np.int64))
    gm = g.index_select(0, dst)
    gm.view(-1).index_fill_(0, cut, 0.0)
    want = torch.zeros(n, c).index_add_(0, src, gm.mul_(w.unsqueeze(-1)))
    got = scatter_unclipped(g.view(-1).numpy(), w.numpy(), src.numpy(), dst.numpy(), cut.numpy(),
                            n, c)
    assert torch.equal(torch.from_numpy(got).view(n, c).view(torch.int32), want.view(torch.int32))
