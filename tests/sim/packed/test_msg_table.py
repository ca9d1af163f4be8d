"""The message-requantizer table path (sim.packed.msg_table) equals the reference exactly:
golden-case kinds (hub, empty, self-loop, duplicate, saturating rows), hypothesis-generated
specs (signed and unsigned codes, zero points, narrow accumulators, weight widths), and the
whole-model runner with message requantization on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.spec import QuantSpec
from sim.design.point import DesignPoint
from sim.exact import functional as fn
from sim.packed import msg_table, propagate
from sim.verify.golden import KINDS, make_random_case


def _check(indptr, indices, w, x, params, f=None):
    f = x.shape[1] if f is None else f
    xb = propagate.pack_operand(x, params.x_spec)
    ref = aggregate_reference(indptr, indices, w, x, params)
    for byte_table in (True, False, None):  # byte-level and per-lane tables, and the default
        r = msg_table.aggregate_table(indptr, indices, w, xb, f, params, byte_table=byte_table)
        assert r.y.dtype == np.int16
        assert np.array_equal(r.y.astype(np.int32), ref.y)
        assert r.saturations == ref.saturations
    ex = fn.aggregate(indptr, indices, w, x, params)
    assert np.array_equal(r.extra["row_saturations"], ex.extra["row_saturations"])
    return r, ref


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_table_equals_reference_on_golden_kinds(bits, signed, kind):
    dp = DesignPoint(bits=bits, signed=signed, msg_requant=True, upd_requant=kind in ("hub", "empty"),
                     max_degree=32)
    for seed, f in ((1, None), (2, 7), (3, 100), (4, 3), (5, 2)):
        c = make_random_case(dp, seed, kind=kind, num_features=f, msg=True)
        assert c.params.msg is not None
        assert msg_table.table_supported(c.params)
        assert not propagate.packed_supported(c.params)
        _check(c.indptr, c.indices, c.w, c.x, c.params, c.num_features)


def test_message_table_is_the_reference_message_stage():
    rng = np.random.default_rng(0)
    for bits in (2, 4):
        xs, ws = QuantSpec(bits, signed=True), QuantSpec(5, signed=True)
        msg = Requantizer(40000, 14, 1, QuantSpec(3, signed=True))
        p = AggregationParams(xs, -1, ws, 3, 12, Requantizer(30000, 15, 0, xs), msg=msg)
        tab, row_max = msg_table.message_table(p)
        q = rng.integers(xs.qmin, xs.qmax + 1, 200)
        w = rng.integers(ws.qmin, ws.qmax + 1, 200)
        want = msg((q - p.x_zero) * (w - p.w_zero)).astype(np.int64) - msg.zero_point
        got = tab[w - ws.qmin, q + propagate.packed_offset(xs)]
        assert np.array_equal(got, want)
        assert np.array_equal(row_max, np.abs(tab).max(axis=1))


@st.composite
def _cases(draw):
    bits = draw(st.sampled_from([1, 2, 4, 8]))
    signed = draw(st.booleans())
    xs = QuantSpec(bits, signed=signed)
    wbits = draw(st.sampled_from([1, 2, 4, 8]))
    ws = QuantSpec(wbits, signed=draw(st.booleans()))
    x_zero = draw(st.integers(xs.qmin, xs.qmax))
    w_zero = draw(st.integers(ws.qmin, ws.qmax))
    mbits = draw(st.sampled_from([2, 4, 8]))
    ms = QuantSpec(mbits, signed=draw(st.booleans()))
    msg = Requantizer(draw(st.integers(0, 1 << 16)), draw(st.integers(0, 20)),
                      draw(st.integers(ms.qmin, ms.qmax)), ms)
    acc_bits = draw(st.integers(3, 20))  # narrow accumulators saturate often
    os_ = QuantSpec(draw(st.sampled_from([2, 4, 8])), signed=draw(st.booleans()))
    out = Requantizer(draw(st.integers(0, 1 << 16)), draw(st.integers(0, 20)),
                      draw(st.integers(os_.qmin, os_.qmax)), os_)
    upd = None
    if draw(st.booleans()):
        us = QuantSpec(draw(st.sampled_from([2, 4, 8])), signed=draw(st.booleans()))
        upd = Requantizer(draw(st.integers(0, 1 << 16)), draw(st.integers(0, 20)),
                          draw(st.integers(us.qmin, us.qmax)), us)
    params = AggregationParams(xs, x_zero, ws, w_zero, acc_bits, out, msg=msg, upd=upd)
    n = draw(st.integers(1, 12))
    f = draw(st.integers(1, 40))
    # degrees: empty rows, ordinary rows and one hub
    deg = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    if draw(st.booleans()):
        deg[draw(st.integers(0, n - 1))] = draw(st.integers(20, 200))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    return params, np.asarray(deg, dtype=np.int64), f, seed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_table_equals_reference_hypothesis(case):
    params, deg, f, seed = case
    rng = np.random.default_rng(seed)
    n = deg.size
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    indices = rng.integers(0, n, int(indptr[-1]))
    xs, ws = params.x_spec, params.w_spec
    # extreme codes are frequent: they drive the saturating rows
    x = np.where(rng.random((n, f)) < 0.3, rng.choice([xs.qmin, xs.qmax], (n, f)),
                 rng.integers(xs.qmin, xs.qmax + 1, (n, f)))
    w = np.where(rng.random(indices.size) < 0.3, rng.choice([ws.qmin, ws.qmax], indices.size),
                 rng.integers(ws.qmin, ws.qmax + 1, indices.size))
    assert msg_table.table_supported(params)
    _check(indptr, indices, w, x, params, f)


def test_table_index_dtypes_and_block_sizes_agree():
    dp = DesignPoint(bits=2, msg_requant=True, upd_requant=True, max_degree=32)
    c = make_random_case(dp, 7, kind="hub", num_nodes=300, num_features=64, msg=True)
    xb = propagate.pack_operand(c.x, c.params.x_spec)
    want = aggregate_reference(c.indptr, c.indices, c.w, c.x, c.params)
    for dt in (np.uint16, np.int32, np.int64):
        for block in (1, 7, 64):
            r = msg_table.aggregate_table(c.indptr, c.indices.astype(dt), c.w, xb, 64, c.params,
                                          block=block)
            assert np.array_equal(r.y.astype(np.int32), want.y)


def test_table_refuses_steps_without_a_message_stage():
    dp = DesignPoint(bits=2, max_degree=8)
    c = make_random_case(dp, 1, msg=False)
    assert not msg_table.table_supported(c.params)
    with pytest.raises(Exception, match="table"):
        msg_table.aggregate_table(c.indptr, c.indices, c.w,
                                  propagate.pack_operand(c.x, c.params.x_spec), c.num_features,
                                  c.params)


@pytest.mark.parametrize("seed", range(6))
def test_runner_with_message_requantizers_equals_reference(seed):
    """Whole random models with message requantizers: PackedRunner (table path, no fallback
    for the propagations) equals IntModel.run on every stage."""
    from sim.packed.runner import PackedRunner
    from sim.verify.random_models import GraphSpec, random_model

    arch = ("gcn", "appnp", "smp")[seed % 3]
    gs = GraphSpec(num_nodes=50, avg_degree=4, hub_degree=40, isolated=0.2, self_loops=True,
                   duplicates=seed % 2 == 0)
    model, x = random_model(seed, arch, bits=(2, 4, 8)[seed % 3], graph=gs,
                            narrow_acc=seed % 2 == 1, msg=True, upd=seed >= 3)
    runner = PackedRunner(model)
    assert runner._tables and not set(runner._tables) & set(runner.fallbacks)
    env, sats = runner.run(x)
    ref = model.run(x)
    for k, v in ref.items():
        assert np.array_equal(np.asarray(v).astype(np.int64), env[k].astype(np.int64)), k


@pytest.mark.parametrize("bits, f", [(2, 4), (2, 64), (4, 2), (4, 33)])
def test_swar_slots_flush_on_long_rows(bits, f):
    """8-bit messages of large magnitude (bias 128, so the 16-bit slots are flushed every
    255 edges) on rows of up to 1500 edges, with a wide accumulator: the byte-level table
    path equals the reference."""
    xs, ws, ms = QuantSpec(bits), QuantSpec(8), QuantSpec(8, signed=True)
    msg = Requantizer(1 << 15, 8, 0, ms)
    p = AggregationParams(xs, 1, ws, 0, 24, Requantizer(1, 6, 1, xs), msg=msg)
    tab, _ = msg_table.message_table(p)
    sw, bias, chunk = msg_table.swar_table(tab, bits)
    assert sw.shape == (256, 256) and chunk == 65535 // (2 * bias) < 300
    rng = np.random.default_rng(bits + f)
    deg = np.array([0, 1, 1500, 700, chunk + 1, chunk, chunk - 1, 3])
    indptr = np.concatenate([[0], np.cumsum(deg)])
    indices = rng.integers(0, deg.size, int(indptr[-1]))
    w = rng.integers(200, 256, indices.size)
    x = rng.integers(xs.qmin, xs.qmax + 1, (deg.size, f))
    r, ref = _check(indptr, indices, w, x, p, f)
    assert ref.saturations == 0
