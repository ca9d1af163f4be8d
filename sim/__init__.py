"""The simulator: bit-exact integer inference, the packed CPU kernels, and the accelerator's
cycle and energy model.

Subpackages, each importing only ``quant``, numpy, numba and the subpackages listed before it
(``tests/test_layering.py`` checks this; nothing under ``sim`` imports torch or amaranth):

``sim.graphs``
    Graph structure: the destination-sorted CSR type, degree statistics, the seeded
    synthetic generator, torch-free dataset readers.
``sim.design``
    What the hardware is: the design point and the aggregation unit's stream protocol and
    timing (shared with ``rtl`` and the cycle model).
``sim.exact``
    Exact integer simulation with numba: one step, whole models, stage-by-stage checks.
``sim.packed``
    Fast bit-exact CPU kernels on packed low-bit rows and the packed whole-model runner.
``sim.verify``
    Verification data: golden vectors of the aggregation unit, seeded random models.
``sim.accel``
    The accelerator template: cycle, memory and energy models, estimates and sweeps.

This ``__init__`` imports nothing, so ``import sim.design.point`` stays cheap.
"""
