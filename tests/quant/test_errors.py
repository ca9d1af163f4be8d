"""Bad input raises QuantError naming the field and the value (acceptance item 8).

One test per case, each covering the numpy reference and the torch path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quant import reference as R
from quant import torch_ops as T
from quant.errors import QuantError
from quant.quantizers import MinMaxObserverQuantizer, QLRQuantizer, SymmetricQuantizer
from quant.spec import QuantSpec

S8 = QuantSpec(8)
X = np.array([0.5, -1.0, 2.0], np.float32)


@pytest.mark.parametrize("bits", [0, 9, -1, 16])
def test_bits_out_of_range(bits):
    with pytest.raises(QuantError, match=f"bits must be in 1..8, not {bits}"):
        QuantSpec(bits)
    with pytest.raises(QuantError, match=f"bits must be in 1..8, 32 or None, not {bits}"):
        QLRQuantizer(bits)
    with pytest.raises(QuantError, match=f"bits must be .*not {bits}"):
        SymmetricQuantizer(bits)
    with pytest.raises(QuantError, match=f"bits must be .*not {bits}"):
        MinMaxObserverQuantizer(bits)


def test_bits_of_wrong_type():
    with pytest.raises(QuantError, match="bits must be an int, not 4.0"):
        QuantSpec(4.0)
    with pytest.raises(QuantError, match="bits must be an int .*not True"):
        QLRQuantizer(True)


@pytest.mark.parametrize("scale", [0.0, -0.5, math.nan, math.inf, -math.inf])
def test_bad_scale(scale):
    pat = "scale must be a positive finite number, not " + ("nan" if math.isnan(scale) else repr(scale))
    with pytest.raises(QuantError, match=pat.replace("(", "\\(")):
        R.quantize(X, scale, 0, S8)
    with pytest.raises(QuantError, match=pat):
        T.quantize(torch.from_numpy(X), scale, 0, S8)
    with pytest.raises(QuantError, match=pat):
        R.dequantize(np.array([1, 2]), scale, 0)
    with pytest.raises(QuantError, match=pat):
        T.dequantize(torch.tensor([1, 2]), scale, 0)


def test_scale_of_wrong_type():
    with pytest.raises(QuantError, match="scale must be a positive finite number, not 'a'"):
        R.quantize(X, "a", 0, S8)
    with pytest.raises(QuantError, match="scale must be a positive finite number, not 'a'"):
        T.quantize(torch.from_numpy(X), "a", 0, S8)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_tensor(bad):
    x = X.copy()
    x[1] = bad
    pat = f"x must be finite, not {bad!r} at index \\(1,\\)"
    with pytest.raises(QuantError, match=pat):
        R.quantize(x, 0.1, 0, S8)
    with pytest.raises(QuantError, match=pat):
        T.quantize(torch.from_numpy(x), 0.1, 0, S8)
    q = QLRQuantizer(4)
    with pytest.raises(QuantError, match=pat):
        q(torch.from_numpy(x))            # forward refuses before touching its state
    assert not bool(q.initialized)
    q(torch.from_numpy(X))
    with pytest.raises(QuantError, match=pat):
        q.to_int(torch.from_numpy(x))


@pytest.mark.parametrize("spec,z", [(S8, 256), (S8, -1), (QuantSpec(4, signed=True), 8),
                                    (QuantSpec(2, narrow_range=True), 3)])
def test_zero_point_outside_code_range(spec, z):
    pat = f"zero_point must be in the code range \\[{spec.qmin}, {spec.qmax}\\], not {z}"
    with pytest.raises(QuantError, match=pat):
        R.quantize(X, 0.1, z, spec)
    with pytest.raises(QuantError, match=pat):
        T.quantize(torch.from_numpy(X), 0.1, z, spec)
    v = np.array([1, -2, 3])
    with pytest.raises(QuantError, match=pat):
        R.requantize(v, 3, 2, z, spec)
    with pytest.raises(QuantError, match=pat):
        T.requantize(torch.from_numpy(v), 3, 2, z, spec)
    with pytest.raises(QuantError, match=pat):
        R.add_requantize(v, 0, 1, v, 0, 1, 1, z, spec)
    with pytest.raises(QuantError, match=pat):
        T.add_requantize(torch.from_numpy(v), 0, 1, torch.from_numpy(v), 0, 1, 1, z, spec)


def test_zero_point_of_wrong_type():
    with pytest.raises(QuantError, match="zero_point must be an int, not 1.5"):
        R.quantize(X, 0.1, 1.5, S8)
    with pytest.raises(QuantError, match="zero_point must be an int, not 1.5"):
        T.quantize(torch.from_numpy(X), 0.1, 1.5, S8)


@pytest.mark.parametrize("mode", ["half_odd", "nearest", "HALF_EVEN"])
def test_unknown_rounding_mode(mode):
    pat = f"rounding must be one of \\['half_even', 'half_up', 'floor'\\], not '{mode}'"
    with pytest.raises(QuantError, match=pat):
        QuantSpec(4, rounding=mode)
    with pytest.raises(QuantError, match=pat):
        R.round_float(X, mode)
    with pytest.raises(QuantError, match=pat):
        T.round_float(torch.from_numpy(X), mode)
    with pytest.raises(QuantError, match=pat):
        QLRQuantizer(4, rounding=mode)


@pytest.mark.parametrize("shift", [63, -63, 100])
def test_shift_out_of_range(shift):
    v = np.array([1, 2])
    pat = f"shift must be in -62..62, not {shift}"
    with pytest.raises(QuantError, match=pat):
        R.round_shift(v, shift)
    with pytest.raises(QuantError, match=pat):
        T.round_shift(torch.from_numpy(v), shift)
    with pytest.raises(QuantError, match=pat):
        R.requantize(v, 1, shift, 0, S8)
    with pytest.raises(QuantError, match=pat):
        T.requantize(torch.from_numpy(v), 1, shift, 0, S8)


@pytest.mark.parametrize("m", [-1, 1 << 31])
def test_multiplier_out_of_range(m):
    v = np.array([1, 2])
    pat = f"multiplier must be in 0..2\\*\\*31-1, not {m}"
    with pytest.raises(QuantError, match=pat):
        R.requantize(v, m, 4, 0, S8)
    with pytest.raises(QuantError, match=pat):
        T.requantize(torch.from_numpy(v), m, 4, 0, S8)


def test_product_overflow_is_refused():
    v = np.array([1 << 40])
    with pytest.raises(QuantError, match="v \\* multiplier must be below 2\\*\\*62"):
        R.requantize(v, (1 << 31) - 1, 20, 0, S8)
    with pytest.raises(QuantError, match="v \\* multiplier must be below 2\\*\\*62"):
        T.requantize(torch.from_numpy(v), (1 << 31) - 1, 20, 0, S8)


def test_float_codes_are_refused():
    with pytest.raises(QuantError, match="v.dtype must be an integer dtype, not 'float32'"):
        R.round_shift(X, 1)
    with pytest.raises(QuantError, match="v.dtype must be an integer dtype, not 'torch.float32'"):
        T.round_shift(torch.from_numpy(X), 1)


@pytest.mark.parametrize("ratio", [0.0, -1.0, math.nan, math.inf])
def test_derive_multiplier_bad_ratio(ratio):
    with pytest.raises(QuantError, match=f"ratio must be a positive finite number, not {ratio!r}"):
        R.derive_multiplier(ratio, 16)


@pytest.mark.parametrize("mb", [0, 32, 2.5])
def test_derive_multiplier_bad_width(mb):
    with pytest.raises(QuantError, match=f"mult_bits must be an int in 1..31, not {mb!r}"):
        R.derive_multiplier(0.5, mb)


def test_signed_one_bit_symmetric_is_refused():
    with pytest.raises(QuantError, match="bits must be >= 2 .*not 1"):
        R.qparams_from_range(-1.0, 1.0, QuantSpec(1, signed=True))
    with pytest.raises(QuantError, match="bits must be >= 2 for signed symmetric codes, not 1"):
        SymmetricQuantizer(1)
    with pytest.raises(QuantError, match="bits must be >= 2 for signed symmetric codes, not 1"):
        MinMaxObserverQuantizer(1, signed=True)


@pytest.mark.parametrize("m", [0.0, -0.1, 1.5])
def test_bad_momentum(m):
    with pytest.raises(QuantError, match=f"momentum must be in \\(0, 1\\] or None, not {m!r}"):
        QLRQuantizer(4, momentum=m)
