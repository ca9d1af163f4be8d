"""Graph structure for every part of the simulator.

Holds the destination-sorted CSR type (:mod:`sim.graphs.csr`, built by
:func:`quant.csr.csr_from_edge_index`, the project's one CSR builder), the seeded synthetic
generator (:mod:`sim.graphs.synthetic`) and torch-free dataset readers
(:mod:`sim.graphs.datasets`).  Imports ``quant`` and numpy only.
"""
