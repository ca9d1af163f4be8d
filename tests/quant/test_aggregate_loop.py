"""quant.aggregate_reference against an independent Python-int triple loop (random small cases)."""

from __future__ import annotations

import numpy as np
import pytest

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.reference import derive_multiplier
from quant.spec import QuantSpec


def _rq(v: int, r: Requantizer) -> int:
    if r.shift > 0:
        q = (v * r.multiplier + (1 << (r.shift - 1))) >> r.shift
    else:
        q = (v * r.multiplier) << (-r.shift)
    return min(max(q + r.zero_point, r.spec.qmin), r.spec.qmax)


def _loop(indptr, indices, w, x, p: AggregationParams):
    lo, hi = -(1 << (p.acc_bits - 1)), (1 << (p.acc_bits - 1)) - 1
    n, f = len(indptr) - 1, x.shape[1]
    y = np.zeros((n, f), np.int64)
    sats = 0
    for i in range(n):
        for lane in range(f):
            acc = 0
            for e in range(indptr[i], indptr[i + 1]):
                m = (int(x[indices[e], lane]) - p.x_zero) * (int(w[e]) - p.w_zero)
                if p.msg is not None:
                    m = _rq(m, p.msg) - p.msg.zero_point
                a = acc + m
                acc = min(max(a, lo), hi)
                sats += acc != a
            y[i, lane] = _rq(acc, p.out)
            if p.upd is not None:
                y[i, lane] = _rq(int(y[i, lane]) - p.out.zero_point, p.upd)
    return y, sats


@pytest.mark.parametrize("seed", range(40))
def test_matches_independent_loop(seed):
    rng = np.random.default_rng(seed)
    n, e, f = int(rng.integers(1, 12)), int(rng.integers(0, 40)), int(rng.integers(1, 5))
    dst = np.sort(rng.integers(0, n, e))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
    indices = rng.integers(0, n, e)
    w = rng.integers(0, 256, e)
    x = rng.integers(0, 16, (n, f))
    s4 = QuantSpec(4)
    msg = Requantizer(*derive_multiplier(rng.uniform(0.001, 0.5), 12), 8, QuantSpec(8)) if seed % 2 else None
    upd = Requantizer(*derive_multiplier(rng.uniform(0.2, 3), 10), 5, s4) if seed % 3 == 0 else None
    p = AggregationParams(s4, int(rng.integers(0, 16)), QuantSpec(8), int(rng.integers(0, 3)),
                          int(rng.integers(8, 20)),
                          Requantizer(*derive_multiplier(rng.uniform(1e-4, 0.1), 16), 7, s4), msg, upd)
    r = aggregate_reference(indptr, indices, w, x, p)
    y, sats = _loop(indptr, indices, w, x, p)
    assert np.array_equal(r.y, y)
    assert r.saturations == sats


def test_saturation_is_counted():
    indptr = np.array([0, 4])
    indices = np.zeros(4, np.int64)
    x = np.array([[15]])
    w = np.full(4, 255)
    p = AggregationParams(QuantSpec(4), 0, QuantSpec(8), 0, 12,
                          Requantizer(1, 0, 0, QuantSpec(8, signed=True)))
    r = aggregate_reference(indptr, indices, w, x, p)
    # 15*255 = 3825 fits in 12 bits (max 2047)? no: first add already clamps
    assert r.saturations == 4
    assert r.y.tolist() == [[127]]
