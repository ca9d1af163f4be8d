"""The numba kernels equal the numpy reference of ``quant`` exactly."""

from __future__ import annotations

import numpy as np
import pytest

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.errors import QuantError
from quant.reference import linear_accumulate
from quant.spec import QuantSpec
from sim.exact import functional
from sim.graphs.synthetic import synthetic_graph


def _params(acc_bits=16, msg=True, upd=True, x_zero=3, w_zero=5, out_shift=20):
    return AggregationParams(
        QuantSpec(4), x_zero, QuantSpec(8), w_zero, acc_bits,
        Requantizer(40000, out_shift, 2, QuantSpec(4)),
        Requantizer(50000, 16, 1, QuantSpec(4, signed=True)) if msg else None,
        Requantizer(33000, 15, 3, QuantSpec(4)) if upd else None)


@pytest.mark.parametrize("msg", [False, True])
@pytest.mark.parametrize("upd", [False, True])
@pytest.mark.parametrize("acc_bits", [12, 16, 40])
def test_aggregate_equals_reference(msg, upd, acc_bits):
    rng = np.random.default_rng(acc_bits + 2 * msg + upd)
    g = synthetic_graph(40, 240, seed=5, kind="powerlaw")
    x = rng.integers(0, 16, size=(40, 7))
    w = rng.integers(0, 256, size=g.num_edges)
    p = _params(acc_bits, msg, upd)
    got = functional.aggregate(g.indptr, g.indices, w, x, p)
    ref = aggregate_reference(g.indptr, g.indices, w, x, p)
    assert got.y.dtype == np.int32
    assert np.array_equal(got.y, ref.y)
    assert got.saturations == ref.saturations
    assert got.extra["row_saturations"].sum() == ref.saturations
    if acc_bits == 12 and not msg:
        assert ref.saturations > 0


def test_errors_match_reference():
    g = synthetic_graph(5, 10, seed=1)
    w = np.zeros(10, dtype=np.int64)
    bad_x = np.full((5, 2), 16)
    for fn in (functional.aggregate, aggregate_reference):
        with pytest.raises(QuantError, match="x codes"):
            fn(g.indptr, g.indices, w, bad_x, _params())
        with pytest.raises(QuantError, match="w.shape"):
            fn(g.indptr, g.indices, w[:3], bad_x % 16, _params())


def test_huge_left_shift_falls_back_to_reference_error():
    # acc up to 2**39 times M * 2**20 overflows int64: the reference raises, so must we
    p = AggregationParams(QuantSpec(4), 0, QuantSpec(8), 0, 40,
                          Requantizer(40000, -20, 2, QuantSpec(4)))
    g = synthetic_graph(5, 40, seed=2)
    x = np.full((5, 3), 15)
    w = np.full(40, 255)
    ref = aggregate_reference(g.indptr, g.indices, w, x, p)
    got = functional.aggregate(g.indptr, g.indices, w, x, p)
    assert np.array_equal(ref.y, got.y)


def test_linear_and_requantize_equal_reference():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 16, size=(30, 20))
    wq = rng.integers(-8, 8, size=(6, 20))
    b = rng.integers(-1000, 1000, size=6)
    assert np.array_equal(functional.linear(x, 3, wq, 0, b), linear_accumulate(x, 3, wq, 0, b))
    assert np.array_equal(functional.linear(x, 3, wq, 1), linear_accumulate(x, 3, wq, 1))
    rq = Requantizer(45000, 22, 7, QuantSpec(4))
    v = rng.integers(-(1 << 20), 1 << 20, size=(30, 6))
    assert np.array_equal(functional.requantize(v, rq), rq(v))
