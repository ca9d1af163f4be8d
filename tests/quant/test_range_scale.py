"""The scale node of an unsigned quantizer (``FakeQuantizer.scale_zero``) against the
tensor ops it replaces: the same scale, zero point and scaled range, and the same gradient
of alpha, bit for bit."""

import numpy as np
import pytest
import torch

from quant.quantizers import MinMaxObserverQuantizer, QLRQuantizer


def _tensor_ops(q):
    lo_s, hi_s = q._scaled_range_t()
    s, z = q._scale_zero_t(lo_s, hi_s, q.code_spec)
    return s, z, lo_s, hi_s


def _ready(q, mn, mx, a=None):
    """``q`` with the stored range ``[mn, mx]`` (and alpha ``a``), initialised."""
    q.min_val.fill_(mn)
    q.max_val.fill_(mx)
    q.initialized.fill_(True)
    if a is not None:
        q.alpha.data.fill_(a)
    return q


def _bits(t):
    return torch.as_tensor(t, dtype=torch.float32).reshape(()).view(torch.int32).item()


CASES = [
    # (min, max, alpha): mixed signs, all positive (lo clamped to 0), all negative (hi clamped
    # to 0), a tiny range (scale clamped to eps), a zero end, a degenerate range
    (-0.7, 1.3, 1.0), (-0.7, 1.3, 0.37), (0.2, 5.0, 1.9), (-3.0, -0.5, 0.8),
    (-1e-9, 1e-9, 1.0), (0.0, 2.5, 1.1), (-2.5, 0.0, 0.6), (0.0, 0.0, 1.0),
    (-1.5, 1.5, -0.4), (3.0, 3.0, 1.0),
]


KINDS = {  # name -> constructor: plain QLR of each width and rounding, BT / BT* with and
           # without the exact zero (its range adjustment)
    **{f"qlr{b}-{r}": (lambda b=b, r=r: QLRQuantizer(b, rounding=r))
       for b in (1, 2, 4, 8) for r in ("half_even", "half_up", "floor")},
    "bt-zero": lambda: QLRQuantizer(2, bt_mode="BT", bt_zero=True),
    "btstar-zero": lambda: QLRQuantizer(2, bt_mode="BT*", bt_zero=True),
    "bt": lambda: QLRQuantizer(2, bt_mode="BT"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", CASES + [(-0.2, 7.0, 1.0), (-5.0, 0.3, 1.3), (-1.0, 1.0, 1.0)])
def test_scale_node_equals_the_tensor_ops(kind, case):
    q = _ready(KINDS[kind](), *case)
    gen = torch.Generator().manual_seed(len(kind))
    for g in (torch.randn((), generator=gen), torch.tensor(0.0), torch.tensor(-0.0)):
        got = q.scale_zero()
        q.alpha.grad = None
        if got[0].requires_grad:
            (got[0] * g).backward()
        g_got = q.alpha.grad
        want = _tensor_ops(q)
        q.alpha.grad = None
        if want[0].requires_grad:
            (want[0] * g).backward()
        g_want = q.alpha.grad
        assert _bits(got[0]) == _bits(want[0]) and got[1] == want[1]
        assert _bits(got[2]) == _bits(want[2]) and _bits(got[3]) == _bits(want[3])
        assert (g_got is None) == (g_want is None)
        if g_got is not None:
            assert g_got.shape == q.alpha.shape and _bits(g_got) == _bits(g_want)


def test_without_alpha_or_grad():
    # an observer (no alpha) and a no-grad call: plain tensors of the same values
    q = _ready(MinMaxObserverQuantizer(4), -0.3, 0.9)
    got, want = q.scale_zero(), _tensor_ops(q)
    assert not got[0].requires_grad and _bits(got[0]) == _bits(want[0]) and got[1] == want[1]
    q = _ready(QLRQuantizer(4), -0.3, 0.9)
    with torch.no_grad():
        got = q.scale_zero()
    assert not got[0].requires_grad and _bits(got[0]) == _bits(_tensor_ops(q)[0])


def test_signed_takes_the_tensor_ops():
    # a signed spec: the tensor ops themselves
    from quant.quantizers import SymmetricQuantizer

    for q in (_ready(SymmetricQuantizer(4), -0.3, 0.9),):
        got, want = q.scale_zero(), _tensor_ops(q)
        assert got[0].grad_fn is not None and type(got[0].grad_fn) is type(want[0].grad_fn)
        assert _bits(got[0]) == _bits(want[0]) and got[1] == want[1]
        np.testing.assert_array_equal(got[2].detach().numpy(), want[2].detach().numpy())


@pytest.mark.parametrize("kind", ["qlr4-half_even", "btstar-zero"])
@pytest.mark.parametrize("case", CASES)
def test_scale_zero_primes_qparams(kind, case):
    # the training forward's scale and zero point are what qparams() returns next (read
    # back from the scale node's arithmetic), equal to qparams_from_range of the range
    from quant.reference import qparams_from_range

    q = _ready(KINDS[kind](), *case)
    s, z, lo, hi = q.scale_zero()
    got = q.qparams()
    want = qparams_from_range(np.float32(lo.item()), np.float32(hi.item()), q.code_spec)
    assert _bits(got[0]) == _bits(want[0]) == _bits(s) and got[1] == want[1] == z
    q._qparams_cache = None                  # the miss path: the same values
    again = q.qparams()
    assert _bits(again[0]) == _bits(got[0]) and again[1] == got[1]
