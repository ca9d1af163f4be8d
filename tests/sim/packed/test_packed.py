"""The packed-plane kernel (sim.packed) equals the reference exactly: random and
adversarial cases (hub rows, empty rows, extreme codes and zero points, weight zero points,
long rows that force the uint32 planes to flush, saturating rows, update requantization)."""

from __future__ import annotations

import numpy as np
import pytest

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.pack import pack_codes
from quant.reference import acc_bits_required, derive_multiplier
from quant.spec import QuantSpec
from sim.exact import functional as fn
from sim.packed import propagate
from quagga.bench.fp32_spmm import spmm_f32
from sim.packed.layout import pack_rows, unpack_rows
from sim.packed.thresholds import level_thresholds, vector_rows_supported
from sim.design.point import DesignPoint
from sim.verify.golden import KINDS, make_random_case


def _check(indptr, indices, w, x, params, f=None):
    f = x.shape[1] if f is None else f
    xb = propagate.pack_operand(x, params.x_spec)
    r = propagate.aggregate_packed(indptr, indices, w, xb, f, params)
    ref = aggregate_reference(indptr, indices, w, x, params)
    assert r.y.dtype == np.int16
    assert np.array_equal(r.y.astype(np.int32), ref.y)
    assert r.saturations == ref.saturations
    # the packed output (what the unit writes for the next layer) holds the same codes
    rp = propagate.aggregate_packed(indptr, indices, w, xb, f, params, packed_out=True)
    assert rp.y.dtype == np.uint8
    assert np.array_equal(rp.y, propagate.pack_operand(ref.y, params.y_spec))
    assert rp.saturations == ref.saturations
    return r, ref


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_packed_equals_reference(bits, signed, kind):
    dp = DesignPoint(bits=bits, signed=signed, upd_requant=kind in ("hub", "empty"), max_degree=32)
    for seed, f in ((1, None), (2, 7), (3, 100), (4, 3), (5, 2)):
        c = make_random_case(dp, seed, kind=kind, num_features=f)
        assert propagate.packed_supported(c.params)
        _check(c.indptr, c.indices, c.w, c.x, c.params, c.num_features)


def test_pack_operand_is_quant_pack_of_offset_codes():
    rng = np.random.default_rng(0)
    for bits in (1, 2, 4, 8):
        for signed in (False, True):
            spec = QuantSpec(bits, signed=signed)
            x = rng.integers(spec.qmin, spec.qmax + 1, (9, 13))
            want = pack_codes(x + propagate.packed_offset(spec), bits)
            assert np.array_equal(propagate.pack_operand(x, spec), want)


def _params(bits, x_zero, w_bits, w_zero, acc_bits, signed=False, upd=False, out_zero=None):
    xs, ws = QuantSpec(bits, signed=signed), QuantSpec(w_bits)
    m, n = derive_multiplier(0.37 / (1 << w_bits), 16)
    oz = xs.qmin if out_zero is None else out_zero
    u = Requantizer(*derive_multiplier(1.3, 16), xs.qmax, xs) if upd else None
    return AggregationParams(xs, x_zero, ws, w_zero, acc_bits, Requantizer(m, n, oz, xs), upd=u)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_extremes_and_long_rows(bits):
    """Max codes, zero points at both ends of the range, non-zero weight zero point, and a
    hub row long enough to make the uint32 planes flush (sum of weights > 2**32 / umax)."""
    rng = np.random.default_rng(bits)
    xs = QuantSpec(bits)
    n, f = 40, 19
    hub = 70_000 if bits == 8 else 2000  # INT8: 70k edges * 255 > (2**32-1) // 255
    deg = rng.integers(0, 5, n)
    deg[3] = hub
    deg[7] = 0
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    e = int(indptr[-1])
    indices = rng.integers(0, n, e)
    for x_zero in (xs.qmin, xs.qmax, xs.qmax // 2):
        for w_zero in (0, 3, 255):
            x = np.full((n, f), xs.qmax, dtype=np.int64)
            x[::2] = rng.integers(0, xs.qmax + 1, (len(x[::2]), f))
            w = np.full(e, 255, dtype=np.int64)
            w[::3] = rng.integers(0, 256, len(w[::3]))
            acc = acc_bits_required(bits, 8, hub) + 1
            for upd in (False, True):
                _check(indptr, indices, w, x, _params(bits, x_zero, 8, w_zero, acc, upd=upd))


def test_saturating_rows_use_exact_path():
    """An accumulator far too narrow: every long row saturates, counted like the reference."""
    rng = np.random.default_rng(5)
    n, f = 30, 8
    indptr = np.concatenate([[0], np.cumsum(rng.integers(0, 40, n))]).astype(np.int64)
    indices = rng.integers(0, n, int(indptr[-1]))
    w = rng.integers(0, 256, indices.size)
    for signed in (False, True):
        xs = QuantSpec(4, signed=signed)
        x = rng.integers(xs.qmin, xs.qmax + 1, (n, f))
        p = _params(4, xs.qmin if not signed else 0, 8, 0, 12, signed=signed)
        r, ref = _check(indptr, indices, w, x, p)
        assert ref.saturations > 0


def test_compact_index_dtypes_give_same_result():
    c = make_random_case(DesignPoint(bits=2, max_degree=32), 9, kind="hub", num_features=64)
    xb = propagate.pack_operand(c.x, c.params.x_spec)
    ref = aggregate_reference(c.indptr, c.indices, c.w, c.x, c.params)
    for dt in (np.uint16, np.int32, np.int64):
        r = propagate.aggregate_packed(c.indptr, c.indices.astype(dt), c.w.astype(np.uint8), xb,
                                c.num_features, c.params, validate=False)
        assert np.array_equal(r.y.astype(np.int32), ref.y)
    assert propagate.compact_indices(c.indices, 70_000).dtype == np.int32
    assert propagate.compact_indices(c.indices, 65_536).dtype == np.uint16


def test_spmm_f32_matches_numpy():
    rng = np.random.default_rng(1)
    n, f = 50, 33
    indptr = np.concatenate([[0], np.cumsum(rng.integers(0, 6, n))]).astype(np.int64)
    indices = rng.integers(0, n, int(indptr[-1])).astype(np.int32)
    w = rng.random(indices.size).astype(np.float32)
    x = rng.standard_normal((n, f)).astype(np.float32)
    y = spmm_f32(indptr, indices, w, x, 8)
    want = np.zeros((n, f), np.float64)
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            want[i] += w[e] * x[indices[e]].astype(np.float64)
    assert np.allclose(y, want, rtol=1e-5, atol=1e-5)  # float kernel: a tolerance is right here


def test_packed_refuses_message_stage():
    c = make_random_case(DesignPoint(bits=4, msg_requant=True), 1)
    assert not propagate.packed_supported(c.params)
    with pytest.raises(ValueError, match="packed kernel"):
        propagate.aggregate_packed(c.indptr, c.indices, c.w, propagate.pack_operand(c.x, c.params.x_spec),
                            c.num_features, c.params)


def test_packed_validates_operand_shape():
    c = make_random_case(DesignPoint(bits=4), 1, num_features=10)
    xb = propagate.pack_operand(c.x, c.params.x_spec)
    with pytest.raises(ValueError, match="xb"):
        propagate.aggregate_packed(c.indptr, c.indices, c.w, xb[:, :-1], c.num_features, c.params)


@pytest.mark.parametrize("in_bits,out_bits", [(2, 4), (2, 8), (4, 2), (8, 1), (1, 2), (4, 8)])
@pytest.mark.parametrize("f", [1, 5, 13, 64])
def test_packed_out_other_width(in_bits, out_bits, f):
    """Output codes of another width than the input pack lane by lane (padding lanes zero)."""
    rng = np.random.default_rng(in_bits * 100 + out_bits * 10 + f)
    xs, ys = QuantSpec(in_bits), QuantSpec(out_bits, signed=out_bits > 2)
    n, e = 40, 300
    indptr = np.concatenate([[0], np.sort(rng.integers(0, e + 1, n - 1)), [e]]).astype(np.int64)
    indices = rng.integers(0, n, e)
    w = rng.integers(0, 256, e)
    x = rng.integers(xs.qmin, xs.qmax + 1, (n, f))
    m, sh = derive_multiplier(ys.levels / (8.0 * 255 * xs.levels), 16)
    params = AggregationParams(xs, 0, QuantSpec(8), 0, acc_bits_required(in_bits, 8, e),
                               Requantizer(m, sh, 0 if not ys.signed else -1, ys))
    _check(indptr, indices, w, x, params, f)


def _random_chain(rng):
    """A random monotone requantizer chain of at most 16 output levels (signed or not)."""
    os_ = QuantSpec(int(rng.choice([2, 4, 8])), signed=bool(rng.random() < 0.4))
    if rng.random() < 0.15:
        m, sh = int(rng.integers(0, 3)), int(rng.integers(0, 3))  # zero multiplier, tiny shifts
    else:
        m, sh = derive_multiplier(float(10 ** rng.uniform(-5, 0.5)), int(rng.choice([8, 16, 31])))
    out = Requantizer(m, max(sh, 0), int(rng.integers(os_.qmin, os_.qmax + 1)), os_)
    upd = None
    if rng.random() < 0.5 or os_.bits == 8:
        us = QuantSpec(int(rng.choice([1, 2, 4])), signed=bool(rng.random() < 0.4))
        um, un = ((0, 0) if rng.random() < 0.1
                  else derive_multiplier(float(10 ** rng.uniform(-2.5, 1)), 16))
        upd = Requantizer(um, max(un, 0), int(rng.integers(us.qmin, us.qmax + 1)), us)
    return out, upd


def test_level_thresholds_equal_the_requantizer_chain():
    """``fqmin + #{D >= theta}`` equals out (then update) requantization of every sum ``D``
    near each threshold and on a wide grid, for random chains (zero multipliers included)."""
    rng = np.random.default_rng(11)
    for _ in range(400):
        out, upd = _random_chain(rng)
        ua = fn.rq_args(upd)
        th = level_thresholds(out.multiplier, out.shift, out.zero_point, out.spec.qmin,
                                 out.spec.qmax, *ua)
        fin = upd.spec if upd is not None else out.spec
        assert th is not None and len(th) == fin.qmax - fin.qmin
        assert np.all(np.diff(th) >= 0)
        finite = th[np.abs(th) < (1 << 40)]
        d = np.unique(np.concatenate([np.arange(-70_000, 70_000, 7), finite - 1, finite,
                                      finite + 1]))
        want = out(d)
        if upd is not None:
            want = upd(want - out.zero_point)
        got = fin.qmin + (d[:, None] >= th[None, :]).sum(axis=1)
        assert np.array_equal(got, want)
    # not monotone / too many levels: no thresholds
    s8 = QuantSpec(8)
    assert level_thresholds(3, 2, 0, s8.qmin, s8.qmax, False, 0, 0, 0, 0, 0) is None
    assert level_thresholds(3, -1, 0, 0, 3, False, 0, 0, 0, 0, 0) is None


@pytest.mark.parametrize("bits,f", [(2, 64), (2, 63), (2, 128), (2, 192), (4, 32), (4, 31),
                                    (4, 64), (4, 96), (2, 16), (2, 15), (2, 32), (2, 48),
                                    (2, 80), (4, 8), (4, 7), (4, 16), (4, 24), (4, 40)])
def test_vector_row_kernel_equals_reference(bits, f):
    """Rows of 4-, 8-, 16- and 32-byte chunks written packed take the vector-IR kernel
    (sim.packed.row_vector_ir): random zero points, update stages, hub rows past the weight-sum
    budget (sent to the general path), saturating accumulators, full-scale weights."""
    rng = np.random.default_rng(bits * 1000 + f)
    xs = QuantSpec(bits, signed=bool(f % 2))
    for trial in range(6):
        n = 50
        deg = rng.integers(0, 14, n)
        deg[rng.random(n) < 0.1] = 0
        if trial % 2:
            deg[int(rng.integers(0, n))] = 30_000 // (xs.levels - 1)  # past 65535 // umax
        indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
        e = int(indptr[-1])
        indices = rng.integers(0, n, e)
        w = rng.integers(0, 256, e) if trial != 2 else np.full(e, 255)
        x = rng.integers(xs.qmin, xs.qmax + 1, (n, f))
        x_zero = int(rng.integers(xs.qmin, xs.qmax + 1))
        safe = acc_bits_required(bits, 8, int(deg.max())) + 1
        acc = safe if trial != 4 else safe - 6
        m, sh = derive_multiplier(float(rng.uniform(0.3, 3.0)) * xs.levels / (10 * 128 * xs.levels), 16)
        out = Requantizer(m, sh, int(rng.integers(xs.qmin, xs.qmax + 1)), xs)
        upd = (Requantizer(*derive_multiplier(float(rng.uniform(0.5, 2.0)), 16),
                           int(rng.integers(xs.qmin, xs.qmax + 1)), xs) if trial >= 3 else None)
        params = AggregationParams(xs, x_zero, QuantSpec(8), 0, acc, out, upd=upd)
        th = level_thresholds(out.multiplier, out.shift, out.zero_point, xs.qmin, xs.qmax,
                                 *fn.rq_args(upd))
        assert vector_rows_supported(bits, -(-f * bits // 8), bits, 0, th)
        _check(indptr, indices, w, x, params, f)


def _fuzz_case(seed: int):
    """One seeded random propagation step for the packed kernel: any width and signedness,
    1..80 features, hub rows long enough to fail the uint16 weight-sum check, empty rows,
    self loops and duplicate edges, narrow (saturating) or safe accumulators, weight zero
    points, update requantizers, positive, zero and negative shifts, outputs of any width."""
    rng = np.random.default_rng(seed)
    bits = int(rng.choice([1, 2, 4, 8], p=[0.1, 0.4, 0.35, 0.15]))
    xs = QuantSpec(bits, signed=bool(rng.random() < 0.3))
    n = int(rng.integers(2, 60))
    f = int(rng.choice([1, 2, 3, 7, 8, 16, 32, 33, 64, 127, 128, int(rng.integers(1, 81))]))
    deg = rng.integers(0, 12, n)
    deg[rng.random(n) < 0.15] = 0
    if rng.random() < 0.4:
        deg[int(rng.integers(0, n))] = int(rng.integers(100, 400))  # S_w past 65535 // umax
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    e = int(indptr[-1])
    indices = rng.integers(0, n, e)
    if e and rng.random() < 0.5:
        rows = np.repeat(np.arange(n), deg)
        loops = rng.random(e) < 0.2
        indices[loops] = rows[loops]  # self loops
        indices[1::3] = indices[::3][:len(indices[1::3])]  # duplicates
    w_bits = int(rng.choice([8, 8, 8, 4, 6]))
    ws = QuantSpec(w_bits)
    w = rng.integers(0, ws.qmax + 1, e)
    if rng.random() < 0.3:
        w[:] = ws.qmax
    w_zero = 0 if rng.random() < 0.7 else int(rng.integers(0, ws.qmax + 1))
    x_zero = int(rng.integers(xs.qmin, xs.qmax + 1))
    x = rng.integers(xs.qmin, xs.qmax + 1, (n, f))
    if rng.random() < 0.3:
        x[:] = xs.qmax if rng.random() < 0.5 else xs.qmin
    safe = acc_bits_required(bits, w_bits, max(1, int(deg.max(initial=1)))) + 1
    acc = safe if rng.random() < 0.75 else int(rng.integers(max(bits + w_bits - 2, 4), safe + 1))
    ys = (QuantSpec(int(rng.choice([1, 2, 4, 8])), signed=bool(rng.random() < 0.3))
          if rng.random() < 0.5 else xs)  # half the cases pack at the input width
    mean = max(1.0, float(deg.mean())) * (ws.qmax / 2) * (xs.levels / 2)
    m, sh = derive_multiplier(float(rng.uniform(0.2, 4.0)) * ys.levels / (2 * mean), 16)
    if rng.random() < 0.1:
        m, sh = int(rng.integers(1, 4)), int(rng.integers(-2, 1))  # zero and negative shifts
    out = Requantizer(m, sh, int(rng.integers(ys.qmin, ys.qmax + 1)), ys)
    upd = None
    if rng.random() < 0.4:
        us = QuantSpec(int(rng.choice([2, 4, 8])), signed=bool(rng.random() < 0.3))
        upd = Requantizer(*derive_multiplier(float(rng.uniform(0.3, 3.0)) * us.levels / ys.levels, 16),
                          int(rng.integers(us.qmin, us.qmax + 1)), us)
    return indptr, indices, w, x, AggregationParams(xs, x_zero, ws, w_zero, acc, out, upd=upd), f


def _fuzz(seeds):
    checked = 0
    for seed in seeds:
        indptr, indices, w, x, params, f = _fuzz_case(seed)
        if not propagate.packed_supported(params):
            continue
        _check(indptr, indices, w, x, params, f)
        checked += 1
    return checked


def test_packed_fuzz_seeded_share():
    """CI share of the packed-kernel fuzz (the full count runs with --runslow)."""
    assert _fuzz(range(150)) >= 100


@pytest.mark.slow
def test_packed_fuzz_full():
    assert _fuzz(range(150, 2150)) >= 1500


@pytest.mark.parametrize("bits, signed, f", [(1, False, 13), (2, False, 16), (2, True, 7),
                                             (4, False, 9), (4, True, 32), (8, True, 5)])
def test_unpack_rows_inverts_pack_rows(bits, signed, f):
    spec = QuantSpec(bits, signed=signed)
    rng = np.random.default_rng(bits * 10 + f)
    q = rng.integers(spec.qmin, spec.qmax + 1, size=(37, f))
    off = propagate.packed_offset(spec)
    packed = pack_rows(q, off, bits, 8)
    assert np.array_equal(unpack_rows(packed, off, bits, f, 8).astype(np.int64), q)


@pytest.mark.parametrize("bits,f", [(2, 64), (2, 128), (4, 32), (4, 64), (2, 60), (4, 120)])
def test_vnni_row_sums_equal_edge_loop(bits, f):
    """8-bit weights take the four-edges-per-``vpdpbusd`` sums where the CPU has AVX-512 VNNI
    (sim.packed.row_vnni_ir); 16-bit weights of the same values take the edge-at-a-time loop.
    Both equal the reference for every degree remainder mod 4, all-255 weights and extreme
    codes."""
    from sim.packed.row_vnni_ir import HOST_VNNI

    rng = np.random.default_rng(bits * 100 + f)
    xs = QuantSpec(bits)
    n = 70
    deg = np.concatenate([np.arange(0, 14), rng.integers(0, 40, n - 14)])
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    e = int(indptr[-1])
    indices = rng.integers(0, n, e)
    for trial in range(3):
        w = rng.integers(0, 256, e) if trial else np.full(e, 255)
        x = rng.integers(xs.qmin, xs.qmax + 1, (n, f))
        if trial == 2:
            x[::2] = xs.qmax
        m, sh = derive_multiplier(xs.levels / (2 * 20 * 128 * xs.qmax), 16)
        out = Requantizer(m, sh, 0, xs)
        params = AggregationParams(xs, 0, QuantSpec(8), 0, acc_bits_required(bits, 8, 40) + 1, out)
        xb = propagate.pack_operand(x, xs)
        ref = propagate.pack_operand(aggregate_reference(indptr, indices, w, x, params).y, xs)
        for wd in (np.uint8, np.uint16):
            r = propagate.aggregate_packed(indptr, indices, w.astype(wd), xb, f, params,
                                           packed_out=True)
            assert np.array_equal(r.y, ref), (wd, HOST_VNNI)
