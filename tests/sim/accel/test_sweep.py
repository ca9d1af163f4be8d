"""Sweeps: grid expansion, cache/resume, identical CSV in-process, on a LocalCluster and on a
separate ``dask scheduler`` + ``dask worker`` started on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.design.point import DesignError, DesignPoint
from sim.accel.sweep import expand_grid, make_tasks, pareto_front, rows_to_csv, run_sweep

BIN = Path(sys.executable).parent
DATASET = "synthetic:powerlaw:800:6000:2"
GRID = {"word_bits": [64, 128], "feature_buffer_kib": [1, 64]}
WL = {"kind": "appnp", "hidden": 16, "k_steps": 2, "features": None}
OPTS = {"cache_policy": "lru", "edge_buffer_kib": 256, "tile_rows": 32, "tech_nm": 45, "split_rows": True}


def _tasks():
    designs = expand_grid(DesignPoint(), GRID)
    return make_tasks([DATASET], designs, ("fp32", "int8", "int2"), WL, OPTS)


def test_expand_grid_and_errors():
    assert len(expand_grid(DesignPoint(), GRID)) == 4
    with pytest.raises(DesignError, match="not a design field"):
        expand_grid(DesignPoint(), {"lanes": [1]})
    with pytest.raises(DesignError, match="precision axis"):
        expand_grid(DesignPoint(), {"bits": [2, 4]})
    with pytest.raises(DesignError, match="invalid"):
        expand_grid(DesignPoint(), {"dram": ["HBM2", "SRAM"]})


def test_pareto_front():
    pts = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 6)]
    assert pareto_front(pts) == [0, 1, 3]


def test_cache_resumes_and_reruns(tmp_path):
    tasks = _tasks()
    first = run_sweep(tasks[:2], tmp_path)  # "interrupted" after two points
    assert (first.computed, first.cached) == (2, 0)
    full = run_sweep(tasks, tmp_path)
    assert (full.computed, full.cached) == (2, 2)
    again = run_sweep(tasks, tmp_path)
    assert (again.computed, again.cached) == (0, 4)
    assert rows_to_csv(full.rows) == rows_to_csv(again.rows)
    assert len(list(tmp_path.glob("*.json"))) == 4 and not list(tmp_path.glob(".*tmp"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def test_same_csv_in_process_local_cluster_and_remote_scheduler(tmp_path):
    dd = pytest.importorskip("dask.distributed")
    tasks = _tasks()
    local = rows_to_csv(run_sweep(tasks, tmp_path / "c0").rows)

    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            dd.Client(cl) as client:
        cluster_csv = rows_to_csv(run_sweep(tasks, tmp_path / "c1", client).rows)
    assert cluster_csv == local

    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    log = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, env=env)]
    try:
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", addr, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + 60
        client = None
        while client is None:
            try:
                client = dd.Client(addr, timeout="5s")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        with client:
            client.wait_for_workers(1, timeout=60)
            remote = rows_to_csv(run_sweep(tasks, tmp_path / "c2", client).rows)
    finally:
        _stop(procs)
        log.close()
    assert remote == local
