"""SIGKILL at a seeded point of ``quagga sweep`` or ``quagga run``, then a rerun (``--resume``
for run): the outputs equal those of an uninterrupted run, timings aside.

The kill point is a seeded fraction of the uninterrupted run's CPU time (the whole process
group's), so it lands in a different stage per seed.  Seed 0 runs in the normal suite,
seeds 1 and 2 with ``--runslow``.  A SIGKILL can leave a writer's hidden temporary file
(``.NAME.*.tmp``, never read); the outputs themselves are whole or absent.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bad_inputs import base_arrays
from faults import kill_group, run_contents, run_to_end, spawn, wait_for_cpu

SEEDS = [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]

#: seed 0 (normal suite) sweeps in-process; seeds 1 and 2 on the local Dask cluster, killed with it
SWEEP = ["sweep", "--workload", "aggregate", "--dataset", "synthetic:powerlaw:100000:1000000",
         "--vary", "word_bits=32,64,128,256", "--vary", "dram_bandwidth_gbs=64,256",
         "--csv", "OUT/s.csv", "--plot", "OUT/pareto.png", "--cache-dir", "OUT/cache"]
SWEEP_MODES = {0: ["--no-dask"], 1: [], 2: []}
#: seed 0 (normal suite) leaves out the Dask sweep stage; seeds 1 and 2 run it
RUN = ["run", "--dataset", "GRAPH", "--epochs", "2", "--layers", "2", "--precisions", "fp32,int4",
       "--no-progress", "--out", "OUT"]
RUN_SKIPS = {0: ["--skip", "rtl,depth,bench,sweep"], 1: ["--skip", "rtl,depth,bench"],
             2: ["--skip", "rtl,depth,bench"]}


def _argv(template: list[str], out, graph=None) -> list[str]:
    return [a.replace("OUT", str(out)).replace("GRAPH", str(graph)) for a in template]


def _kill_point(seed: int, cpu: float) -> float:
    return float(np.random.default_rng(seed).uniform(0.15, 0.9)) * cpu


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Every run of this module writes to ``workdir/out``: outputs name their own paths (the
    sweep CSV names its dataset file), so a run and its reference must share the path."""
    return tmp_path_factory.mktemp("kill-resume")


@pytest.fixture(scope="module")
def references(workdir):
    """Uninterrupted runs, made once per command line and moved aside: argv -> (copy, CPU seconds)."""
    made: dict[tuple, tuple] = {}

    def get(template: list[str], graph=None):
        key = tuple(template)
        if key not in made:
            out = workdir / "out"
            shutil.rmtree(out, ignore_errors=True)
            rc, cpu = run_to_end(_argv(template, out, graph), workdir, workdir / "reference")
            assert rc == 0, (workdir / "reference.err").read_text()
            ref = workdir / f"reference-{len(made)}"
            out.rename(ref)
            made[key] = (ref, cpu)
        return made[key]
    return get


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    p = tmp_path_factory.mktemp("graph") / "g.npz"
    np.savez(p, **base_arrays(200))
    return p


def _kill_then_rerun(template: list[str], seed: int, cpu: float, workdir, graph=None, rerun_flags=()):
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    proc = spawn(_argv(template, out, graph), workdir, workdir / "killed")
    if wait_for_cpu(proc, _kill_point(seed, cpu)):
        kill_group(proc)  # the whole group: Dask workers die with it
    else:
        assert proc.returncode == 0
    rc, _ = run_to_end(_argv(template, out, graph) + list(rerun_flags), workdir, workdir / "rerun")
    assert rc == 0, (workdir / "rerun.err").read_text()
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_sweep_killed_and_rerun_equals_uninterrupted(seed, references, workdir):
    template = SWEEP + SWEEP_MODES[seed]
    ref, cpu = references(template)
    out = _kill_then_rerun(template, seed, cpu, workdir)
    assert (out / "s.csv").read_bytes() == (ref / "s.csv").read_bytes()
    assert (out / "pareto.png").read_bytes() == (ref / "pareto.png").read_bytes()


@pytest.mark.parametrize("seed", SEEDS)
def test_run_killed_and_resumed_equals_uninterrupted(seed, references, graph, workdir):
    template = RUN + RUN_SKIPS[seed]
    ref, cpu = references(template, graph)
    out = _kill_then_rerun(template, seed, cpu, workdir, graph, ["--resume"])
    assert run_contents(out, "RUN") == run_contents(ref, "RUN", rename=out)
