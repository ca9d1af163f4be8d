"""What the hardware is: the design point (:mod:`sim.design.point`, one frozen, validated
dataclass loaded from TOML) and the aggregation unit's stream protocol and timing
(:mod:`sim.design.stream`), shared by the RTL, its testbenches and the cycle model.
Imports ``quant`` and the standard library only."""
