"""Verilog export: every config converts, deterministically, and lints clean with the
documented Verilator waivers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from quagga.cli import main
from rtl.build import TOP_NAME, to_verilog, write_verilog
from rtl.runner import VERILATOR_WAIVERS, simulator_path
from sim.design.point import DesignPoint

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.toml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_converts(config):
    dp = DesignPoint.load(config)
    text = to_verilog(dp)
    assert f"module {TOP_NAME}(" in text
    assert "i__payload" in text and "o__payload" in text and "saturations" in text
    assert "/work" not in text and "src =" not in text  # emit_src=False: no paths


def test_export_is_deterministic(tmp_path):
    dp = DesignPoint(bits=4, word_bits=16, msg_requant=True, upd_requant=True)
    a = write_verilog(dp, tmp_path / "a.v").read_text()
    b = to_verilog(dp.replace(name="other"))
    assert a.splitlines()[1:] == b.splitlines()[1:]  # only the header line names the design
    assert a == to_verilog(dp)


@pytest.mark.parametrize("kw", [dict(bits=2, word_bits=16, msg_requant=True, upd_requant=True),
                                dict(bits=8, word_bits=16, signed=True)], ids=["int2-msg-upd", "int8-signed"])
def test_verilator_lint_wall(tmp_path, kw):
    simulator_path()
    if shutil.which("verilator") is None:
        pytest.skip("verilator not installed")
    v = write_verilog(DesignPoint(**kw), tmp_path / f"{TOP_NAME}.v")
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *VERILATOR_WAIVERS, "--top-module", TOP_NAME, str(v)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[-3000:]


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "int4.v"
    assert main(["rtl", "export", "--design", "configs/int4.toml", "-o", str(out)]) == 0
    assert out.read_text() == to_verilog(DesignPoint.load("configs/int4.toml"))


def test_cli_export_refuses_bad_design(tmp_path, cli_refuses):
    out = tmp_path / "bad.v"
    cli_refuses(["rtl", "export", "--design", "configs/int2.toml", "--set", "word_bits=63", "-o", str(out)],
                out, "word_bits", "63")
