"""Mutant generation on the unit's real Verilog: every kind of fault in every part of the
unit, one well-formed change each, a deterministic stratified draw."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest

from rtl.build import TOP_NAME, to_verilog
from rtl.mutants import CATEGORIES, apply_mutant, find_mutants, select_mutants
from rtl.runner import simulator_path
from sim.design.point import DesignPoint

DP = DesignPoint(bits=4, word_bits=8, msg_requant=True, upd_requant=True)


@pytest.fixture(scope="module")
def verilog():
    return to_verilog(DP)


@pytest.fixture(scope="module")
def mutants(verilog):
    return find_mutants(verilog)


def test_every_category_in_every_region(mutants):
    seen = Counter((m.category, m.region) for m in mutants)
    for cat in CATEGORIES:
        for region in ("handshake", "datapath", "requantizer"):
            assert seen[(cat, region)] > 0, (cat, region)
    assert len({m.id for m in mutants}) == len(mutants)


def test_stuck_at_on_every_handshake_port(mutants):
    names = {m.description for m in mutants if m.category == "stuck" and m.region == "handshake"}
    for port in ("i__valid", "i__ready", "o__valid", "o__ready"):
        assert {f"{port} stuck at 0", f"{port} stuck at 1"} <= names


def test_each_mutant_changes_only_its_lines(verilog, mutants):
    base = verilog.splitlines()
    for m in mutants[::7]:
        new = apply_mutant(verilog, m).splitlines()
        assert len(new) == len(base)
        changed = {k for k, (a, b) in enumerate(zip(base, new)) if a != b}
        assert changed == {k for k, _ in m.edits}, m.id


def test_unused_named_copies_are_not_mutated(mutants):
    # Amaranth's views of payload fields and aliases like `assign en = i__ready;` reach no output
    assert not any("i__payload.feat" in m.description or "assign en = " in m.description for m in mutants)


def test_draw_is_seeded_and_stratified(mutants):
    a = select_mutants(mutants, 40, seed=7)
    assert [m.id for m in a] == [m.id for m in select_mutants(mutants, 40, seed=7)]
    assert [m.id for m in a] != [m.id for m in select_mutants(mutants, 40, seed=8)]
    assert len({m.id for m in a}) == 40
    strata = {(m.category, m.region) for m in mutants}
    assert {(m.category, m.region) for m in a[:len(strata)]} == strata


def test_mutants_compile(tmp_path, verilog, mutants):
    simulator_path()
    if shutil.which("iverilog") is None:
        pytest.skip("icarus not installed")
    for m in select_mutants(mutants, 24, seed=3):
        src = tmp_path / "m.v"
        src.write_text(apply_mutant(verilog, m))
        r = subprocess.run(["iverilog", "-g2005", "-s", TOP_NAME, "-o", str(tmp_path / "m.vvp"), str(src)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (m.id, r.stderr[-1000:])
