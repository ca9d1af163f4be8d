"""Amaranth RTL of the INT1/2/4/8 aggregation unit.

Modules: ``layouts`` (stream payload layouts, mirroring ``quant.pack``), ``requantizer``
(pipelined integer requantizer), ``lane_mac`` (one feature lane: product, optional message
requantization, saturating accumulator), ``aggregator`` (the top), ``build`` (design-point
checks and Verilog export), ``synth`` (yosys statistics), ``vectors`` / ``runner`` / ``bench``
(cocotb verification).  Depends on ``amaranth`` (and ``cocotb`` for verification) on top of
``quant`` and ``sim``.
"""
