"""quant.pack / sim.design.stream packing == Amaranth lib.data layouts, bit for bit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from quant.pack import pack_codes, pack_word
from rtl.layouts import feat_layout, in_beat_layout, out_word_layout
from sim.design.point import DesignPoint
from sim.design.stream import pack_beat, pack_out, unpack_beat, unpack_out


@pytest.mark.parametrize("bits,lanes", [(2, 4), (4, 2), (1, 8), (8, 1)])
@pytest.mark.parametrize("is_signed", [False, True])
def test_pack_word_equals_array_layout_exhaustive(bits, lanes, is_signed):
    shape = signed(bits) if is_signed else unsigned(bits)
    layout = data.ArrayLayout(shape, lanes)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    for codes in itertools.product(range(lo, hi + 1), repeat=lanes):
        word = pack_word(list(codes), bits)
        assert layout.const(list(codes)).as_bits() == word
        assert [int(v) for v in layout.from_bits(word)] == list(codes)
        # one byte: pack_codes agrees too
        assert int(pack_codes(np.array(codes), bits)[0]) == word


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("is_signed", [False, True])
def test_beat_and_output_word_equal_struct_layout(bits, is_signed, rng):
    dp = DesignPoint(bits=bits, word_bits=32, weight_bits=5, signed=is_signed)
    beat, out = in_beat_layout(dp), out_word_layout(dp)
    assert beat.size == sum([bits] * dp.lanes + [5, 1, 1])
    assert feat_layout(dp).size == out.size == 32
    spec = dp.feat_spec
    for _ in range(200):
        feat = rng.integers(spec.qmin, spec.qmax + 1, dp.lanes).tolist()
        weight, last, empty = int(rng.integers(0, 32)), int(rng.integers(0, 2)), int(rng.integers(0, 2))
        word = pack_beat(feat, weight, last, empty, dp)
        const = beat.const({"feat": feat, "weight": weight, "last": last, "empty": empty}).as_bits()
        assert const == word
        assert unpack_beat(word, dp) == (feat, weight, bool(last), bool(empty))
        assert out.const(feat).as_bits() == pack_out(feat, dp)
        assert unpack_out(pack_out(feat, dp), dp) == feat
