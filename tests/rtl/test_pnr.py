"""Place and route: the synthesis flows map each distinct module once without changing the
design, the CLI refuses bad input, and (slow) real nextpnr runs on small units."""

from __future__ import annotations

import pytest

from rtl.build import to_verilog
from rtl.netlist import share_identical_modules, split_modules
from sim.design.point import DesignPoint


def test_shared_modules_keep_the_design(tmp_path):
    from rtl.mutation import prove_equivalent

    dp = DesignPoint(bits=4, word_bits=16, msg_requant=True, upd_requant=True)
    text = to_verilog(dp)
    shared = share_identical_modules(text)
    names = [n for n, _ in split_modules(shared)[1]]
    assert len(names) == len(set(names)) == 5  # top, lane, lane's message requantizer, out, upd
    assert prove_equivalent(text, shared, tmp_path)


def test_cli_pnr_refuses_bad_frequency(tmp_path, cli_refuses):
    out = tmp_path / "p.json"
    cli_refuses(["rtl", "pnr", "--design", "configs/int4.toml", "--freq", "0", "--json", str(out)],
                out, "--freq", "0")


def test_cli_pnr_refuses_bad_design(tmp_path, cli_refuses):
    out = tmp_path / "p.json"
    cli_refuses(["rtl", "pnr", "--design", "configs/int4.toml", "--set", "word_bits=63", "--json", str(out)],
                out, "word_bits")


@pytest.mark.slow
def test_place_and_route_small_unit(tmp_path):
    """A real yosys + nextpnr run on a one-lane unit (ECP5): a positive Fmax and cell use
    (slow: the first nextpnr run on a machine compiles its WebAssembly)."""
    from rtl.pnr import place_and_route

    r = place_and_route(DesignPoint(bits=8, word_bits=8), "ecp5-85k", workdir=tmp_path)
    assert r.fmax_mhz > 0 and r.luts > 0 and r.ffs > 0 and r.dsps >= 1
    assert (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_place_and_route_small_unit_ice40(tmp_path):
    from rtl.pnr import place_and_route

    r = place_and_route(DesignPoint(bits=4, word_bits=8), "ice40-hx8k", workdir=tmp_path)
    assert r.fmax_mhz > 0 and r.luts > 0 and r.ffs > 0
