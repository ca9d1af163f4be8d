"""aggregate_reference on small hand-built graphs (hub, empty rows, saturation), against a
straightforward Python-int implementation written from the module docstring, and against
hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.errors import QuantError
from quant.reference import derive_multiplier
from quant.spec import QuantSpec

S2, S4, S8, S8S = QuantSpec(2), QuantSpec(4), QuantSpec(8), QuantSpec(8, signed=True)


def _requant(v: int, r: Requantizer) -> int:
    n = r.shift
    t = (v * r.multiplier + (1 << (n - 1))) // (1 << n) if n > 0 else v * r.multiplier * (1 << -n)
    return min(max(t + r.zero_point, r.spec.qmin), r.spec.qmax)


def _python_aggregate(edges_by_dst: list[list[tuple[int, int]]], x: list[list[int]],
                      p: AggregationParams) -> tuple[list[list[int]], int]:
    """edges_by_dst[i] = [(src, w_code), ...] in stream order; x[src][lane] codes."""
    lo, hi = -(2 ** (p.acc_bits - 1)), 2 ** (p.acc_bits - 1) - 1
    lanes = len(x[0])
    y, sats = [], 0
    for row in edges_by_dst:
        out_row = []
        for lane in range(lanes):
            acc = 0
            for src, w in row:
                prod = (x[src][lane] - p.x_zero) * (w - p.w_zero)
                if p.msg is not None:
                    prod = _requant(prod, p.msg) - p.msg.zero_point
                total = acc + prod
                acc = min(max(total, lo), hi)
                sats += acc != total
            v = _requant(acc, p.out)
            if p.upd is not None:
                v = _requant(v - p.out.zero_point, p.upd)
            out_row.append(v)
        y.append(out_row)
    return y, sats


def _csr(edges_by_dst):
    indptr = np.cumsum([0] + [len(r) for r in edges_by_dst])
    indices = np.array([s for r in edges_by_dst for s, _ in r], np.int64)
    w = np.array([c for r in edges_by_dst for _, c in r], np.int64)
    return indptr, indices, w


def _check(edges_by_dst, x, p):
    indptr, indices, w = _csr(edges_by_dst)
    r = aggregate_reference(indptr, indices, w, np.array(x), p)
    y, sats = _python_aggregate(edges_by_dst, x, p)
    assert r.y.dtype == np.int32
    assert r.y.tolist() == y
    assert r.saturations == sats
    return r


def test_hub_node_receives_every_edge():
    n = 40
    rng = np.random.default_rng(1)
    x = rng.integers(0, 16, (n, 3)).tolist()
    hub = [(s, int(rng.integers(0, 256))) for s in range(n)]
    leaves = [[(0, 200)] for _ in range(n - 1)]
    p = AggregationParams(S4, 2, S8, 0, 24, Requantizer(*derive_multiplier(1 / 3000, 16), 0, S4))
    r = _check([hub] + leaves, x, p)
    assert r.saturations == 0


def test_empty_rows_give_the_requantized_zero():
    x = [[3, 9], [15, 0], [7, 7]]
    rows = [[], [(0, 10), (2, 30)], [], [(1, 255)], []]
    out = Requantizer(*derive_multiplier(0.01, 16), 5, S4)
    upd = Requantizer(*derive_multiplier(1.7, 12), 2, S4)
    for u in (None, upd):
        p = AggregationParams(S4, 1, S8, 0, 20, out, upd=u)
        r = _check(rows, x, p)
        empty_val = out.zero_point if u is None else _requant(0, u)
        assert r.y[0].tolist() == r.y[2].tolist() == r.y[4].tolist() == [empty_val] * 2


def test_saturation_both_directions_is_counted_in_stream_order():
    # acc_bits = 8: range [-128, 127]; x - z in {-8..7}, w - z in {-128..127}
    x = [[15, 0], [0, 15]]
    rows = [[(0, 255), (1, 255), (0, 0)],      # lane 0: +7*127 clamps, then -8*127, then +7*-128
            [(1, 128), (1, 128)]]
    p = AggregationParams(S4, 8, S8, 128, 8, Requantizer(1, 0, 0, S8S))
    r = _check(rows, x, p)
    assert r.saturations > 0
    # hand computation, lane 0 of row 0: 889 -> 127; 127 - 1016 = -889 -> -128; -128 - 896 -> -128
    assert r.y[0, 0] == -128


def test_message_requantization_and_signed_codes():
    x = [[-2, 1, 0], [1, -1, -2], [0, 0, 1]]
    rows = [[(0, 3), (1, -4), (2, 1)], [(2, -4)], [(0, 0), (0, 3), (1, 2)]]
    sp2s = QuantSpec(2, signed=True)
    msg = Requantizer(*derive_multiplier(0.4, 8), 0, QuantSpec(4, signed=True))
    out = Requantizer(*derive_multiplier(0.6, 10), 0, sp2s)
    p = AggregationParams(sp2s, 0, QuantSpec(3, signed=True), 0, 6, out, msg=msg)
    _check(rows, x, p)


def test_hand_computed_int2_example():
    # x codes (z=1), w codes (z=0), acc 8 bits, out = round_shift(acc * 3, 2) + 1, INT2
    x = [[0, 3], [2, 1]]
    rows = [[(0, 2), (1, 3)], [(1, 1)]]
    p = AggregationParams(S2, 1, S2, 0, 8, Requantizer(3, 2, 1, S2))
    r = _check(rows, x, p)
    # row 0 lane 0: (0-1)*2 + (2-1)*3 = 1 -> (3 + 2) >> 2 = 1 -> +1 = 2
    # row 0 lane 1: (3-1)*2 + (1-1)*3 = 4 -> (12 + 2) >> 2 = 3 -> +1 = 4 -> clamp 3
    # row 1 lane 0: (2-1)*1 = 1 -> 2; lane 1: 0 -> 1
    assert r.y.tolist() == [[2, 3], [2, 1]]


@pytest.mark.parametrize("seed", range(6))
def test_random_small_graphs_with_saturating_accumulators(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 9))
    rows = [[(int(rng.integers(0, n)), int(rng.integers(0, 256)))
             for _ in range(int(rng.integers(0, 12)))] for _ in range(n)]
    x = rng.integers(0, 256, (n, 4)).tolist()
    p = AggregationParams(S8, int(rng.integers(0, 256)), S8, int(rng.integers(0, 256)),
                          int(rng.integers(10, 18)),
                          Requantizer(*derive_multiplier(float(rng.uniform(1e-4, 1e-2)), 16), 3, S8))
    _check(rows, x, p)


def test_codes_outside_spec_are_refused():
    p = AggregationParams(S2, 0, S8, 0, 12, Requantizer(1, 0, 0, S8))
    with pytest.raises(QuantError, match="x codes must be in \\[0, 3\\], not \\(4, 4\\)"):
        aggregate_reference(np.array([0, 1]), np.array([0]), np.array([1]), np.array([[4]]), p)
