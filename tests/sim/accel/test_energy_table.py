"""The energy table: provenance of every constant, scaling rules, pure pricing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sim.accel.energy as energy_mod
from quant.errors import QuantError
from sim.accel.energy import DEFAULT_ROWS, TECH_SCALES, ActionCounts, EnergyRow, EnergyTable, energy

ROW_CALLS = {"EnergyRow", "TechScale"}


def _float_constants_outside_rows(tree: ast.AST) -> list[tuple[int, float]]:
    """Float literals of a module that are not arguments of an EnergyRow/TechScale call."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ROW_CALLS:
            inside.update(id(n) for n in ast.walk(node))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, float) and id(n) not in inside
            and not _unit_conversion(n.value)]


def _unit_conversion(v: float) -> bool:
    """0, 1 and exact powers of ten (J <-> pJ) are unit conversions, not energy constants."""
    return v == 0.0 or any(v == 10.0 ** k for k in range(-18, 19))


def test_every_energy_constant_is_a_row_with_a_source():
    tree = ast.parse(Path(energy_mod.__file__).read_text())
    stray = _float_constants_outside_rows(tree)
    assert not stray, f"energy constants outside an EnergyRow/TechScale (no source): {stray}"


@pytest.mark.parametrize("row", DEFAULT_ROWS, ids=lambda r: r.primitive)
def test_row_cites_source_node_and_scaling(row):
    assert len(row.source) >= 20
    assert any(tag in row.source for tag in ("ISSCC", "Accelergy", "thesis", "Ramulator", "hwcomponents"))
    assert row.scaling in ("linear", "product", "per_bit", "fixed")
    assert row.tech_nm in (0, 40, 45)  # 0 = off-chip DRAM (not scaled)


def test_tech_scales_cite_sources():
    assert all(len(t.source) >= 20 and 0 < t.factor <= 1 for t in TECH_SCALES)


def test_row_without_source_is_refused():
    with pytest.raises(QuantError, match="source"):
        EnergyRow("int_add", 1e-13, 1e-13, 32, "linear", 45, "")
    with pytest.raises(QuantError, match="low_j"):
        EnergyRow("int_add", 2e-13, 1e-13, 32, "linear", 45, "Horowitz ISSCC 2014")


def test_scaling_rules():
    t = EnergyTable()
    lo32, hi32 = t.cost("int_add", 32)
    lo8, hi8 = t.cost("int_add", 8)
    assert lo8 == pytest.approx(lo32 / 4) and hi8 == pytest.approx(hi32 / 4)
    m32 = t.cost("int_mult", 32, 32)[0]
    assert t.cost("int_mult", 8, 8)[0] == pytest.approx(m32 / 16)
    assert t.cost("int_mult", 2, 8)[0] == pytest.approx(m32 / 64)
    assert t.cost("fp32_add")[0] == pytest.approx(0.9e-12)
    assert t.cost("dram_bit:HBM2", 8) == pytest.approx((8 * 3.9e-12, 8 * 6.25e-12))
    # SRAM: exact at the reference capacities, monotone in between
    assert t.cost("sram_bit:8192")[0] == pytest.approx(10e-12 / 64)
    assert t.cost("sram_bit:1048576")[0] == pytest.approx(100e-12 / 64)
    assert t.cost("sram_bit:8192")[0] < t.cost("sram_bit:65536")[0] < t.cost("sram_bit:1048576")[0]


def test_tech_scaling_leaves_dram_alone():
    t45, t7 = EnergyTable(), EnergyTable(tech_nm=7)
    assert t7.cost("int_add", 16)[0] == pytest.approx(0.094 * t45.cost("int_add", 16)[0])
    assert t7.cost("dram_bit:HBM2") == t45.cost("dram_bit:HBM2")
    with pytest.raises(QuantError, match="tech_nm"):
        EnergyTable(tech_nm=22)


def test_energy_is_pure_and_sums_breakdowns():
    c = ActionCounts()
    c.add("agg_unit", "int_add", 1000, 16)
    c.add("dram", "dram_bit:HBM2", 8 * 4096)
    before = dict(c.counts)
    t = EnergyTable()
    r1, r2 = energy(c, t), energy(c, t)
    assert c.counts == before and r1 == r2
    assert r1.low_j == pytest.approx(sum(v[0] for v in r1.by_unit.values()))
    assert r1.high_j == pytest.approx(sum(v[1] for v in r1.by_primitive.values()))
    assert r1.low_j <= r1.mid_j <= r1.high_j
    assert r1.by_unit["dram"][0] == pytest.approx(8 * 4096 * 3.9e-12)


def test_unknown_primitive_and_negative_count():
    with pytest.raises(QuantError, match="no row"):
        EnergyTable().cost("int_div", 8)
    with pytest.raises(QuantError, match=">= 0"):
        ActionCounts().add("x", "int_add", -1, 8)


def test_each_source_keeps_its_own_node_and_the_docstring_names_real_tests():
    rows = {r.primitive: r for r in DEFAULT_ROWS}
    assert rows["int_add"].nodes == (40, 45) and "40 nm" in rows["int_add"].source
    assert rows["int_mult"].nodes == (45, 40)
    ddr4 = rows["dram_bit:DDR4"]
    assert "activate" in ddr4.source and ddr4.low_j == pytest.approx(13.75e-12)
    repo = Path(energy_mod.__file__).resolve().parents[2]
    import re

    for name in re.findall(r"tests/[\w/]+\.py", energy_mod.__doc__ or ""):
        assert (repo / name).is_file(), name
