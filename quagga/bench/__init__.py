"""Measured benchmarks (``quagga bench``): packed low-bit CPU kernels against FP32 torch/PyG.

Modules: :mod:`quagga.bench.machine` (machine description), :mod:`quagga.bench.timing`
(interleaved repeats), :mod:`quagga.bench.smp_int` (calibrated SMP integer model, numpy),
:mod:`quagga.bench.torch_baselines` (FP32 torch / PyG forms), :mod:`quagga.bench.harness`
(workloads, JSON result).  torch and PyG are imported only inside this package's torch
modules, never by ``sim``.
"""
