"""Linear layers of integer codes computed in float BLAS: exact below the proven bound.

``sim.packed.gemm.exact_gemm_dtype`` picks float32 when ``K * max|x - z_x| * max|w - z_w|``
is below 2**24 and float64 below 2**53; every result here is compared with
``quant.reference.linear_accumulate`` (int64) and ``quant.reference.requantize`` with exact
equality, at the bound itself and with operands that drive every partial sum to it.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim.packed.gemm

from quant.reference import derive_multiplier, linear_accumulate, requantize
from quant.spec import QuantSpec
from sim.packed.gemm import (exact_gemm_dtype, gemm_exact_float, int32_gemm_exact,
                             linear_requant_exact, linear_requant_i32, requant_float_acc_i16)
from sim.packed.runner import PackedRunner
from sim.verify.random_models import GraphSpec, random_model


def test_dtype_choice_at_the_bounds():
    assert exact_gemm_dtype(1, 1, (1 << 24) - 1) is np.float32
    assert exact_gemm_dtype(1, 1, 1 << 24) is np.float64
    assert exact_gemm_dtype(1, 1, (1 << 53) - 1) is np.float64
    assert exact_gemm_dtype(1, 1, 1 << 53) is None
    assert exact_gemm_dtype(0, 255, 255) is np.float32


def _extreme_operands(rng, n, k, c, x_bits, x_zero, w_abs):
    """Codes at their extremes (every product at +-max) mixed with random ones, so the
    partial sums of some rows reach the bound and others are odd (low bits set)."""
    xs = QuantSpec(x_bits)
    x = rng.integers(xs.qmin, xs.qmax + 1, size=(n, k))
    x[: n // 2] = np.where(rng.random((n // 2, k)) < 0.8,
                           xs.qmax if xs.qmax - x_zero >= x_zero - xs.qmin else xs.qmin,
                           x[: n // 2])
    w = rng.integers(-w_abs, w_abs + 1, size=(c, k))
    w[0] = w_abs                       # column 0: every product of an extreme row is +max
    w[1] = np.where(np.arange(k) % 2 == 0, w_abs, w_abs - 1)   # odd partial sums
    return x, w


@pytest.mark.parametrize("k, x_bits, x_zero, w_abs, expect", [
    (255, 8, 0, 258, np.float32),        # 255 * 255 * 258 = 2**24 - 766
    (64, 8, 128, 2047, np.float32),      # 64 * 128 * 2047 < 2**24
    (300, 8, 0, 255, np.float64),        # 300 * 255 * 255 > 2**24
    (1433, 4, 3, 127, np.float32),       # Cora's input width at INT4: 1433 * 12 * 127
    (1433, 8, 3, 127, np.float64),       # ... at INT8
])
def test_gemm_exact_float_equals_int64(k, x_bits, x_zero, w_abs, expect):
    rng = np.random.default_rng(k)
    x, w = _extreme_operands(rng, 96, k, 7, x_bits, x_zero, w_abs)
    xmax = int(np.abs(x - x_zero).max())
    dtype = exact_gemm_dtype(k, xmax, w_abs)
    assert dtype is expect
    acc = gemm_exact_float(x.astype(np.int16), x_zero, np.ascontiguousarray(w.T.astype(dtype)))
    ref = linear_accumulate(x, x_zero, w, 0)
    assert acc.dtype == dtype
    assert np.array_equal(acc.astype(np.int64), ref)


def test_float32_beyond_the_bound_is_not_exact():
    """The bound matters: past 2**24 float32 loses low bits that float64 keeps."""
    k = 1024
    x = np.full((4, k), 255, dtype=np.int16)
    w = np.full((2, k), 127, dtype=np.int64)
    w[1, ::2] = 126
    x[:, 0] = 254                      # an odd total beyond 2**24 in row 0 of the product
    ref = linear_accumulate(x, 0, w, 0)
    assert exact_gemm_dtype(k, 255, 127) is np.float64
    f32 = gemm_exact_float(x, 0, np.ascontiguousarray(w.T.astype(np.float32)))
    f64 = gemm_exact_float(x, 0, np.ascontiguousarray(w.T.astype(np.float64)))
    assert not np.array_equal(f32.astype(np.int64), ref)
    assert np.array_equal(f64.astype(np.int64), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_requant_float_acc_equals_reference(dtype):
    rng = np.random.default_rng(7)
    acc = rng.integers(-(1 << 23), 1 << 23, size=(200, 9))
    bias = rng.integers(-(1 << 20), 1 << 20, size=9)
    spec = QuantSpec(4)
    for ratio in (1e-6, 3.7e-5, 0.01):
        m, n = derive_multiplier(ratio, 16)
        got = requant_float_acc_i16(acc.astype(dtype), bias, m, n, 3, spec.qmin, spec.qmax)
        assert np.array_equal(got.astype(np.int64), requantize(acc + bias, m, n, 3, spec))


@pytest.mark.parametrize("force_f64", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_runner_linear_layers_exact_in_either_dtype(monkeypatch, seed, force_f64):
    """The whole model through PackedRunner equals IntModel.run with the linear layers on
    the float32 path (as chosen) and with float64 forced (the int32 loop nest for small
    layers switched off)."""
    import sim.packed.runner

    monkeypatch.setattr(sim.packed.runner, "SMALL_GEMM_MACS", 0)
    if force_f64:
        monkeypatch.setattr(sim.packed.gemm, "_F32_EXACT", 0)
    gs = GraphSpec(num_nodes=50, avg_degree=4, hub_degree=20, isolated=0.1, self_loops=True,
                   duplicates=True)
    model, x = random_model(seed, ("gcn", "appnp", "smp")[seed], bits=(2, 4, 8)[seed], graph=gs)
    runner = PackedRunner(model)
    env, _ = runner.run(x)
    ref = model.run(x)
    assert not [k for k, why in runner.fallbacks.items() if why.startswith("GEMM")]
    for k, v in ref.items():
        assert np.array_equal(np.asarray(v).astype(np.int64), env[k].astype(np.int64)), k


@pytest.mark.parametrize("chunk_rows", [1, 7, 96, 1000])
def test_linear_requant_exact_chunks(chunk_rows):
    """Row chunking (buffers reused, a short last chunk) does not change a code."""
    rng = np.random.default_rng(chunk_rows)
    x, w = _extreme_operands(rng, 96, 64, 11, 8, 5, 127)
    bias = rng.integers(-(1 << 18), 1 << 18, size=11)
    spec = QuantSpec(4)
    m, n = derive_multiplier(2e-5, 16)
    dtype = exact_gemm_dtype(64, int(np.abs(x - 5).max()), 127)
    got = linear_requant_exact(x.astype(np.int16), 5, np.ascontiguousarray(w.T.astype(dtype)),
                                  bias, m, n, 2, spec.qmin, spec.qmax, chunk_rows=chunk_rows)
    ref = requantize(linear_accumulate(x, 5, w, 0, bias), m, n, 2, spec)
    assert got.dtype == np.int16 and np.array_equal(got.astype(np.int64), ref)


@pytest.mark.parametrize("k, c, block", [(1, 1, 1), (10, 64, 64), (64, 2, 7), (33, 17, 64)])
def test_linear_requant_i32_equals_reference_at_the_bound(k, c, block):
    """The int32 loop nest equals linear_accumulate + requantize, with operands whose every
    partial sum reaches the int32 bound's neighbourhood."""
    rng = np.random.default_rng(k * 100 + c)
    w_abs = (1 << 31) // (k * 255) - 1  # k * 255 * w_abs just below 2**31
    assert int32_gemm_exact(k, 255, w_abs) and not int32_gemm_exact(k, 255, w_abs + 2)
    x = np.where(rng.random((50, k)) < 0.5, 0, 255)  # x - 0 in {0, 255}
    w = np.where(rng.random((c, k)) < 0.5, -w_abs, w_abs)
    x[0] = 255
    w[0] = w_abs  # row 0 / column 0: every partial sum at its extreme
    bias = rng.integers(-(1 << 20), 1 << 20, size=c)
    spec = QuantSpec(8)
    for ratio in (1e-9, 3.7e-7):
        m, n = derive_multiplier(ratio, 16)
        got = linear_requant_i32(x.astype(np.int16), 0, np.ascontiguousarray(w.T.astype(np.int32)),
                                 bias, m, n, 3, spec.qmin, spec.qmax, block)
        ref = requantize(linear_accumulate(x, 0, w, 0, bias), m, n, 3, spec)
        assert got.dtype == np.int16 and np.array_equal(got.astype(np.int64), ref)


@pytest.mark.parametrize("seed", range(3))
def test_runner_small_linear_layers_take_the_int32_path(seed):
    gs = GraphSpec(num_nodes=50, avg_degree=4, hub_degree=20, isolated=0.1, self_loops=True,
                   duplicates=True)
    model, x = random_model(seed, ("gcn", "appnp", "smp")[seed], bits=(2, 4, 8)[seed], graph=gs)
    runner = PackedRunner(model)
    env, _ = runner.run(x)
    assert any(key[1] is np.int32 for key in runner._float_weights)
    ref = model.run(x)
    for k, v in ref.items():
        assert np.array_equal(np.asarray(v).astype(np.int64), env[k].astype(np.int64)), k
