"""derive_add_multipliers: every ratio of an add keeps its precision (exact rational checks)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from quant.errors import QuantError
from quant.reference import (
    ADD_MULT_BITS,
    add_requantize,
    derive_add_multipliers,
    derive_shared_multipliers,
)
from quant.spec import QuantSpec


def _rel(m: int, n: int, r: float) -> Fraction:
    approx = Fraction(m, 1 << n) if n >= 0 else Fraction(m * (1 << -n))
    return abs(approx - Fraction(r)) / abs(Fraction(r))


def _bound(mult_bits: int, ratios, r: float) -> Fraction:
    e_max = max(math.frexp(abs(x))[1] for x in ratios if x)
    e = math.frexp(abs(r))[1]
    return Fraction(2) ** -min(mult_bits, ADD_MULT_BITS - (e_max - e))


def test_bound_on_random_ratio_pairs():
    rng = np.random.default_rng(7)
    for i in range(3000):
        mb = 8 + i % 17                                   # 8..24
        ra = float(2.0 ** rng.uniform(-12, 4)) * (1 if i % 3 else -1)
        rb = float(2.0 ** rng.uniform(-30, 4)) * (-1 if i % 5 == 0 else 1)
        (ma, mbb), n = derive_add_multipliers((ra, rb), mb)
        assert max(abs(ma), abs(mbb)) <= 1 << ADD_MULT_BITS
        assert (ma > 0) == (ra > 0) and (mbb >= 0) == (rb > 0) or mbb == 0
        for m, r in ((ma, ra), (mbb, rb)):
            assert _rel(m, n, r) <= _bound(mb, (ra, rb), r), (ra, rb, mb, m, n)
        # never less precise than the shared-shift derivation
        (sa, sb), sn = derive_shared_multipliers((ra, rb), mb)
        assert n >= sn
        for m, s, r in ((ma, sa, ra), (mbb, sb, rb)):
            assert _rel(m, n, r) <= _rel(s, sn, r)


def test_smp_constraint_coefficient_is_kept():
    # the case the shared shift loses: c_k * s_d / s_y next to s_xt / s_y
    ratios = (0.0627, 2e-4 * 0.0009)
    (_, sb), _ = derive_shared_multipliers(ratios, 16)
    assert sb == 0                                      # the constraint term vanished
    (ma, mb), n = derive_add_multipliers(ratios, 16)
    assert mb != 0 and _rel(mb, n, ratios[1]) <= _bound(16, ratios, ratios[1]) == Fraction(1, 1 << 11)
    assert _rel(ma, n, ratios[0]) <= Fraction(1, 1 << 16)
    (ma, mb), n = derive_add_multipliers((0.0627, 2e-4 * 0.05), 16)   # within 2**14: 16 bits each
    assert _rel(mb, n, 2e-4 * 0.05) <= Fraction(1, 1 << 16)


@pytest.mark.parametrize("ratios", [(1.0, 0.0), (0.0, -0.5), (0.9, 0.1), (1.125, 0.05)])
def test_zero_ratio_and_single_ratio(ratios):
    ms, n = derive_add_multipliers(ratios, 16)
    for m, r in zip(ms, ratios):
        assert (m == 0) == (r == 0)
        if r:
            assert _rel(m, n, r) <= Fraction(1, 1 << 16)


def test_result_feeds_add_requantize():
    (ma, mb), n = derive_add_multipliers((1.125, 0.05), 12)
    y = add_requantize(np.array([10, 3, 15]), 2, ma, np.array([4, 9, 0]), 5, mb, n, 1, QuantSpec(4))
    exact = [1.125 * (a - 2) + 0.05 * (b - 5) for a, b in ((10, 4), (3, 9), (15, 0))]
    assert y.tolist() == [min(15, max(0, math.floor(v + 0.5) + 1)) for v in exact]


def test_refusals():
    with pytest.raises(QuantError, match="ratios"):
        derive_add_multipliers((0.0, 0.0))
    with pytest.raises(QuantError, match="ratio"):
        derive_add_multipliers((float("nan"), 1.0))
    with pytest.raises(QuantError, match="mult_bits"):
        derive_add_multipliers((1.0,), 31)
    with pytest.raises(QuantError, match="max_mult_bits"):
        derive_add_multipliers((1.0,), 16, 31)
