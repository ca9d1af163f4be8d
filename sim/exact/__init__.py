"""Exact integer simulation with numba: one propagation step and the integer operations
around it (:mod:`sim.exact.functional` over the kernels of :mod:`sim.exact.kernels`), and
whole exported models checked stage by stage (:mod:`sim.exact.model_sim`).  Every function
equals its :mod:`quant.reference` counterpart bit for bit.  Imports ``quant``,
``sim.graphs`` and ``sim.design``."""
