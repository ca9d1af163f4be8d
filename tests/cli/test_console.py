"""The console of ``quagga run``: the progress bar, one line per stage and the summary table;
no INFO log line and no Python warning unless ``-v`` is given."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bad_inputs import base_arrays
from faults import run_to_end

RUN = ["run", "--epochs", "2", "--layers", "2", "--precisions", "fp32,int4", "--rtl-rows", "8",
       "--skip", "depth,bench"]
STAGES = ("data", "train", "simulate", "rtl", "depth", "estimate", "sweep", "bench", "report")
LOG_LINE = re.compile(r"^(INFO|DEBUG) ", re.M)
WARNING_LINE = re.compile(r"\w*Warning: ", re.M)


def _run(tmp_path, *flags: str) -> tuple[str, str]:
    np.savez(tmp_path / "g.npz", **base_arrays(200))
    argv = [*flags, *RUN, "--dataset", str(tmp_path / "g.npz"), "--out", str(tmp_path / "run")]
    rc, _ = run_to_end(argv, tmp_path, tmp_path / "log")
    out, err = (tmp_path / "log.out").read_text(), (tmp_path / "log.err").read_text()
    assert rc == 0, err
    return out, err


def test_run_console_is_quiet(tmp_path):
    out, err = _run(tmp_path)
    console = out + err.replace("\r", "\n")
    assert not LOG_LINE.search(console), LOG_LINE.findall(console)
    assert not WARNING_LINE.search(console)
    assert "Traceback" not in console
    lines = out.splitlines()
    # one line per stage as it ends, then the summary table and the report's path
    assert [ln.split(":")[0] for ln in lines[:len(STAGES)]] == list(STAGES)
    assert [ln.split()[0] for ln in lines[len(STAGES):2 * len(STAGES)]] == list(STAGES)
    assert lines[-1].startswith("report: ") and len(lines) == 2 * len(STAGES) + 1
    assert "quagga run:" in err  # the progress bar


@pytest.mark.slow
def test_run_console_with_v_shows_the_logs(tmp_path):
    _, err = _run(tmp_path, "-v")
    assert LOG_LINE.search(err) and "INFO distributed" in err


def test_sweep_with_v_shows_the_dask_logs(tmp_path):
    argv = ["-v", "sweep", "--workload", "aggregate", "--dataset", "synthetic:uniform:50:200", "--vary", "word_bits=32,64", "--csv",
            str(tmp_path / "s.csv"), "--cache-dir", str(tmp_path / "cache")]
    rc, _ = run_to_end(argv, tmp_path, tmp_path / "log")
    assert rc == 0 and "INFO distributed" in (tmp_path / "log.err").read_text()
