"""quant.torch_ops equals the numpy reference bit for bit (acceptance items 4 and 5, torch side)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quant import reference as R
from quant import torch_ops as T
from quant.spec import QuantSpec, Rounding

SPECS = [QuantSpec(b, signed=s, rounding=r)
         for b in range(1, 9) for s in (False, True) for r in Rounding]


def _grid_points(spec: QuantSpec, s: float, z: int) -> np.ndarray:
    """Every code's value, every midpoint between codes, their float32 neighbours, and beyond."""
    k = np.arange(spec.qmin - 2, spec.qmax + 3, dtype=np.float64)
    pts = np.concatenate([k, k + 0.5])
    x = ((pts - z) * s).astype(np.float32)
    return np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))])


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_quantize_exhaustive_codes_and_midpoints(spec):
    for s in (0.25, 0.1, 0.37, 1.3e-3, 7.0):
        zs = {spec.qmin, spec.qmax, (spec.qmin + spec.qmax) // 2}
        for z in sorted(zs):
            x = _grid_points(spec, s, z)
            want = R.quantize(x, s, z, spec)
            got = T.quantize(torch.from_numpy(x), s, z, spec)
            assert got.dtype == torch.int32
            assert np.array_equal(got.numpy(), want), (spec, s, z)


@pytest.mark.parametrize("rounding", list(Rounding))
def test_round_float_matches_on_adversarial_values(rounding):
    base = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.0, 1.0, 8388607.5, 2.0 ** 23, -2.0 ** 23 - 2],
                    np.float32)
    v = np.concatenate([base, np.nextafter(base, np.float32(np.inf)),
                        np.nextafter(base, np.float32(-np.inf))])
    got = T.round_float(torch.from_numpy(v), rounding).numpy()
    assert np.array_equal(got, R.round_float(v, rounding))


def test_dequantize_matches():
    q = np.arange(-128, 256)
    for s, z in [(0.1, 0), (0.37, 17), (1e-3, -5)]:
        assert np.array_equal(T.dequantize(torch.from_numpy(q), s, z).numpy(), R.dequantize(q, s, z))


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 64),
                  elements=st.floats(-1e6, 1e6, width=32, allow_nan=False)),
       st.floats(2.0 ** -20, 1024.0, width=32), st.integers(1, 8), st.booleans(),
       st.sampled_from(list(Rounding)), st.data())
def test_quantize_hypothesis(x, s, bits, signed, rounding, data):
    spec = QuantSpec(bits, signed=signed, rounding=rounding)
    z = data.draw(st.integers(spec.qmin, spec.qmax))
    assert np.array_equal(T.quantize(torch.from_numpy(x), s, z, spec).numpy(),
                          R.quantize(x, s, z, spec))


# --------------------------------------------------------------------------- integer ops

@pytest.mark.parametrize("n", list(range(-6, 23)))
def test_round_shift_ties_exhaustive(n):
    half = 1 << (n - 1) if n > 0 else 1
    base = np.arange(-70, 71, dtype=np.int64) * half
    v = np.concatenate([base - 1, base, base + 1])
    assert np.array_equal(T.round_shift(torch.from_numpy(v), n).numpy(), R.round_shift(v, n))


@pytest.mark.parametrize("out_spec", [QuantSpec(2), QuantSpec(4, signed=True), QuantSpec(8),
                                      QuantSpec(8, signed=True), QuantSpec(3, narrow_range=True)],
                         ids=str)
def test_requantize_exhaustive_small_range(out_spec):
    v = np.arange(-2000, 2001, dtype=np.int64)
    for m, n in [(1, 0), (3, 2), (5, 3), (1, 1), (7, 4), (255, 10), (32768, 16), (12345, 20), (3, -2)]:
        for z in (out_spec.qmin, out_spec.qmax):
            want = R.requantize(v, m, n, z, out_spec)
            got = T.requantize(torch.from_numpy(v), m, n, z, out_spec)
            assert got.dtype == torch.int32 and np.array_equal(got.numpy(), want)


def test_requantize_derived_multipliers_with_ties():
    # ratio 2**-k makes every odd multiple of 2**(k-1) an exact tie
    v = np.arange(-5000, 5001, dtype=np.int64)
    spec = QuantSpec(8, signed=True)
    for k in range(1, 12):
        m, n = R.derive_multiplier(2.0 ** -k, 16)
        assert np.array_equal(T.requantize(torch.from_numpy(v), m, n, 0, spec).numpy(),
                              R.requantize(v, m, n, 0, spec))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(-(1 << 24), 1 << 24)),
       st.floats(2.0 ** -24, 2.0 ** 8), st.integers(8, 31), st.integers(1, 8), st.booleans(),
       st.data())
def test_requantize_hypothesis(v, ratio, mult_bits, bits, signed, data):
    spec = QuantSpec(bits, signed=signed)
    z = data.draw(st.integers(spec.qmin, spec.qmax))
    m, n = R.derive_multiplier(ratio, mult_bits)
    if int(np.abs(v).max()) * m * (1 << max(0, -n)) >= R.PRODUCT_LIMIT:
        return
    assert np.array_equal(T.requantize(torch.from_numpy(v), m, n, z, spec).numpy(),
                          R.requantize(v, m, n, z, spec))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 255)),
       hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 255)),
       st.integers(-2000, 2000), st.integers(-2000, 2000), st.integers(4, 20), st.data())
def test_add_requantize_hypothesis(a, b, ia, ib, mult_bits, data):
    k = min(len(a), len(b))
    a, b = a[:k], b[:k]
    if ia == 0 and ib == 0:
        return
    ra, rb = ia / 1000, ib / 1000
    (ma, mb), n = R.derive_shared_multipliers((ra, rb), mult_bits)
    spec = QuantSpec(8)
    za, zb, z = (data.draw(st.integers(0, 255)) for _ in range(3))
    assert np.array_equal(
        T.add_requantize(torch.from_numpy(a), za, ma, torch.from_numpy(b), zb, mb, n, z, spec).numpy(),
        R.add_requantize(a, za, ma, b, zb, mb, n, z, spec))


def test_add_requantize_exhaustive_int2_pairs():
    a, b = np.meshgrid(np.arange(4), np.arange(4))
    spec = QuantSpec(2)
    for (ma, mb), n in [((3, 1), 2), ((1, -1), 1), ((-5, 7), 3), ((9, 1), 4)]:
        for za in range(4):
            for z in range(4):
                want = R.add_requantize(a, za, ma, b, 1, mb, n, z, spec)
                got = T.add_requantize(torch.from_numpy(a), za, ma, torch.from_numpy(b), 1, mb, n, z, spec)
                assert np.array_equal(got.numpy(), want)


def test_relu_codes_and_linear_accumulate(rng):
    q = rng.integers(-8, 8, (5, 7))
    assert np.array_equal(T.relu_codes(torch.from_numpy(q), 2).numpy(), R.relu_codes(q, 2))
    x = rng.integers(0, 256, (9, 13))
    w = rng.integers(-128, 128, (4, 13))
    b = rng.integers(-(1 << 20), 1 << 20, 4).astype(np.int32)
    got = T.linear_accumulate(torch.from_numpy(x), 7, torch.from_numpy(w), -3, torch.from_numpy(b))
    assert got.dtype == torch.int64
    assert np.array_equal(got.numpy(), R.linear_accumulate(x, 7, w, -3, b))
    assert np.array_equal(T.linear_accumulate(torch.from_numpy(x), 0, torch.from_numpy(w), 0).numpy(),
                          R.linear_accumulate(x, 0, w, 0))
