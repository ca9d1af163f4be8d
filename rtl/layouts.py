"""Data layouts of the aggregation unit's streams and codes, built from a design point.

They mirror ``quant.pack`` (lane 0 in the least significant bits) and
``sim.design.stream.beat_widths`` / ``out_widths``; ``tests/rtl/test_layouts.py`` checks the
equality bit for bit.
"""

from __future__ import annotations

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

from quant.spec import QuantSpec
from sim.design.point import DesignPoint

__all__ = ["code_shape", "feat_layout", "in_beat_layout", "out_word_layout"]


def code_shape(spec: QuantSpec) -> Shape:
    """Shape of one code: ``signed(bits)`` or ``unsigned(bits)``."""
    return signed(spec.bits) if spec.signed else unsigned(spec.bits)


def feat_layout(dp: DesignPoint) -> data.ArrayLayout:
    """``lanes`` feature codes, lane 0 in the LSBs."""
    return data.ArrayLayout(code_shape(dp.feat_spec), dp.lanes)


def in_beat_layout(dp: DesignPoint) -> data.StructLayout:
    """One input beat: ``feat``, ``weight``, ``last``, ``empty`` (LSB first)."""
    return data.StructLayout({
        "feat": feat_layout(dp),
        "weight": unsigned(dp.weight_bits),
        "last": unsigned(1),
        "empty": unsigned(1),
    })


def out_word_layout(dp: DesignPoint) -> data.ArrayLayout:
    """One output word: ``lanes`` output codes (the design point's bits), lane 0 in the LSBs."""
    return data.ArrayLayout(code_shape(dp.feat_spec), dp.lanes)
