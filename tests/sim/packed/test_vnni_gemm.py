"""The int8 dot-product GEMM (sim.packed.vnni_gemm) equals the reference integer GEMM and
requantizer exactly, at the operand extremes (codes 0 / 255 and -128 / 127, weights -128 /
127, the widest inner dimension), for inner and output sizes that are not multiples of 4 / 16;
the runner uses it where the CPU has the instruction."""

from __future__ import annotations

import numpy as np
import pytest

from quant.reference import linear_accumulate, requantize
from quant.spec import QuantSpec
from sim.packed import vnni_gemm

pytestmark = pytest.mark.skipif(not vnni_gemm.vnni_available(),
                                reason="the CPU has no AVX-512 VNNI")


def _check(x, x_zero, w, w_zero, bias, m=12345, n=20, z=3, spec=QuantSpec(8, signed=True)):
    wc = w.astype(np.int64) - w_zero
    assert vnni_gemm.vnni_layer_ok(w.shape[1], wc)
    got = vnni_gemm.linear_requant_vnni(x, x_zero, vnni_gemm.pack_weights_vnni(wc.T), bias, m, n,
                                        z, spec.qmin, spec.qmax, block=8)
    want = requantize(linear_accumulate(x, x_zero, w, w_zero, bias), m, n, z, spec)
    assert got is not None and got.dtype == np.int16
    assert np.array_equal(got.astype(np.int64), want.astype(np.int64))


@pytest.mark.parametrize("k, c", [(1, 1), (3, 5), (4, 16), (10, 64), (17, 33), (64, 2), (301, 7)])
@pytest.mark.parametrize("signed", [False, True])
def test_vnni_equals_reference(k, c, signed):
    rng = np.random.default_rng(k * 100 + c)
    lo, hi = (-128, 127) if signed else (0, 255)
    x = rng.integers(lo, hi + 1, (37, k))
    x[0] = lo
    x[1] = hi
    w = rng.integers(-128, 128, (c, k))
    w[0] = -128
    if c > 1:
        w[1] = 127
    bias = rng.integers(-(1 << 20), 1 << 20, c)
    _check(x, int(rng.integers(lo, hi + 1)), w, 0, bias, m=1 << 10, n=16)
    _check(x, lo, w, 0, bias)


def test_vnni_extreme_sums_and_widest_k():
    """Every product at its largest magnitude over the widest K the int32 lanes allow."""
    k = vnni_gemm.VNNI_MAX_K
    x = np.full((3, k), 255)
    w = np.full((2, k), -128)
    w[1] = 127
    _check(x, 0, w, 0, np.zeros(2, np.int64), m=1, n=30, spec=QuantSpec(8, signed=True))
    assert not vnni_gemm.vnni_layer_ok(k + 1, np.zeros((2, k + 1), np.int64))
    assert not vnni_gemm.vnni_layer_ok(4, np.array([[128, 0, 0, 0]]))


def test_vnni_refuses_wide_codes():
    w = np.ones((2, 4), np.int64)
    p = vnni_gemm.pack_weights_vnni(w.T)
    assert vnni_gemm.linear_requant_vnni(np.full((2, 4), 256), 0, p, np.zeros(2, np.int64),
                                         1, 0, 0, -128, 127) is None


def test_runner_uses_vnni_and_equals_reference():
    """Random models (signed weights with zero point 0 fit int8, unsigned ones with a zero
    point near 128 mostly do not): every stage equals IntModel.run, and VNNI ran."""
    from sim.packed.runner import PackedRunner
    from sim.verify.random_models import GraphSpec, random_model

    used = 0
    for seed in range(6):
        model, x = random_model(seed, "appnp", bits=4, graph=GraphSpec(num_nodes=80, avg_degree=5),
                                num_features=13, hidden=20, num_classes=3, steps=2)
        runner = PackedRunner(model)
        used += len(runner._vnni)
        env, _ = runner.run(x)
        for k, v in model.run(x).items():
            assert np.array_equal(np.asarray(v).astype(np.int64), env[k].astype(np.int64)), k
    assert used
