"""Named design points of the accelerator template (``quagga estimate --design NAME``).

Each preset pairs a DRAM system, whose peak bandwidth is derived from its JEDEC standard
(channel width x data rate x channels, :data:`DRAM_SYSTEMS`), with a clock and a number of
aggregation units sized against it.  One aggregation unit of ``word_bits = 64`` takes one
8-byte feature chunk per cycle; a gathered edge also brings its index and weight, so a unit
that misses in the feature buffer asks for roughly 8-10 bytes per cycle at every precision
(the lanes grow as the codes narrow).  A design is *balanced* when the units' demand is close
to the DRAM's bytes per cycle, so that either can bind: on the shipped graphs FP32 aggregation
is then memory-bound and the narrow precisions sit near the edge (docs/cycle-model.md, "The
balanced default").

The energy per bit of each standard lives in :mod:`sim.accel.energy` (with its source); this
module holds only counts of channels, widths and rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.design.point import DesignError, DesignPoint


@dataclass(frozen=True)
class DramSystem:
    """A DRAM system: standard, channels and the peak bandwidth they give.

    Parameters
    ----------
    standard : str
        One of :data:`sim.design.point.DRAM_TYPES`.
    channels : int
        Independent channels.
    channel_bits : int
        Data width of one channel, bits.
    mtps : int
        Data rate, mega-transfers per second per pin.
    source : str
        The standard (and speed grade) the width and rate come from.
    """

    standard: str
    channels: int
    channel_bits: int
    mtps: int
    source: str

    @property
    def bandwidth_gbs(self) -> float:
        """Peak bandwidth: ``channels * channel_bits / 8 * mtps * 1e6`` bytes/s, in GB/s."""
        return self.channels * self.channel_bits / 8 * self.mtps / 1000.0

    def describe(self) -> str:
        return (f"{self.standard}, {self.channels} x {self.channel_bits}-bit channels at {self.mtps} MT/s "
                f"= {self.bandwidth_gbs:g} GB/s ({self.source})")


#: The DRAM systems the presets use.
DRAM_SYSTEMS: dict[str, DramSystem] = {
    "hbm2-1stack": DramSystem("HBM2", 8, 128, 2000, "JEDEC JESD235A: 8 channels x 128 bits per stack, 2.0 Gb/s per pin"),
    "hbm2-4stack": DramSystem("HBM2", 32, 128, 2000, "JEDEC JESD235A, four stacks of 8 x 128-bit channels, 2.0 Gb/s per pin"),
    "lpddr4-3200-x32": DramSystem("LPDDR4", 2, 16, 3200, "JEDEC JESD209-4: x16 channels, LPDDR4-3200; one x32 package"),
    "ddr4-3200-1ch": DramSystem("DDR4", 1, 64, 3200, "JEDEC JESD79-4: one 64-bit DIMM channel, DDR4-3200"),
}


@dataclass(frozen=True)
class Preset:
    """A named design point: a DRAM system plus the design keys that differ from the defaults."""

    name: str
    description: str
    dram: str
    fields: dict

    def design(self, **overrides: Any) -> DesignPoint:
        mem = DRAM_SYSTEMS[self.dram]
        d = {"name": self.name, "dram": mem.standard, "dram_bandwidth_gbs": mem.bandwidth_gbs,
             **self.fields, **overrides}
        return DesignPoint.from_dict(d)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("balanced", "the default: one HBM2 stack (256 GB/s = 512 B/cycle at 500 MHz) against 128 "
           "aggregation units of 64 bits (1024 B/cycle of feature chunks, of which the feature buffer "
           "serves part), a 32x32 dense array and 128 vector lanes", "hbm2-1stack",
           {"clock_hz": 500e6, "agg_units": 128, "dense_rows": 32, "dense_cols": 32, "vector_lanes": 128}),
    Preset("edge", "an edge accelerator: one LPDDR4-3200 x32 package (12.8 GB/s = 25.6 B/cycle at 500 MHz) "
           "against 6 aggregation units, a 256 KiB feature buffer and an 8x8 dense array", "lpddr4-3200-x32",
           {"clock_hz": 500e6, "agg_units": 6, "feature_buffer_kib": 256, "dense_rows": 8, "dense_cols": 8,
            "vector_lanes": 8}),
    Preset("edge-ddr4", "an edge accelerator on one DDR4-3200 channel (25.6 GB/s = 51.2 B/cycle at 500 MHz) "
           "against 12 aggregation units", "ddr4-3200-1ch",
           {"clock_hz": 500e6, "agg_units": 12, "feature_buffer_kib": 256, "dense_rows": 8, "dense_cols": 8,
            "vector_lanes": 8}),
    Preset("datacenter", "a datacenter accelerator: four HBM2 stacks (1024 GB/s = 1024 B/cycle at 1 GHz) "
           "against 256 aggregation units, a 2 MiB feature buffer and a 64x64 dense array", "hbm2-4stack",
           {"clock_hz": 1e9, "agg_units": 256, "feature_buffer_kib": 2048, "dense_rows": 64, "dense_cols": 64,
            "vector_lanes": 64}),
    Preset("rtl-unit", "the RTL's single aggregation unit on one HBM2 stack: compute-bound by construction "
           "(512 B/cycle against 8 B/cycle); the other units as in the design files' defaults", "hbm2-1stack",
           {"clock_hz": 500e6, "agg_units": 1}),
)}

DEFAULT_PRESET = "balanced"


def preset(name: str, **overrides: Any) -> DesignPoint:
    """The design point of preset ``name`` with ``overrides`` applied.

    Raises
    ------
    DesignError
        Unknown name (the message lists the presets) or an invalid override.
    """
    if name not in PRESETS:
        raise DesignError(f"design preset must be one of {sorted(PRESETS)} or a TOML file, not {name!r}")
    return PRESETS[name].design(**overrides)
