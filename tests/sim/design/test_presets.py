"""Named design points: each loads, derives its bandwidth from its DRAM standard, and is selectable."""

from __future__ import annotations

import pytest

from sim.design.point import DesignError, DesignPoint, design_from_cli
from sim.design.presets import DRAM_SYSTEMS, PRESETS, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_a_valid_design_with_its_dram_bandwidth(name):
    p = PRESETS[name]
    dp = preset(name)
    mem = DRAM_SYSTEMS[p.dram]
    assert isinstance(dp, DesignPoint) and dp.name == name and dp.dram == mem.standard
    assert dp.dram_bandwidth_gbs == pytest.approx(mem.channels * mem.channel_bits / 8 * mem.mtps / 1000)
    assert "JESD" in mem.source
    assert design_from_cli(name, ["agg_units=3"]).agg_units == 3


def test_balanced_is_the_default_and_known_bandwidths():
    assert design_from_cli(None).key() == preset("balanced").key()
    # the dataclass defaults are the RTL design files' (their keys are published); the memory
    # system and the aggregation units are the balanced ones
    bal, base = preset("balanced"), DesignPoint()
    assert (bal.dram, bal.dram_bandwidth_gbs, bal.clock_hz, bal.agg_units) == \
        (base.dram, base.dram_bandwidth_gbs, base.clock_hz, base.agg_units)
    assert DRAM_SYSTEMS["hbm2-1stack"].bandwidth_gbs == 256.0
    assert DRAM_SYSTEMS["lpddr4-3200-x32"].bandwidth_gbs == 12.8
    assert DRAM_SYSTEMS["ddr4-3200-1ch"].bandwidth_gbs == 25.6


def test_unknown_preset_and_later_field_keys():
    with pytest.raises(DesignError, match="preset"):
        preset("laptop")
    # agg_units joined the design later: at its default it leaves published keys unchanged
    assert DesignPoint(agg_units=128).key() == DesignPoint().key() != DesignPoint(agg_units=8).key()


def test_empty_design_file_is_refused(tmp_path):
    from sim.design.point import DesignError, DesignPoint

    p = tmp_path / "d.toml"
    p.write_text("# nothing set\n")
    with pytest.raises(DesignError, match="is empty"):
        DesignPoint.load(p)
