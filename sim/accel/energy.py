"""Energy table and the pure function that turns action counts into joules.

Counts are separate from costs: :mod:`sim.accel.cycle` and :mod:`sim.accel.accelerator` produce an
:class:`ActionCounts` (how many of each primitive action, at which bit widths, in which unit of
the accelerator) and :func:`energy` prices them with an :class:`EnergyTable`.

Every constant is an :class:`EnergyRow` (or a :class:`TechScale`) that carries its source, its
technology node and its scaling rule with bit width; ``tests/sim/accel/test_energy_table.py`` fails if a
float constant appears in this module outside such a row.  Where two sources disagree the row
holds both (``low`` and ``high``) and every result is a range.

Scaling rules (after Accelergy / hwcomponents-library, see docs/cycle-model.md):

* ``linear``  - integer adders: energy proportional to the operand width.
* ``product`` - integer multipliers: proportional to ``width_a * width_b`` (quadratic for equal
  widths), as Accelergy's ``intmultiplier`` and hwcomponents' ``AladdinMultiplier``.  Every
  unit prices a product at the widths its operands have *after* zero-point subtraction
  (:func:`centred_bits`: ``b + 1`` bits for an asymmetric code, ``b`` for a signed code with
  zero point 0), so the dense, aggregation and vector units follow one rule.
* ``per_bit`` - memories: the row is an energy per bit moved; cost = value x bits.
* ``fixed``   - FP32 units: one value per operation.

No leakage/static energy is modelled (stated in every report).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from quant.errors import QuantError

SCALINGS = ("linear", "product", "per_bit", "fixed")


@dataclass(frozen=True)
class EnergyRow:
    """One priced primitive action.

    Parameters
    ----------
    primitive : str
        Name of the action, e.g. ``"int_add"``, ``"sram_bit"``, ``"dram_bit:HBM2"``.
    low_j, high_j : float
        Energy at the reference width(s), joules (low and high estimate; equal if one source).
    ref_bits : int
        Reference operand width the values were reported at (1 for ``per_bit`` rows).
    scaling : str
        One of :data:`SCALINGS`.
    tech_nm : int
        Technology node of the low value's source, nm (0 for off-chip DRAM, which does not scale).
    source : str
        Citation of the low value, and of the high value when it differs.
    high_tech_nm : int or None
        Technology node of the high value's source when it differs from ``tech_nm``.

    Notes
    -----
    Values from a 40 nm source are used at the 45 nm reference node unscaled: Stillmaker &
    Baas (2017) tabulate no 40 nm node, and the 40/45 nm difference is smaller than the
    low/high spread of the rows that mix them.
    """

    primitive: str
    low_j: float
    high_j: float
    ref_bits: int
    scaling: str
    tech_nm: int
    source: str
    high_tech_nm: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or len(self.source.strip()) < 10:
            raise QuantError(f"energy row {self.primitive!r}: source must cite where the value "
                             f"comes from, not {self.source!r}")
        if self.scaling not in SCALINGS:
            raise QuantError(f"energy row {self.primitive!r}: scaling must be one of {SCALINGS}, "
                             f"not {self.scaling!r}")
        if not (0 < self.low_j <= self.high_j) or not math.isfinite(self.high_j):
            raise QuantError(f"energy row {self.primitive!r}: need 0 < low_j <= high_j, "
                             f"not {self.low_j!r} / {self.high_j!r}")
        if self.ref_bits < 1 or self.tech_nm < 0 or (self.high_tech_nm is not None and self.high_tech_nm < 1):
            raise QuantError(f"energy row {self.primitive!r}: ref_bits must be >= 1 and tech_nm >= 0")

    @property
    def nodes(self) -> tuple[int, int]:
        """Technology nodes of the (low, high) sources, nm."""
        return self.tech_nm, self.high_tech_nm if self.high_tech_nm is not None else self.tech_nm

    def factor(self, width_a: int, width_b: int) -> float:
        """Scale factor from the reference width(s) to ``width_a`` (x ``width_b``)."""
        if self.scaling == "linear":
            return width_a / self.ref_bits
        if self.scaling == "product":
            return (width_a * width_b) / (self.ref_bits * self.ref_bits)
        if self.scaling == "per_bit":
            return float(width_a)
        return 1.0


@dataclass(frozen=True)
class TechScale:
    """Energy factor of a technology node relative to 45 nm, with its source."""

    tech_nm: int
    factor: float
    source: str


HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm, 0.9 V"
ALADDIN = ("Accelergy Aladdin plug-in table (tanner-andrulis/accelergy-aladdin-plug-in "
           "data/*.csv), 40 nm, 5 ns latency")

#: The default table (45 nm class).  SRAM is priced per bit from Horowitz's 64-bit reads.
DEFAULT_ROWS: tuple[EnergyRow, ...] = (
    EnergyRow("int_add", 0.0857e-12, 0.1e-12, 32, "linear", 40,
              f"low: {ALADDIN}, 32b adder 0.0857 pJ (40 nm, used at 45 nm unscaled); "
              f"high: {HOROWITZ}, 32b int add 0.1 pJ", high_tech_nm=45),
    EnergyRow("int_mult", 3.1e-12, 8.63e-12, 32, "product", 45,
              f"low: {HOROWITZ}, 32b int mult 3.1 pJ; high: {ALADDIN}, 32b multiplier 8.63 pJ "
              "(40 nm, used at 45 nm unscaled)", high_tech_nm=40),
    EnergyRow("fp32_add", 0.9e-12, 0.9e-12, 32, "fixed", 45, f"{HOROWITZ}, 32b FP add 0.9 pJ"),
    EnergyRow("fp32_mult", 3.7e-12, 3.7e-12, 32, "fixed", 45, f"{HOROWITZ}, 32b FP mult 3.7 pJ"),
    EnergyRow("sram_bit:8KiB", 0.15625e-12, 0.15625e-12, 1, "per_bit", 45,
              f"{HOROWITZ}, 64-bit read of an 8 KB SRAM 10 pJ (/64 bits; write priced as read)"),
    EnergyRow("sram_bit:32KiB", 0.3125e-12, 0.3125e-12, 1, "per_bit", 45,
              f"{HOROWITZ}, 64-bit read of a 32 KB SRAM 20 pJ (/64 bits; write priced as read)"),
    EnergyRow("sram_bit:1MiB", 1.5625e-12, 1.5625e-12, 1, "per_bit", 45,
              f"{HOROWITZ}, 64-bit read of a 1 MB SRAM 100 pJ (/64 bits; write priced as read)"),
    EnergyRow("dram_bit:HBM2", 3.9e-12, 6.25e-12, 1, "per_bit", 0,
              "low: Accelergy-Project/accelergy-cacti-plug-in cacti_wrapper.py HBM2 3.9 pJ/bit; "
              "high: Accelergy-Project/hwcomponents-cacti hwcomponents_cacti.py HBM2 6.25 pJ/bit"),
    EnergyRow("dram_bit:LPDDR4", 8.0e-12, 14.0e-12, 1, "per_bit", 0,
              "low: Accelergy-Project/accelergy-cacti-plug-in cacti_wrapper.py LPDDR4 8 pJ/bit "
              "('public data'); high: H. Ha, Stanford PhD thesis (DramDSE), 32Gb LPDDR4 14 pJ/bit"),
    EnergyRow("dram_bit:DDR4", 13.75e-12, 40.0e-12, 1, "per_bit", 0,
              "low [derived]: DRAMsim3 configs/DDR4_8Gb_x8_3200.ini currents (VDD 1.2 V, tCK 0.63 ns), "
              "per x8 device and 64-bit burst: read VDD x (IDD4R 168 - IDD3N 52) mA x 4 tCK = 0.351 nJ "
              "plus one activate/precharge per burst (random 64 B gathers hit a closed row) "
              "VDD x (IDD0 57 x tRC 74 tCK - IDD3N 52 x tRAS 52 tCK - IDD2N 37 x tRP 22 tCK) = 0.529 nJ, "
              "(0.351 + 0.529) nJ / 64 bits = 13.75 pJ/bit (Micron TN-40-07 method; I/O termination and "
              f"VPP not included); high: {HOROWITZ}, 64-bit off-chip DRAM access 2.6 nJ = 40 pJ/bit"),
    EnergyRow("dram_bit:GDDR5", 14.0e-12, 14.0e-12, 1, "per_bit", 0,
              "Accelergy-Project/accelergy-cacti-plug-in cacti_wrapper.py GDDR5 14 pJ/bit"),
)

def centred_bits(bits: int, signed: bool = False, zero_point: int | None = None) -> int:
    """Width of a code after zero-point subtraction, the width a multiplier sees, bits.

    ``bits`` for a signed code with zero point 0 (symmetric), else ``bits + 1`` (an asymmetric
    code minus its zero point spans ``[-(2^b - 1), 2^b - 1]``).  ``zero_point=None`` means
    "some zero point" (the stand-in workloads, which carry no codes).
    """
    return int(bits) if (signed and zero_point == 0) else int(bits) + 1


#: Technology scaling of logic and SRAM energy relative to 45 nm (DRAM rows are not scaled).
TECH_SCALES: tuple[TechScale, ...] = (
    TechScale(45, 1.0, "reference node of the table (Horowitz ISSCC 2014)"),
    TechScale(32, 0.66, "Accelergy-Project/hwcomponents scaling/techscaling.py (Stillmaker & Baas "
                        "2017), energy vs 45 nm at 0.8 V"),
    TechScale(16, 0.17, "Accelergy-Project/hwcomponents scaling/techscaling.py (Stillmaker & Baas 2017)"),
    TechScale(7, 0.094, "Accelergy-Project/hwcomponents scaling/techscaling.py (Stillmaker & Baas "
                        "2017 to 7 nm); TPUv4i reports only 2-4x (anchors-sim 5.2), so treat as optimistic"),
)

#: SRAM capacities (bytes) of the Horowitz reference rows, for interpolation.
_SRAM_POINTS = ((8 * 1024, "sram_bit:8KiB"), (32 * 1024, "sram_bit:32KiB"), (1024 * 1024, "sram_bit:1MiB"))


@dataclass(frozen=True)
class EnergyTable:
    """A set of :class:`EnergyRow` keyed by primitive, at one technology node."""

    rows: tuple[EnergyRow, ...] = DEFAULT_ROWS
    tech_nm: int = 45

    def __post_init__(self) -> None:
        names = [r.primitive for r in self.rows]
        if len(set(names)) != len(names):
            raise QuantError(f"energy table has duplicate primitives: {sorted(names)}")
        if self.tech_nm not in {t.tech_nm for t in TECH_SCALES}:
            raise QuantError(f"tech_nm must be one of {sorted(t.tech_nm for t in TECH_SCALES)}, "
                             f"not {self.tech_nm!r}")

    @property
    def tech_factor(self) -> float:
        return next(t.factor for t in TECH_SCALES if t.tech_nm == self.tech_nm)

    def row(self, primitive: str) -> EnergyRow:
        for r in self.rows:
            if r.primitive == primitive:
                return r
        raise QuantError(f"energy table has no row for primitive {primitive!r}; "
                         f"known: {[r.primitive for r in self.rows]}")

    def cost(self, primitive: str, width_a: int = 1, width_b: int = 1) -> tuple[float, float]:
        """(low, high) joules of one action; ``sram_bit:<bytes>`` interpolates capacities."""
        if primitive.startswith("sram_bit:") and primitive[9:].isdigit():
            lo, hi = self._sram_bit(int(primitive[9:]))
            f = width_a * self.tech_factor
            return lo * f, hi * f
        r = self.row(primitive)
        f = r.factor(width_a, width_b) * (self.tech_factor if r.tech_nm else 1.0)
        return r.low_j * f, r.high_j * f

    def _sram_bit(self, capacity_bytes: int) -> tuple[float, float]:
        """Per-bit SRAM energy, log-log interpolated between the Horowitz capacities."""
        pts = [(c, self.row(p)) for c, p in _SRAM_POINTS]
        c = min(max(capacity_bytes, pts[0][0]), pts[-1][0])
        for (c0, r0), (c1, r1) in zip(pts, pts[1:]):
            if c <= c1:
                t = math.log(c / c0) / math.log(c1 / c0)
                lo = math.exp(math.log(r0.low_j) + t * (math.log(r1.low_j) - math.log(r0.low_j)))
                hi = math.exp(math.log(r0.high_j) + t * (math.log(r1.high_j) - math.log(r0.high_j)))
                return lo, hi
        return pts[-1][1].low_j, pts[-1][1].high_j  # pragma: no cover

    def to_dict(self) -> dict:
        return {"tech_nm": self.tech_nm, "tech_factor": self.tech_factor,
                "rows": [{"primitive": r.primitive, "low_pj": r.low_j * 1e12, "high_pj": r.high_j * 1e12,
                          "ref_bits": r.ref_bits, "scaling": r.scaling, "tech_nm": r.tech_nm,
                          "source": r.source} for r in self.rows]}


# ---------------------------------------------------------------------------- counts
@dataclass
class ActionCounts:
    """How many primitive actions each unit of the accelerator performs.

    Keys are ``(unit, primitive, width_a, width_b)``; values are counts (ints).  ``unit`` is
    the accelerator component (``"agg_unit"``, ``"dense_unit"``, ``"vector_unit"``,
    ``"feature_buffer"``, ``"edge_buffer"``, ``"dram"``); for memories the primitive is a
    per-bit row and the count is in *bits*.
    """

    counts: dict[tuple[str, str, int, int], int] = field(default_factory=dict)

    def add(self, unit: str, primitive: str, count: int, width_a: int = 1, width_b: int = 1) -> None:
        if count < 0:
            raise QuantError(f"action count must be >= 0, not {count!r} ({unit}/{primitive})")
        if count:
            k = (unit, primitive, int(width_a), int(width_b))
            self.counts[k] = self.counts.get(k, 0) + int(count)

    def merge(self, other: "ActionCounts", times: int = 1) -> "ActionCounts":
        for (u, p, a, b), c in other.counts.items():
            self.add(u, p, c * times, a, b)
        return self

    def total(self, unit: str | None = None, primitive_prefix: str = "") -> int:
        return sum(c for (u, p, _, _), c in self.counts.items()
                   if (unit is None or u == unit) and p.startswith(primitive_prefix))

    def to_list(self) -> list[dict]:
        return [{"unit": u, "primitive": p, "width_a": a, "width_b": b, "count": c}
                for (u, p, a, b), c in sorted(self.counts.items())]


@dataclass(frozen=True)
class EnergyReport:
    """Energy of a set of counts: totals and breakdowns, joules, as (low, high)."""

    low_j: float
    high_j: float
    by_unit: dict[str, tuple[float, float]]
    by_primitive: dict[str, tuple[float, float]]

    @property
    def mid_j(self) -> float:
        """Geometric mean of low and high (the single number used for ratios)."""
        return math.sqrt(self.low_j * self.high_j)

    def to_dict(self) -> dict:
        return {"energy_j": self.mid_j, "energy_j_low": self.low_j, "energy_j_high": self.high_j,
                "by_unit": {k: {"low_j": v[0], "high_j": v[1]} for k, v in sorted(self.by_unit.items())},
                "by_primitive": {k: {"low_j": v[0], "high_j": v[1]} for k, v in sorted(self.by_primitive.items())}}


def energy(counts: ActionCounts, table: EnergyTable) -> EnergyReport:
    """Price ``counts`` with ``table`` (pure function).

    Returns
    -------
    EnergyReport
        Totals and per-unit / per-primitive breakdowns in joules, each as (low, high).
    """
    by_unit: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    by_prim: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (unit, prim, a, b), n in counts.counts.items():
        lo, hi = table.cost(prim, a, b)
        base = prim.split(":")[0]
        for d in (by_unit[unit], by_prim[base]):
            d[0] += lo * n
            d[1] += hi * n
    low = sum(v[0] for v in by_unit.values())
    high = sum(v[1] for v in by_unit.values())
    return EnergyReport(low, high, {k: (v[0], v[1]) for k, v in by_unit.items()},
                        {k: (v[0], v[1]) for k, v in by_prim.items()})
