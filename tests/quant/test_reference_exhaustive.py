"""Exhaustive tests of the numpy integer reference (acceptance item 3 and the numpy half of 5).

Independent implementations use Python ints and ``fractions.Fraction`` only.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.errors import QuantError
from quant.pack import lanes_per_byte, pack_codes, pack_word, unpack_codes, unpack_word
from quant.reference import (acc_bits_required, acc_range, add_requantize, dequantize,
                             derive_multiplier, derive_shared_multipliers, qparams_from_range,
                             quantize, requantize, round_float, round_shift, saturate,
                             signed_bits_for)
from quant.spec import QuantSpec, Rounding

ALL_SPECS = [QuantSpec(b, signed=s, narrow_range=n)
             for b in range(1, 9) for s in (False, True) for n in (False, True)
             if not (n and b == 1)]
SCALES = [2.0 ** -20, 0.1, 0.37, 1.0, 3.3, 1e4]


def _exact_round(v: Fraction, rounding: Rounding) -> int:
    """Independent rounding of an exact rational."""
    if rounding is Rounding.FLOOR:
        return math.floor(v)
    if rounding is Rounding.HALF_UP:
        return math.floor(v + Fraction(1, 2))
    fl = math.floor(v)
    d = v - fl
    if d > Fraction(1, 2) or (d == Fraction(1, 2) and fl % 2):
        return fl + 1
    return fl


def _quantize_indep(x: float, s: float, z: int, spec: QuantSpec) -> int:
    """Float32 semantics rebuilt from float64: float32(a / b) via float64 is correctly rounded."""
    x32, s32 = float(np.float32(x)), float(np.float32(s))
    v = float(np.float32(x32 / s32))           # 53 >= 2*24 + 2: no double-rounding error
    v = float(np.float32(v + z))
    if not math.isfinite(v):
        return spec.qmax if v > 0 else spec.qmin
    return min(max(_exact_round(Fraction(v), spec.rounding), spec.qmin), spec.qmax)


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("spec", ALL_SPECS, ids=str)
def test_every_code_round_trips_for_every_zero_point(spec):
    codes = np.arange(spec.qmin, spec.qmax + 1, dtype=np.int64)
    for s in SCALES:
        for z in range(spec.qmin, spec.qmax + 1):
            x = dequantize(codes, s, z)
            assert x.dtype == np.float32
            q = quantize(x, s, z, spec)
            assert q.dtype == np.int32
            assert np.array_equal(q, codes), (spec, s, z)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("spec", ALL_SPECS, ids=str)
def test_out_of_range_values_saturate(spec):
    for s in SCALES:
        z = (spec.qmin + spec.qmax) // 2
        lo = dequantize(np.array([spec.qmin]), s, z)[0]
        hi = dequantize(np.array([spec.qmax]), s, z)[0]
        x = np.array([lo - 5 * s, lo - s, hi + s, hi + 7 * s, -3.0e38, 3.0e38], np.float32)
        q = quantize(x, s, z, spec)
        assert q.tolist() == [spec.qmin, spec.qmin, spec.qmax, spec.qmax, spec.qmin, spec.qmax]


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("bits,signed", [(2, False), (4, True), (8, False), (8, True), (1, False)])
def test_quantize_matches_independent_at_codes_and_midpoints(bits, signed, rounding):
    spec = QuantSpec(bits, signed=signed, rounding=rounding)
    for s in (0.25, 0.1, 0.37):
        for z in sorted({spec.qmin, 0 if spec.qmin <= 0 <= spec.qmax else spec.qmin, spec.qmax}):
            k = np.arange(spec.qmin - 2, spec.qmax + 3, dtype=np.float64)
            pts = np.concatenate([k, k + 0.5, k - 0.5, k + 0.49, k + 0.51])
            x = ((pts - z) * s).astype(np.float32)
            x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                                np.nextafter(x, np.float32(-np.inf))])
            got = quantize(x, s, z, spec)
            want = [_quantize_indep(float(v), s, z, spec) for v in x]
            assert got.tolist() == want


def test_half_up_is_exact_just_below_one_half():
    # floor(v + 0.5) in float32 would give 1 here: 0.49999997 + 0.5 rounds to 1.0
    v = np.float32(0.5) - np.float32(2.0 ** -25)
    vals = np.array([v, -v, 0.5, -0.5, 1.5, -1.5, 2.5, np.nextafter(np.float32(1.5), 0)], np.float32)
    got = round_float(vals, Rounding.HALF_UP)
    assert got.tolist() == [_exact_round(Fraction(float(t)), Rounding.HALF_UP) for t in vals]
    assert got[0] == 0.0


def test_half_even_ties():
    vals = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], np.float32)
    assert round_float(vals, Rounding.HALF_EVEN).tolist() == [-2, -2, -0, 0, 2, 2]
    assert round_float(vals, Rounding.HALF_UP).tolist() == [-2, -1, 0, 1, 2, 3]
    assert round_float(vals, Rounding.FLOOR).tolist() == [-3, -2, -1, 0, 1, 2]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=str)
def test_qparams_cover_range_and_zero_is_exact(spec):
    if spec.signed and spec.qmax < 1:  # signed 1-bit: codes {-1, 0}, no symmetric range
        with pytest.raises(QuantError, match="bits must be >= 2 .*not 1"):
            qparams_from_range(-1.0, 1.0, spec)
        return
    for lo, hi in [(-1.0, 1.0), (0.0, 3.0), (-2.0, 0.0), (-0.3, 7.9), (0.5, 2.0)]:
        s, z = qparams_from_range(lo, hi, spec)
        assert s > 0 and spec.qmin <= z <= spec.qmax
        assert quantize(np.zeros(1, np.float32), s, z, spec)[0] == z
        assert dequantize(np.array([z]), s, z)[0] == 0.0


# --------------------------------------------------------------------------- round_shift

def _round_shift_indep(v: int, n: int) -> int:
    if n >= 0:
        return math.floor(Fraction(v, 1 << n) + Fraction(1, 2))
    return v * (1 << -n)


@pytest.mark.parametrize("n", range(0, 21))
def test_round_shift_every_tie(n):
    half = 1 << (n - 1) if n > 0 else 1
    k = np.arange(-70, 71, dtype=np.int64)
    base = k * half
    v = np.concatenate([base - 1, base, base + 1])
    got = round_shift(v, n)
    want = [_round_shift_indep(int(t), n) for t in v]
    assert got.tolist() == want


@pytest.mark.parametrize("n", range(-8, 0))
def test_round_shift_negative_shift_is_exact_left_shift(n):
    v = np.arange(-300, 301, dtype=np.int64)
    assert round_shift(v, n).tolist() == [_round_shift_indep(int(t), n) for t in v]


def test_round_shift_extremes_stay_exact():
    v = np.array([-(1 << 60), (1 << 60) - 1, -(1 << 61) + 1, (1 << 61) - 1], np.int64)
    for n in (1, 17, 40, 61, 62):
        assert round_shift(v, n).tolist() == [_round_shift_indep(int(t), n) for t in v]


# --------------------------------------------------------------------------- requantize

def _requantize_indep(v: int, m: int, n: int, z: int, spec: QuantSpec) -> int:
    return min(max(_round_shift_indep(v * m, n) + z, spec.qmin), spec.qmax)


@pytest.mark.parametrize("out_spec", [QuantSpec(2), QuantSpec(4, signed=True), QuantSpec(8),
                                      QuantSpec(8, signed=True)], ids=str)
def test_requantize_exhaustive_small_range(out_spec):
    v = np.arange(-600, 601, dtype=np.int64)
    for m, n in [(1, 0), (3, 2), (5, 3), (1, 1), (7, 4), (255, 10), (32768, 16), (12345, 20),
                 (3, -1)]:
        z = (out_spec.qmin + out_spec.qmax + 1) // 2
        got = requantize(v, m, n, z, out_spec)
        assert got.tolist() == [_requantize_indep(int(t), m, n, z, out_spec) for t in v]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(1 << 30), 1 << 30), min_size=1, max_size=20),
       st.integers(0, (1 << 31) - 1), st.integers(0, 40), st.integers(1, 8), st.booleans())
def test_requantize_matches_python_ints(vals, m, n, bits, signed):
    spec = QuantSpec(bits, signed=signed)
    v = np.array(vals, np.int64)
    if int(np.abs(v).max()) * m >= 1 << 62:
        return
    got = requantize(v, m, n, spec.qmin, spec)
    assert got.tolist() == [_requantize_indep(t, m, n, spec.qmin, spec) for t in vals]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-255, 255), st.integers(-255, 255)), min_size=1, max_size=20),
       st.integers(-(1 << 20), 1 << 20), st.integers(-(1 << 20), 1 << 20), st.integers(0, 30))
def test_add_requantize_matches_python_ints(pairs, ma, mb, n):
    spec = QuantSpec(8, signed=True)
    a = np.array([p[0] for p in pairs]) + 3
    b = np.array([p[1] for p in pairs]) - 2
    got = add_requantize(a, 3, ma, b, -2, mb, n, 0, spec)
    want = [min(max(_round_shift_indep(x * ma + y * mb, n), -128), 127) for x, y in pairs]
    assert got.tolist() == want


# --------------------------------------------------------------------------- (M, n)

def test_derive_multiplier_error_bound_log_uniform():
    rng = np.random.default_rng(2024)
    ratios = 2.0 ** rng.uniform(-24, 8, 4000)
    for i, r in enumerate(ratios):
        mb = 8 + i % 24                                    # 8..31
        m, n = derive_multiplier(float(r), mb)
        assert 0 < m < (1 << mb)
        approx = Fraction(m) / (1 << n) if n >= 0 else Fraction(m * (1 << -n))
        rel = abs(approx - Fraction(float(r))) / Fraction(float(r))
        assert rel <= Fraction(1, 1 << mb), (r, mb, m, n)


@pytest.mark.parametrize("mb", range(8, 32))
def test_derive_multiplier_bound_at_awkward_ratios(mb):
    for r in [1.0, 0.5, 2.0 ** -24, 2.0 ** 8, 1 - 2.0 ** -40, 0.75, 1 / 3, 2.0 ** mb, 3.0 * 2.0 ** mb]:
        m, n = derive_multiplier(r, mb)
        approx = Fraction(m) / (1 << n) if n >= 0 else Fraction(m * (1 << -n))
        assert abs(approx - Fraction(r)) / Fraction(r) <= Fraction(1, 1 << mb)


def test_shared_multipliers_keep_sign_and_shift():
    (ma, mb), n = derive_shared_multipliers((0.9, -0.1), 16)
    assert ma > 0 > mb
    assert abs(ma / 2 ** n - 0.9) <= 2 ** -n and abs(mb / 2 ** n + 0.1) <= 2 ** -n


# --------------------------------------------------------------------------- accumulators

@pytest.mark.parametrize("code_bits,mult_bits", [(2, 8), (4, 8), (8, 8), (8, 16), (2, 1)])
def test_acc_bits_hold_worst_case_sum(code_bits, mult_bits):
    for deg in (1, 2, 3, 7, 8, 9, 168, 1000):
        acc = acc_bits_required(code_bits, mult_bits, deg)
        lo, hi = acc_range(acc)
        worst = deg * ((1 << code_bits) - 1) * ((1 << mult_bits) - 1)
        assert -worst >= lo and worst <= hi
        assert signed_bits_for(worst) <= acc


def test_saturate():
    assert saturate(np.array([-5, 0, 5]), -2, 3).tolist() == [-2, 0, 3]


# --------------------------------------------------------------------------- packing

@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_every_byte_unpacks_and_repacks(bits, signed):
    per = lanes_per_byte(bits)
    allbytes = np.arange(256, dtype=np.uint8)[:, None]
    codes = unpack_codes(allbytes, bits, per, signed=signed)
    assert codes.shape == (256, per)
    assert np.array_equal(pack_codes(codes, bits), allbytes)
    # lane k holds bits [k*bits, (k+1)*bits) of the byte: lane 0 in the LSBs
    for b in range(256):
        for k in range(per):
            raw = (b >> (k * bits)) & ((1 << bits) - 1)
            if signed and raw >= 1 << (bits - 1):
                raw -= 1 << bits
            assert codes[b, k] == raw
        assert pack_word(codes[b].tolist(), bits) == b
        assert unpack_word(b, bits, per, signed) == codes[b].tolist()


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_pack_unpack_identity_every_lane_count(bits, signed, rng):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    for count in range(1, 34):
        codes = rng.integers(lo, hi + 1, (3, count))
        packed = pack_codes(codes, bits)
        assert packed.shape == (3, -(-count * bits // 8))
        assert np.array_equal(unpack_codes(packed, bits, count, signed=signed), codes)
        pad = packed.shape[1] * (8 // bits) - count
        if pad:  # missing lanes of the last byte are zero
            assert np.all(unpack_codes(packed, bits, count + pad)[:, count:] == 0)


@pytest.mark.parametrize("bits", [2, 4])
def test_every_code_tuple_packs_to_distinct_bytes(bits):
    per = 8 // bits
    tuples = np.array(list(itertools.product(range(1 << bits), repeat=per)))
    packed = pack_codes(tuples, bits)[:, 0]
    assert len(set(packed.tolist())) == 256
    assert np.array_equal(unpack_codes(packed[:, None], bits, per), tuples)
