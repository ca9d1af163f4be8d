"""Mutation testing in CI: a seeded handful of faults in a small unit's Verilog, each killed by
the kill set on Icarus or proved equivalent by Yosys; and the report's CLI contract."""

from __future__ import annotations

import shutil

import pytest

from rtl.mutation import run_mutation
from rtl.runner import simulator_path
from sim.design.point import DesignPoint

pytestmark = pytest.mark.cocotb

simulator_path()
HAVE_ICARUS = shutil.which("iverilog") is not None


@pytest.mark.skipif(not HAVE_ICARUS, reason="icarus not installed")
def test_seeded_mutants_are_killed(tmp_path):
    dp = DesignPoint(bits=4, word_bits=8, upd_requant=True)
    report = run_mutation(dp, 4, seed=11, build_dir=tmp_path)
    doc = report.to_dict()
    assert doc["mutants"] == 4
    assert doc["survived"] == 0, [r for r in doc["results"] if r["status"] == "survived"]
    for r in doc["results"]:
        assert r["status"] in ("killed", "equivalent")
        if r["status"] == "killed":
            assert r["killed_by"].split(":")[0] in ("ideal", "stalls")


def test_cli_mutate_refuses_bad_count(tmp_path, cli_refuses):
    out = tmp_path / "m.json"
    cli_refuses(["rtl", "mutate", "--design", "configs/int4.toml", "--mutants", "0", "--json", str(out)],
                out, "--mutants", "0")
