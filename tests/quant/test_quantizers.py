"""Fake-quant modules: ``to_int`` equals the numpy reference exactly (acceptance item 4),
``forward`` dequantizes exactly those codes, and state / range tracking behave as documented.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quant import reference as R
from quant.errors import QuantError
from quant.quantizers import (MinMaxObserverQuantizer, QLRQuantizer, SymmetricQuantizer,
                              alpha_grid, make_quantizer)
from quant.truncation import BT_LEVELS, quantize_bt

VARIANTS = ["qlr", "qlr_paper", "symmetric", "observer", "observer_signed", "bt", "bt*"]


def _make(kind: str, bits: int):
    if kind == "observer_signed":
        return MinMaxObserverQuantizer(bits, signed=True)
    return make_quantizer(kind, bits)


def _cases():
    for kind in VARIANTS:
        if kind in ("bt", "bt*"):
            yield kind, 2
            continue
        for bits in range(1, 9):
            if kind in ("symmetric", "observer_signed") and bits == 1:
                continue
            yield kind, bits


CASES = list(_cases())


def _reference_codes(q, x: np.ndarray) -> np.ndarray:
    s, z, spec = q.qparams()
    if getattr(q, "bt_mode", None):
        return quantize_bt(x, s, z, q._skew())
    return R.quantize(x, s, z, spec)


def _grid(q) -> np.ndarray:
    """Every code's value, every midpoint, their float32 neighbours, and points beyond."""
    s, z, spec = q.qparams()
    k = np.arange(spec.qmin - 3, spec.qmax + 4, dtype=np.float64)
    x = ((np.concatenate([k, k + 0.5]) - z) * float(s)).astype(np.float32)
    return np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))])


def _check_exact(q, x: np.ndarray) -> None:
    xt = torch.from_numpy(x)
    got = q.to_int(xt)
    assert got.dtype == torch.int32
    want = _reference_codes(q, x)
    assert np.array_equal(got.numpy(), want)
    s, z, _ = q.qparams()
    q.eval()
    with torch.no_grad():
        y = q(xt)
    assert y.dtype == torch.float32
    assert np.array_equal(y.numpy(), R.dequantize(want, s, z))


@pytest.mark.parametrize("kind,bits", CASES, ids=[f"{k}-{b}" for k, b in CASES])
def test_to_int_exact_on_exhaustive_grid(kind, bits):
    torch.manual_seed(bits)
    q = _make(kind, bits)
    q.train()
    q(torch.randn(500) * 3 + 0.7)            # initialise: alpha grid search and range
    _check_exact(q, _grid(q))
    if kind in ("bt", "bt*"):
        assert set(np.unique(q.to_int(torch.from_numpy(_grid(q))).numpy())) <= set(BT_LEVELS)


@pytest.mark.parametrize("kind,bits", CASES, ids=[f"{k}-{b}" for k, b in CASES])
def test_forward_in_training_equals_dequantized_codes(kind, bits):
    torch.manual_seed(100 + bits)
    q = _make(kind, bits)
    x = torch.relu(torch.randn(300)) * 2.0 - 0.25
    y = q(x)
    s, z, _ = q.qparams()
    assert np.array_equal(y.detach().numpy(), R.dequantize(q.to_int(x).numpy(), s, z))


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(CASES),
       hnp.arrays(np.float32, st.integers(2, 200),
                  elements=st.floats(-1e3, 1e3, width=32, allow_nan=False)),
       hnp.arrays(np.float32, st.integers(1, 50),
                  elements=st.floats(-2e3, 2e3, width=32, allow_nan=False)),
       st.one_of(st.none(), st.floats(0.05, 1.5)))
def test_to_int_exact_hypothesis(case, x_init, x_eval, alpha):
    kind, bits = case
    q = _make(kind, bits)
    q(torch.from_numpy(x_init))
    if alpha is not None and hasattr(q, "alpha"):
        q.alpha.data.fill_(alpha)
    _check_exact(q, x_eval)
    _check_exact(q, x_init)


@pytest.mark.parametrize("kind", ["qlr", "symmetric", "observer"])
def test_qparams_are_the_reference_qparams_of_the_scaled_range(kind):
    q = _make(kind, 4)
    q(torch.randn(100) - 0.3)
    lo, hi = q.scaled_range()
    a = np.float32(q.alpha.detach()) if hasattr(q, "alpha") else np.float32(1)
    assert lo == a * np.float32(q.min_val) and hi == a * np.float32(q.max_val)
    s, z, spec = q.qparams()
    assert (s, z) == R.qparams_from_range(lo, hi, spec)
    assert isinstance(s, np.float32) and isinstance(z, int)


# --------------------------------------------------------------------------- passthrough, state

@pytest.mark.parametrize("bits", [None, 32])
@pytest.mark.parametrize("kind", ["qlr", "symmetric", "observer", "qlr_paper"])
def test_disabled_is_passthrough(kind, bits):
    q = make_quantizer(kind, bits)
    assert not q.enabled
    x = torch.randn(10, requires_grad=True)
    assert q(x) is x
    with pytest.raises(QuantError, match="enabled must be True"):
        q.qparams()


def test_enabled_flag_can_be_switched_off():
    q = QLRQuantizer(4)
    x = torch.randn(20)
    q(x)
    q.enabled = False
    assert q(x) is x
    q.enabled = True
    assert not torch.equal(q(x), x)


def test_qparams_before_first_call_raises():
    with pytest.raises(QuantError, match="initialized must be True.*not False"):
        QLRQuantizer(4).qparams()
    with pytest.raises(QuantError, match="initialized"):
        SymmetricQuantizer(4).to_int(torch.zeros(3))


@pytest.mark.parametrize("kind", ["qlr", "bt*", "symmetric", "observer"])
def test_state_dict_round_trip(kind):
    torch.manual_seed(3)
    bits = 2 if kind == "bt*" else 4
    a = make_quantizer(kind, bits)
    x = torch.randn(200) ** 3
    a(x)
    if hasattr(a, "alpha"):
        a.alpha.data.fill_(0.77)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make_quantizer(kind, bits)
    b.load_state_dict(torch.load(buf, weights_only=True))
    b.eval()
    assert a.qparams() == b.qparams()
    assert torch.equal(a.to_int(x), b.to_int(x))
    assert torch.equal(b(x), a.eval()(x))
    keys = set(a.state_dict())
    assert {"min_val", "max_val", "initialized", "calls"} <= keys
    if kind == "bt*":
        assert "skew" in keys and int(b.skew) == int(a.skew)


def test_double_precision_module_keeps_float32_semantics():
    q = QLRQuantizer(4)
    x = torch.randn(100)
    q(x)
    want = q.to_int(x)
    qp = q.qparams()
    q.double()
    assert q.qparams() == qp
    assert torch.equal(q.to_int(x), want)


# --------------------------------------------------------------------------- range tracking

def test_training_uses_current_range_eval_uses_stored():
    q = QLRQuantizer(8)
    x1 = torch.linspace(-1, 3, 101)
    q(x1)
    assert float(q.min_val) == -1.0 and float(q.max_val) == 3.0
    x2 = torch.linspace(-5, 9, 50)
    q(x2)
    assert float(q.min_val) == -5.0 and float(q.max_val) == 9.0
    qp = q.qparams()
    q.eval()
    q(torch.linspace(-100, 100, 7))
    assert q.qparams() == qp and float(q.max_val) == 9.0


def test_momentum_is_an_ema_of_min_and_max():
    q = QLRQuantizer(8, momentum=0.25)
    q(torch.tensor([-1.0, 1.0]))
    q(torch.tensor([-3.0, 5.0]))
    assert float(q.min_val) == pytest.approx(-1.5) and float(q.max_val) == pytest.approx(2.0)
    o = MinMaxObserverQuantizer(4)
    o(torch.tensor([0.0, 1.0]))
    o(torch.tensor([0.0, 2.0]))
    assert float(o.max_val) == pytest.approx(1.1)


def test_eval_before_training_takes_first_input_range():
    q = QLRQuantizer(4).eval()
    q(torch.tensor([-2.0, 6.0]))
    assert (float(q.min_val), float(q.max_val)) == (-2.0, 6.0)


# --------------------------------------------------------------------------- alpha init

def _numpy_error(x: np.ndarray, a: float, bits: int) -> float:
    spec = QLRQuantizer(bits).spec
    a32 = np.float32(a)
    s, z = R.qparams_from_range(a32 * x.min(), a32 * x.max(), spec)
    return float(np.mean(np.abs(R.dequantize(R.quantize(x, s, z, spec), s, z).astype(np.float64) - x)))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_grid_search_picks_the_smallest_error(bits):
    rng = np.random.default_rng(bits)
    x = (rng.standard_normal(3000) * np.where(rng.random(3000) < 0.02, 8, 1)).astype(np.float32)
    q = QLRQuantizer(bits)
    q(torch.from_numpy(x))
    errs = {float(a): _numpy_error(x, float(a), bits) for a in alpha_grid(bits)}
    best = min(errs.values())
    chosen = float(q.alpha.detach())
    chosen_grid = chosen if chosen in errs else float(np.float32(chosen - 0.1))
    assert errs[min(errs, key=lambda a: abs(a - chosen_grid))] <= best * (1 + 1e-5)


def test_grid_search_small_alpha_gets_plus_0_1():
    # a narrow bulk and two outliers: the best grid alpha is small
    x = torch.cat([torch.linspace(-0.05, 0.05, 10000), torch.tensor([-1.0, 1.0])])
    xn = x.numpy()
    errs4 = {float(a): _numpy_error(xn, float(a), 4) for a in alpha_grid(4)}
    best4 = min(errs4, key=errs4.get)
    assert best4 < 0.1
    q4 = QLRQuantizer(4)
    q4(x)
    assert float(q4.alpha.detach()) == pytest.approx(best4 + 0.1, abs=1e-6)
    bt, sbt = QLRQuantizer(2, bt_mode="BT"), QLRQuantizer(2, bt_mode="BT*")
    bt(x)
    sbt(x)
    assert float(bt.alpha.detach()) == pytest.approx(0.1)   # 0.1 is not < 0.1: unchanged
    assert float(sbt.alpha.detach()) == pytest.approx(0.2)  # BT*: 0.1 < 0.5 -> +0.1
    assert len(alpha_grid(2)) == 10 and len(alpha_grid(8)) == 50


def test_reinit_every_reruns_grid_search():
    q = QLRQuantizer(4, reinit_every=2)
    q(torch.randn(100))
    q.alpha.data.fill_(0.999)
    q(torch.randn(100))  # call 2: no reinit
    assert float(q.alpha.detach()) == pytest.approx(0.999)
    q(torch.randn(100))  # call 3: (3 - 1) % 2 == 0 -> reinit
    assert float(q.alpha.detach()) != pytest.approx(0.999)


def test_shared_alpha_is_one_parameter():
    shared = torch.nn.Parameter(torch.ones(()))
    a = QLRQuantizer(4, alpha=shared, paper_code=True)
    b = QLRQuantizer(4, alpha=shared, paper_code=True)
    assert a.alpha is b.alpha
    a(torch.randn(100))
    b(torch.randn(100) * 5)  # re-initialises the shared alpha, as the published code does
    assert float(a.alpha.detach()) == float(b.alpha.detach())


def test_separate_quantizers_do_not_share():
    a, b = QLRQuantizer(4), QLRQuantizer(4)
    assert a.alpha is not b.alpha
