"""BT / BT* with zero on the four-level grid (``bt_zero``): the corrected mode's BT quantizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import quant.reference as R
from quant.errors import QuantError
from quant.quantizers import QLRQuantizer
from quant.truncation import BT_SPEC, quantize_bt
from training.config import ModelConfig
from training.quantizer_factory import QuantizerFactory
from trainer_fixtures import train_tiny


def _tensors():
    g = torch.Generator().manual_seed(7)
    yield "mixed", torch.randn(4000, generator=g) * 0.3 + 0.1
    yield "skewed", torch.exp(torch.randn(4000, generator=g)) - 1.3
    yield "mostly-negative", -torch.rand(4000, generator=g) + 0.05
    yield "mostly-positive", torch.rand(4000, generator=g) - 0.02
    yield "non-negative", torch.relu(torch.randn(4000, generator=g))
    yield "non-positive", -torch.relu(torch.randn(4000, generator=g))
    yield "sparse", torch.where(torch.rand(4000, generator=g) < 0.9, torch.zeros(4000),
                                torch.randn(4000, generator=g))
    yield "constant-zero", torch.zeros(100)


@pytest.mark.parametrize("mode", ["BT", "BT*"])
@pytest.mark.parametrize("name,x", list(_tensors()))
def test_zero_is_a_level_and_forward_equals_reference(mode, name, x):
    q = QLRQuantizer(2, bt_mode=mode, bt_zero=True)
    q(x)
    q.eval()
    s, z, spec = q.qparams()
    assert spec == BT_SPEC and z % 85 == 0
    # qparams are the contract's qparams of the (shifted) range
    lo, hi = q.scaled_range()
    assert (s, z) == tuple(R.qparams_from_range(lo, hi, BT_SPEC)[:2])
    with torch.no_grad():
        y = q(x)
        zero = q(torch.zeros(3))
    codes = quantize_bt(x.numpy(), s, z, q._skew())
    assert np.array_equal(q.to_int(x).numpy(), codes)
    assert np.array_equal(y.numpy(), R.dequantize(codes, s, z))
    assert np.array_equal(zero.numpy(), np.zeros(3, dtype=np.float32))
    assert set(np.unique(codes).tolist()) <= {0, 85, 170, 255}


@pytest.mark.parametrize("name,x", list(_tensors())[:-1])
def test_shift_keeps_the_width_and_moves_at_most_half_a_level(name, x):
    plain = QLRQuantizer(2, bt_mode="BT")
    fixed = QLRQuantizer(2, bt_mode="BT", bt_zero=True)
    plain(x)
    fixed(x)
    fixed.alpha.data.copy_(plain.alpha.data)  # the grid searches may pick different alphas
    lo0, hi0 = (float(v) for v in plain.scaled_range())
    lo0, hi0 = min(lo0, 0.0), max(hi0, 0.0)
    lo1, hi1 = (float(v) for v in fixed.scaled_range())
    s8 = (hi0 - lo0) / 255
    assert (hi1 - lo1) == pytest.approx(hi0 - lo0, rel=1e-5)
    assert abs(lo1 - lo0) <= 42.5 * s8 * (1 + 1e-5)
    if lo0 == 0.0 or hi0 == 0.0:  # a one-signed range already has its zero on the grid
        assert plain.qparams()[1] == fixed.qparams()[1] and plain.qparams()[1] in (0, 255)


def test_without_bt_zero_the_published_grid_is_kept():
    x = torch.randn(4000, generator=torch.Generator().manual_seed(3)) * 0.3 + 0.1
    q = QLRQuantizer(2, bt_mode="BT")
    q(x)
    q.eval()
    lo, hi = q.scaled_range()
    s, z, _ = q.qparams()
    assert (s, z) == tuple(R.qparams_from_range(lo, hi, BT_SPEC)[:2])
    assert z % 85 != 0  # this tensor's zero point falls between two BT levels
    with torch.no_grad():
        assert float(q(torch.zeros(1))) != 0.0


def test_gradients_flow_to_alpha_and_input():
    x = (torch.randn(2000, generator=torch.Generator().manual_seed(5)) * 0.3 + 0.1)
    q = QLRQuantizer(2, bt_mode="BT", bt_zero=True)
    q(x)
    q.alpha.data.fill_(0.5)
    xr = x.clone().requires_grad_(True)
    y = q(xr)
    (y * torch.linspace(-1, 1, 2000)).sum().backward()
    assert q.alpha.grad is not None and torch.isfinite(q.alpha.grad).all()
    assert float(q.alpha.grad) != 0.0
    lo, hi = (float(v) for v in q.scaled_range())
    inside = (x >= lo) & (x <= hi)
    assert torch.equal(xr.grad[~inside], torch.zeros(int((~inside).sum())))
    assert bool((xr.grad[inside] != 0).any())


def test_bt_zero_validated():
    with pytest.raises(QuantError, match="bt_zero"):
        QLRQuantizer(2, bt_mode="BT", bt_zero="yes")
    with pytest.raises(QuantError, match="bt_zero"):
        ModelConfig(bits=2, bt="BT", bt_zero=1)


def test_config_resolves_bt_zero_by_mode():
    assert ModelConfig(bits=2, bt="BT").bt_zero_exact is True
    assert ModelConfig(bits=2, bt="BT", paper_code=True).bt_zero_exact is False
    assert ModelConfig(bits=2, bt="BT", bt_zero=False).bt_zero_exact is False
    qf = QuantizerFactory(bits=2, bt="BT*", bt_zero=True)
    assert qf.make("act").bt_zero and qf.make("weight").bt_zero
    inner = qf.make("inner")
    assert inner.bt_mode is None and not inner.bt_zero
    assert not QuantizerFactory(bits=2, bt="BT").make("act").bt_zero


@pytest.mark.parametrize("bt", ["BT", "BT*"])
def test_trained_bt_model_has_zero_on_every_bt_grid(bt):
    d, g, res = train_tiny("smp", 2, epochs=2, bt=bt)
    bts = [m for m in res.model.modules() if isinstance(m, QLRQuantizer) and m.bt_mode]
    assert bts and all(m.bt_zero for m in bts)
    assert all(m.qparams()[1] % 85 == 0 for m in bts)
    d, g, res = train_tiny("smp", 2, epochs=2, bt=bt, paper_code=True)
    bts = [m for m in res.model.modules() if isinstance(m, QLRQuantizer) and m.bt_mode]
    assert bts and not any(m.bt_zero for m in bts)
