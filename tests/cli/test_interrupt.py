"""Ctrl-C (SIGINT to the process group, as from a terminal) in a command: one line, exit 130,
no partial file."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from bad_inputs import base_arrays
from faults import spawn, temporary_files, wait_for_cpu

#: command -> (argv with DIR, the outputs that must not exist after the interrupt); the
#: interrupt comes once the command has used CPU_AT seconds of CPU (past its imports, at work)
CPU_AT = {"estimate": 2.5}
COMMANDS = {
    "train": (["train", "--dataset", "DIR/g.npz", "--epochs", "100000", "--layers", "2", "--hidden", "8",
               "--no-progress", "--out", "DIR/out"], ["out/metrics.json", "out/model.qim", "out/checkpoint.pt"]),
    "run": (["run", "--dataset", "DIR/g.npz", "--epochs", "100000", "--layers", "2", "--precisions", "int4",
             "--skip", "rtl,depth,bench,sweep", "--no-progress", "--out", "DIR/run"],
            ["run/train/int4/metrics.json", "run/report/index.md"]),
    "sweep": (["sweep", "--dataset", "synthetic:powerlaw:200000:2000000",
               "--vary", "word_bits=32,64,128,256,512", "--vary", "dram_bandwidth_gbs=32,64,128,256",
               "--csv", "DIR/s.csv", "--cache-dir", "DIR/cache"], ["s.csv"]),
    "estimate": (["estimate", "--dataset", "synthetic:powerlaw:400000:4000000", "--json", "DIR/e.json"],
                 ["e.json"]),
    "golden": (["golden", "--cases", "100000", "--out", "DIR/golden"], ["golden/manifest.json"]),
}


#: in the normal suite: a torch command, the nested flow, a numba command; the rest with --runslow
QUICK = {"train", "run", "golden"}


@pytest.mark.parametrize("command", [c if c in QUICK else pytest.param(c, marks=pytest.mark.slow)
                                     for c in sorted(COMMANDS)])
def test_sigint_prints_one_line_exits_130_and_leaves_no_partial_file(command, tmp_path):
    np.savez(tmp_path / "g.npz", **base_arrays(200))
    argv, outputs = COMMANDS[command]
    proc = spawn([a.replace("DIR", str(tmp_path)) for a in argv], tmp_path, tmp_path / "log")
    assert wait_for_cpu(proc, CPU_AT.get(command, 6.0)), "the command ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole group (Dask workers too)
    rc = proc.wait(timeout=120)
    err = (tmp_path / "log.err").read_text()
    assert rc == 130, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1] == f"quagga {command}: interrupted", err
    assert len(lines) == 1, err
    for out in outputs:
        assert not (tmp_path / out).exists(), out
    assert temporary_files(tmp_path) == []
