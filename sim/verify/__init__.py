"""Verification data: golden vectors of the aggregation unit (:mod:`sim.verify.golden`, and
:mod:`sim.verify.model_cases` for cases taken from a trained model) and seeded random integer
models for fuzzing (:mod:`sim.verify.random_models`).  Imports ``quant``, ``sim.graphs``,
``sim.design`` and ``sim.exact``."""
