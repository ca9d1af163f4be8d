"""BT and BT* truncation (acceptance item 7): four levels, shifted thresholds, worked example."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats
import torch

from quant import reference as R
from quant.errors import QuantError
from quant.quantizers import QLRQuantizer, _truncate_float, _truncate_formula
from quant.spec import QuantSpec
from quant.truncation import (BT_LEVELS, bt_expand_codes, bt_storage_codes, fisher_pearson_skew,
                              quantize_bt, rounded_skew, truncate_codes)

ALL_Q8 = np.arange(256)


def _indep(q8: int, sk: int) -> int:
    t = Fraction(q8 + sk, 85)
    fl = math.floor(t)
    r = fl + 1 if t - fl > Fraction(1, 2) or (t - fl == Fraction(1, 2) and fl % 2) else fl
    return min(max(85 * r, 0), 255)


def test_bt_gives_exactly_the_four_levels_with_thresholds_43_128_213():
    out = truncate_codes(ALL_Q8)
    assert sorted(set(out.tolist())) == list(BT_LEVELS)
    assert out.tolist() == [0] * 43 + [85] * 85 + [170] * 85 + [255] * 43


@pytest.mark.parametrize("sk", range(-127, 128))
def test_bt_star_matches_independent_rounding_and_shifts_thresholds(sk):
    out = truncate_codes(ALL_Q8, sk)
    assert out.tolist() == [_indep(int(q), sk) for q in ALL_Q8]
    assert set(out.tolist()) <= set(BT_LEVELS)
    # thresholds move from 43 / 128 / 213 to 43 - sk / 128 - sk / 213 - sk
    for level, thr in ((85, 43), (170, 128), (255, 213)):
        t = thr - sk
        if 0 < t <= 255:
            assert out[t] >= level and out[t - 1] < level
    torch_out = _truncate_float(torch.from_numpy(ALL_Q8.astype(np.float32)), sk)
    assert torch_out.to(torch.int64).tolist() == out.tolist()


def test_worked_example_from_docs():
    """The numbers printed in docs/numerics.md, section "BT and BT*"."""
    spec = QuantSpec(8)
    s8, z8 = R.qparams_from_range(-0.3, 1.2, spec)
    assert (float(s8), z8) == (float(np.float32(1.5) / np.float32(255)), 51)
    x = np.array([-0.30, -0.12, 0.0, 0.05, 0.21, 0.40, 0.47, 0.90, 1.20], np.float32)
    q8 = R.quantize(x, s8, z8, spec)
    assert q8.tolist() == [0, 31, 51, 60, 87, 119, 131, 204, 255]
    bt = truncate_codes(q8)
    assert bt.tolist() == [0, 0, 85, 85, 85, 85, 170, 170, 255]
    assert truncate_codes(q8, -5).tolist() == [0, 0, 85, 85, 85, 85, 85, 170, 255]
    assert truncate_codes(np.array([40, 125, 210]), 3).tolist() == [85, 170, 255]
    assert truncate_codes(np.array([40, 125, 210])).tolist() == [0, 85, 170]
    assert bt_storage_codes(bt).tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 3]
    vals = R.dequantize(bt, s8, z8)
    assert np.round(vals.astype(np.float64), 6).tolist() == [-0.3, -0.3, 0.2, 0.2, 0.2, 0.2, 0.7, 0.7, 1.2]
    assert np.array_equal(quantize_bt(x, s8, z8), bt)


def test_storage_round_trip_and_bad_codes():
    c = np.arange(4)
    assert bt_expand_codes(c).tolist() == [0, 85, 170, 255]
    assert np.array_equal(bt_storage_codes(bt_expand_codes(c)), c)
    with pytest.raises(QuantError, match="BT code must be one of .*not 86"):
        bt_storage_codes(np.array([0, 86]))
    with pytest.raises(QuantError, match="c must be in \\[0, 3\\], not \\(0, 4\\)"):
        bt_expand_codes(np.array([0, 4]))
    with pytest.raises(QuantError, match="skew must be in -127..127, not 200"):
        truncate_codes(np.array([3]), 200)


def test_skewness_matches_scipy(rng):
    for x in (rng.standard_normal(1000), rng.exponential(size=1000) ** 2, -rng.gamma(0.3, size=500)):
        x = x.astype(np.float32)
        want = scipy.stats.skew(x.astype(np.float64), bias=True)
        assert fisher_pearson_skew(x) == pytest.approx(want, rel=1e-12)
        assert rounded_skew(x) == round(want)
    assert fisher_pearson_skew(np.ones(5)) == 0.0


def _skewed(n: int = 4000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.randn(n, generator=g) * 1.3)       # log-normal: skewness ~ 5-10


def test_bt_star_module_measures_skew_at_init_and_matches_reference():
    x = _skewed()
    q = QLRQuantizer(2, bt_mode="BT*")
    y = q(x)
    sk = int(q.skew)
    assert sk == rounded_skew(x.numpy()) and sk >= 2
    s, z, spec = q.qparams()
    assert spec == QuantSpec(8)
    codes = q.to_int(x)
    assert np.array_equal(codes.numpy(), quantize_bt(x.numpy(), s, z, sk))
    assert np.array_equal(y.detach().numpy(), R.dequantize(codes.numpy(), s, z))
    # BT* differs from BT only by the threshold shift
    plain = truncate_codes(R.quantize(x.numpy(), s, z, spec))
    assert (codes.numpy() >= plain).all() and (codes.numpy() != plain).any()


@pytest.mark.parametrize("mode", ["BT", "BT*"])
def test_bt_representation_is_exact_for_integer_inference(mode):
    x = _skewed(seed=3) - 1.0
    q = QLRQuantizer(2, bt_mode=mode)
    q(x)
    q.eval()
    d = q.bt_description()
    assert d["code_step"] == 85 and d["storage_bits"] == 2 and d["spec"]["bits"] == 8
    c = q.to_storage(x)
    assert set(torch.unique(c).tolist()) <= {0, 1, 2, 3}
    q8 = q.to_int(x)
    assert torch.equal(q8, c * 85)
    s, z = np.float32(d["scale"]), d["zero_point"]
    # the stored 2-bit codes expand to 8-bit codes whose dequantized values are the forward's
    expanded = bt_expand_codes(c.numpy())
    assert np.array_equal(R.dequantize(expanded, s, z), q(x).detach().numpy())
    assert q.storage_spec == QuantSpec(2)


def test_bt_modes_need_two_bits():
    with pytest.raises(QuantError, match="bits must be 2 when bt_mode='BT', not 4"):
        QLRQuantizer(4, bt_mode="BT")
    with pytest.raises(QuantError, match="bt_mode must be one of .*not 'SBT2'"):
        QLRQuantizer(2, bt_mode="SBT2")
    fp32 = QLRQuantizer(None, bt_mode="BT*")  # FP32 passthrough wins
    x = torch.randn(5)
    assert not fp32.enabled and fp32(x) is x


def test_truncation_lookup_equals_its_formula():
    # the quantizers' BT / BT* truncation of 8-bit float codes is a lookup in the table of the
    # formula on all 256 codes: equal on every code and every skew, any shape; codes outside
    # [0, 255] are refused, not looked up elsewhere
    codes = torch.arange(256, dtype=torch.float32)
    for skew in range(-127, 128):
        got = _truncate_float(codes.reshape(16, 16), skew)
        want = _truncate_formula(codes.reshape(16, 16), skew)
        assert got.dtype == torch.float32 and got.shape == (16, 16)
        assert torch.equal(got, want), skew
    assert _truncate_float(torch.zeros((0, 3)), 5).shape == (0, 3)
    for bad in (-1.0, 256.0):
        with pytest.raises(IndexError):
            _truncate_float(torch.tensor([bad]), 0)


def test_fake_quant_kernel_truncation_equals_the_table_on_every_code_and_skew():
    # the one-pass fake quantizer truncates in float32 arithmetic; the result must be the
    # table of the integer formula for all 256 codes at every skew
    from quant.fake_quant_kernels import ROUND_HALF_EVEN, fake_forward
    from quant.quantizers import _truncation_table

    codes_in = np.arange(256, dtype=np.float32)
    one, zero, top = np.float32(1.0), np.float32(0.0), np.float32(255.0)
    for skew in range(-127, 128):
        out = np.empty(256, dtype=np.float32)
        codes = np.empty(256, dtype=np.uint8)
        fake_forward(codes_in, one, zero, zero, top, ROUND_HALF_EVEN, True, skew, out, codes)
        want = _truncation_table(skew).numpy()
        assert np.array_equal(out, want), skew
        assert np.array_equal(codes, want.astype(np.uint8)), skew
