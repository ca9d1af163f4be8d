"""SIGKILL at a seeded point of ``quagga sweep`` or ``quagga run``, then a rerun (``--resume``
for run): the outputs equal those of an uninterrupted run, timings aside.

The kill point is a seeded fraction of the uninterrupted run's CPU time (the whole process
group's), so it lands in a different stage per seed.  Seed 0 runs in the normal suite,
seeds 1 and 2 with ``--runslow``.  A SIGKILL can leave a writer's hidden temporary file
(``.NAME.*.tmp``, never read); the outputs themselves are whole or absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from bad_inputs import base_arrays
from faults import kill_group, run_contents, run_to_end, spawn, wait_for_cpu

SEEDS = [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]

SWEEP = ["sweep", "--workload", "aggregate", "--dataset", "synthetic:powerlaw:100000:1000000", "--no-dask",
         "--vary", "word_bits=32,64,128,256", "--vary", "dram_bandwidth_gbs=64,256",
         "--csv", "OUT/s.csv", "--plot", "OUT/pareto.png", "--cache-dir", "OUT/cache"]
RUN = ["run", "--dataset", "GRAPH", "--epochs", "2", "--layers", "2", "--precisions", "fp32,int4",
       "--skip", "rtl,depth,bench,sweep", "--no-progress", "--out", "OUT"]


def _argv(template: list[str], out, graph=None) -> list[str]:
    return [a.replace("OUT", str(out)).replace("GRAPH", str(graph)) for a in template]


def _kill_point(seed: int, cpu: float) -> float:
    return float(np.random.default_rng(seed).uniform(0.15, 0.9)) * cpu


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep-ref")
    rc, cpu = run_to_end(_argv(SWEEP, d / "out"), d, d / "log")
    assert rc == 0, (d / "log.err").read_text()
    return d / "out", cpu


@pytest.mark.parametrize("seed", SEEDS)
def test_sweep_killed_and_rerun_equals_uninterrupted(seed, sweep_reference, tmp_path):
    ref, cpu = sweep_reference
    out = tmp_path / "out"
    proc = spawn(_argv(SWEEP, out), tmp_path, tmp_path / "killed")
    if wait_for_cpu(proc, _kill_point(seed, cpu)):
        kill_group(proc)
    else:
        assert proc.returncode == 0
    rc, _ = run_to_end(_argv(SWEEP, out), tmp_path, tmp_path / "rerun")
    assert rc == 0, (tmp_path / "rerun.err").read_text()
    assert (out / "s.csv").read_bytes() == (ref / "s.csv").read_bytes()
    assert (out / "pareto.png").read_bytes() == (ref / "pareto.png").read_bytes()


@pytest.fixture(scope="module")
def run_reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("run-ref")
    np.savez(d / "g.npz", **base_arrays(200))
    rc, cpu = run_to_end(_argv(RUN, d / "out", d / "g.npz"), d, d / "log")
    assert rc == 0, (d / "log.err").read_text()
    return d / "out", d / "g.npz", cpu


@pytest.mark.parametrize("seed", SEEDS)
def test_run_killed_and_resumed_equals_uninterrupted(seed, run_reference, tmp_path):
    ref, graph, cpu = run_reference
    out = tmp_path / "out"
    proc = spawn(_argv(RUN, out, graph), tmp_path, tmp_path / "killed")
    if wait_for_cpu(proc, _kill_point(seed, cpu)):
        kill_group(proc)
    else:
        assert proc.returncode == 0
    rc, _ = run_to_end(_argv(RUN, out, graph) + ["--resume"], tmp_path, tmp_path / "resumed")
    assert rc == 0, (tmp_path / "resumed.err").read_text()
    assert run_contents(out) == run_contents(ref)
