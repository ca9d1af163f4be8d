"""The packed runner's input stage equals ``quant.reference.quantize`` exactly."""

from __future__ import annotations

import numpy as np
import pytest

from quant.errors import QuantError
from quant.reference import quantize
from quant.spec import QuantSpec, Rounding
from sim.packed.elementwise import ROUNDING_CODES, quantize_f32_i16
from sim.packed.runner import PackedRunner
from sim.verify.random_models import GraphSpec, random_model


def _inputs(rng, scale, zero, spec):
    """Random values, exact ties (k + 1/2 steps), values one ulp either side of the ties,
    values far outside the range, and signed zeros."""
    k = rng.integers(spec.qmin - zero - 3, spec.qmax - zero + 3, size=400).astype(np.float32)
    ties = (k + np.float32(0.5)) * np.float32(scale)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)),
                           np.nextafter(ties, np.float32(-np.inf))])
    wide = rng.standard_normal(800).astype(np.float32) * np.float32(scale * spec.levels)
    far = np.array([1e30, -1e30, 3.4e38, -3.4e38, 0.0, -0.0, 1e-40, -1e-40], np.float32)
    return np.concatenate([ties, near, wide, far]).astype(np.float32).reshape(-1, 8)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference on +-3.4e38 / s (inf, clamped)
@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("bits, signed", [(2, False), (4, False), (8, False), (4, True), (8, True)])
@pytest.mark.parametrize("scale", [0.25, 0.013, 3.7])
def test_quantize_kernel_equals_reference(rounding, bits, signed, scale):
    spec = QuantSpec(bits, signed=signed, rounding=rounding)
    rng = np.random.default_rng(bits * 7 + int(signed))
    for zero in sorted({spec.qmin, (spec.qmin + spec.qmax) // 2, spec.qmax}):
        x = _inputs(rng, scale, zero, spec)
        got, bad = quantize_f32_i16(x, np.float32(scale), zero, spec.qmin, spec.qmax,
                                       ROUNDING_CODES[spec.rounding.value], 16)
        assert bad == 0
        assert np.array_equal(got.astype(np.int64), quantize(x, scale, zero, spec).astype(np.int64))


def test_quantize_kernel_counts_nonfinite():
    x = np.zeros((3, 4), np.float32)
    x[1, 2] = np.nan
    x[2, 0] = np.inf
    _, bad = quantize_f32_i16(x, np.float32(1.0), 0, 0, 3, 0, 2)
    assert bad == 2


def test_runner_refuses_nonfinite_features():
    gs = GraphSpec(num_nodes=30, avg_degree=3, hub_degree=10, isolated=0.1, self_loops=True,
                   duplicates=False)
    model, x = random_model(1, "gcn", bits=4, graph=gs)
    x = np.array(x, dtype=np.float32)
    x[3, 1] = np.nan
    with pytest.raises(QuantError, match="x"):
        PackedRunner(model).run(x)
