"""Functional (bit-accurate) and cycle/energy simulation of the Quagga accelerator.

Depends on ``quant`` (numpy, numba); never imports torch or amaranth.  Submodules are
imported explicitly; this ``__init__`` stays empty so ``import sim.design`` is cheap.
"""
