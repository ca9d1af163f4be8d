"""The accelerator template: cycle and action counts of its units (:mod:`sim.accel.cycle`),
the memory system (:mod:`sim.accel.memory`), the energy table (:mod:`sim.accel.energy`), the
estimate of a workload at FP32/INT8/INT4/INT2 (:mod:`sim.accel.accelerator`), an independent
systolic-array reference (:mod:`sim.accel.systolic_reference`) and design-space sweeps
(:mod:`sim.accel.sweep`).  Imports ``quant``, ``sim.graphs`` and ``sim.design``."""
