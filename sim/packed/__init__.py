"""Fast bit-exact CPU kernels on packed low-bit feature rows (the measured kernels).

:mod:`~sim.packed.propagate` is the entry point of one propagation step; it dispatches, in
:mod:`~sim.packed.aggregate`, to the vector-IR and plane-accumulator row kernels
(:mod:`~sim.packed.tight_rows`, :mod:`~sim.packed.row_vector_ir`), the SWAR kernels
(:mod:`~sim.packed.swar`) and the exact edge-by-edge kernel (:mod:`~sim.packed.exact_rows`).
:mod:`~sim.packed.gemm` and :mod:`~sim.packed.elementwise` hold the linear layers and the
element-wise ops, :mod:`~sim.packed.layout` the packing, and :mod:`~sim.packed.runner` the
whole-model :class:`~sim.packed.runner.PackedRunner`.  Imports ``quant``, ``sim.graphs`` and
``sim.exact`` (whose requantizer :func:`sim.exact.kernels.requant_1` every kernel uses)."""
