"""The quantizers' one-node fake quantization equals autograd through the composite ops.

``FakeQuantizer._fake`` runs ``(T(R(clamp(x / s + z))) - z) * s`` as one autograd node that
keeps ``x`` and the codes for its backward.  Its output, input gradient and alpha gradient
must equal, bit for bit, those of autograd over the composite (straight-through ``R`` and
``T``) on every quantizer kind; training results depend on it.  The node runs on the
one-pass numba kernels (:mod:`quant.fake_quant_kernels`) for contiguous CPU float32 tensors
and on tensor ops otherwise: both are checked.
"""

from __future__ import annotations

import copy

import pytest
import torch

from quant import quantizers, torch_ops
from quant.quantizers import make_quantizer


@pytest.fixture(params=[True, False], ids=["kernels", "tensor-ops"])
def kernels(request, monkeypatch):
    monkeypatch.setattr(quantizers, "USE_KERNELS", request.param)
    return request.param


class _RoundST(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, rounding):
        return torch_ops.round_float(v, rounding)

    @staticmethod
    def backward(ctx, g):
        return g, None


class _TruncST(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, fn):
        return fn(q)

    @staticmethod
    def backward(ctx, g):
        return g, None


def _composite(self, x, s, z, lo_s, hi_s):
    spec = self.code_spec
    v = x / s + torch.tensor(float(z), dtype=torch.float32)
    q = _RoundST.apply(torch.clamp(v, spec.qmin, spec.qmax), spec.rounding)
    with torch.no_grad():
        fn = self._truncate
    q = _TruncST.apply(q, fn)
    return (q - torch.tensor(float(z), dtype=torch.float32)) * s


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def _run(q, x0: torch.Tensor, g: torch.Tensor, composite: bool):
    q = copy.deepcopy(q)
    if composite:
        q._fake = _composite.__get__(q)
    x = x0.clone().requires_grad_(True)
    y = q(x)
    y.backward(g)
    alpha = getattr(q, "alpha", None)
    return y, x.grad, None if alpha is None else alpha.grad


CASES = [("qlr", 2, {}), ("qlr", 3, {}), ("qlr", 4, {}), ("qlr", 8, {}),
         ("qlr", 4, {"narrow_range": True, "rounding": "half_up"}), ("qlr", 3, {"rounding": "floor"}),
         ("bt", 2, {}), ("bt", 2, {"bt_zero": True}), ("bt*", 2, {}), ("bt*", 2, {"bt_zero": True}),
         ("symmetric", 2, {}), ("symmetric", 4, {}), ("symmetric", 8, {}),
         ("observer", 4, {}), ("observer", 8, {"signed": True})]


@pytest.mark.parametrize("kind,bits,kw", CASES)
@pytest.mark.parametrize("shape", [(300, 4), (40, 64), (7,)])
def test_one_node_equals_composite_bit_for_bit(kind, bits, kw, shape, kernels):
    gen = torch.Generator().manual_seed(hash((kind, bits, len(kw), shape)) % 2**31)
    for case in range(4):
        x0 = torch.randn(shape, generator=gen) * (0.05 + 4 * float(torch.rand((), generator=gen)))
        x0 = x0 + float(torch.randn((), generator=gen))
        if case == 1:
            x0 = torch.relu(x0)  # exact zeros, values on the zero point
        q = make_quantizer(kind, bits, **kw)
        q.train()
        q(x0)  # the first call: range and alpha search
        for trial in range(3):
            # wider than the recorded range: clipped elements on both sides
            xs = x0 * (1 + 0.5 * torch.randn(shape, generator=gen))
            g = torch.randn(shape, generator=gen)
            if trial == 1:
                g[::2] = -0.0
            q.train(trial != 2)
            new = _run(q, xs, g, composite=False)
            ref = _run(q, xs, g, composite=True)
            for a, b, what in zip(new, ref, ("output", "input gradient", "alpha gradient")):
                assert (a is None) == (b is None), what
                if a is not None:
                    assert torch.equal(_bits(a), _bits(b)), (what, case, trial)


def test_codes_on_the_clip_bounds(kernels):
    """Inputs exactly on ``qmin`` and ``qmax`` (``x / s + z`` integral at the ends) keep their
    gradient, as clamp's does."""
    q = make_quantizer("qlr", 4)
    q.train()
    x0 = torch.linspace(-1.0, 3.0, 61)
    q(x0)
    q.eval()
    s, z, spec = q.qparams()
    x = torch.tensor([(spec.qmin - z) * float(s), (spec.qmax - z) * float(s), 10.0, -10.0])
    g = torch.tensor([1.0, -2.0, 3.0, 4.0])
    new, ref = _run(q, x, g, False), _run(q, x, g, True)
    for a, b in zip(new, ref):
        assert torch.equal(_bits(a), _bits(b))
    assert new[1][2] == 0 and new[1][3] == 0


@pytest.mark.parametrize("kind,bits,kw", [("qlr", 4, {}), ("bt*", 2, {"bt_zero": True}),
                                          ("symmetric", 3, {})])
def test_alpha_gradient_of_an_input_without_gradient(kind, bits, kw, kernels):
    """The input features (no gradient of their own): only alpha's gradient flows."""
    gen = torch.Generator().manual_seed(7)
    x0 = torch.randn(200, 8, generator=gen) * 2
    q = make_quantizer(kind, bits, **kw)
    q.train()
    q(x0)
    g = torch.randn(200, 8, generator=gen)
    grads = []
    for composite in (False, True):
        qm = copy.deepcopy(q)
        if composite:
            qm._fake = _composite.__get__(qm)
        qm(x0 * 1.3).backward(g)
        grads.append(qm.alpha.grad)
    assert torch.equal(_bits(grads[0]), _bits(grads[1]))


@pytest.mark.parametrize("rounding", ["half_even", "half_up", "floor"])
def test_ties_and_signed_zeros(rounding, kernels):
    """Inputs whose ``x / s + z`` falls exactly on a half code (each rounding's ties), on
    negative zeros and on the clip bounds give the composite's bits."""
    q = make_quantizer("qlr", 4, rounding=rounding)
    q.train()
    q(torch.linspace(-2.0, 6.0, 97))
    q.eval()
    s, z, spec = q.qparams()
    halves = [(k + 0.5 - z) * float(s) for k in range(spec.qmin - 1, spec.qmax + 1)]
    x = torch.tensor(halves + [-0.0, 0.0, (spec.qmin - z) * float(s), (spec.qmax - z) * float(s)]
                     + [0.0] * (len(halves) % 2),
                     dtype=torch.float32).reshape(-1, 2)
    g = torch.linspace(-3.0, 3.0, x.numel()).reshape(x.shape)
    g[0, 0] = -0.0
    new, ref = _run(q, x, g, False), _run(q, x, g, True)
    for a, b in zip(new, ref):
        assert torch.equal(_bits(a), _bits(b))


def test_kernels_take_contiguous_cpu_float32():
    x = torch.randn(5, 3)
    s = torch.tensor(0.1, requires_grad=True)
    assert quantizers._fused_ok(x, s)
    assert not quantizers._fused_ok(x.t(), s)
    assert not quantizers._fused_ok(x.double(), s)
    assert not quantizers._fused_ok(x[:0], s)
