"""The design point: one frozen, validated description of an accelerator configuration.

Loaded from a TOML file (``configs/*.toml``) with unknown keys rejected, and passed
unchanged to the functional simulator, the RTL generator and the cycle/energy model.
Stdlib + ``quant`` only, so every package can import it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from quant.errors import QuantError
from quant.fileio import read_toml
from quant.pack import PACKABLE_BITS
from quant.reference import MAX_MULT_BITS, acc_bits_required
from quant.spec import QuantSpec

DRAM_TYPES = ("HBM2", "LPDDR4", "DDR4", "GDDR5")


class DesignError(QuantError):
    """A design point that cannot be built; the message names the field and value."""


@dataclass(frozen=True, kw_only=True)
class DesignPoint:
    """An accelerator design point.

    Parameters
    ----------
    name : str
        Human label (not part of :meth:`key`).
    bits : int
        Feature code width: 1, 2, 4 or 8.
    signed : bool
        Signed (two's complement) feature codes instead of unsigned with zero point.
    word_bits : int
        Feature bits the aggregation datapath consumes per cycle; ``lanes = word_bits // bits``.
    weight_bits : int
        Edge-weight code width (unsigned), 1..8.
    mult_bits : int
        Width of the requantization multipliers ``M`` (unsigned), 2..31.
    max_degree : int
        Largest in-degree the accumulator is sized for.
    acc_bits : int or None
        Accumulator width; ``None`` derives the overflow-free width
        :func:`quant.reference.acc_bits_required`.  A narrower explicit value is refused.
    msg_requant, upd_requant : bool
        Whether the unit requantizes each message / its output a second time (update stage).
    clock_hz : float
        Clock frequency of the accelerator, Hz.
    dram : str
        DRAM standard (one of ``DRAM_TYPES``): sets the burst size and the energy per bit.
    dram_bandwidth_gbs : float
        Peak off-chip bandwidth, GB/s (1e9 bytes/s); the presets derive it from the standard's
        channel width, data rate and channel count (:mod:`sim.design.presets`).
    agg_units : int
        Aggregation units working in parallel on consecutive tiles of rows; they share the
        DRAM bandwidth and the buffers.  1 is the RTL's single unit.
    feature_buffer_kib : int
        On-chip feature buffer, KiB.
    index_bits : int
        Width of a stored neighbour index (CSR ``indices``), bits.
    dense_rows, dense_cols : int
        MAC array of the dense (linear-layer) unit, in INT8-equivalent PEs.
    vector_lanes : int
        Lanes of the element-wise unit (SMP/APPNP combination steps).
    """

    name: str = "balanced"
    bits: int = 4
    signed: bool = False
    word_bits: int = 64
    weight_bits: int = 8
    mult_bits: int = 16
    max_degree: int = 1024
    acc_bits: int | None = None
    msg_requant: bool = False
    upd_requant: bool = False
    clock_hz: float = 500e6
    dram: str = "HBM2"
    dram_bandwidth_gbs: float = 256.0
    agg_units: int = 128
    feature_buffer_kib: int = 512
    index_bits: int = 32
    dense_rows: int = 16
    dense_cols: int = 16
    vector_lanes: int = 16

    def __post_init__(self) -> None:
        def need_int(field: str, lo: int, hi: int | None = None) -> None:
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int):
                raise DesignError(f"{field} must be an int, not {v!r}")
            if v < lo or (hi is not None and v > hi):
                rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                raise DesignError(f"{field} must be {rng}, not {v!r}")

        if not isinstance(self.name, str) or not self.name:
            raise DesignError(f"name must be a non-empty string, not {self.name!r}")
        need_int("bits", 1, 8)
        if self.bits not in PACKABLE_BITS:
            raise DesignError(f"bits must be one of {PACKABLE_BITS}, not {self.bits!r}")
        need_int("word_bits", 1, 1024)
        if self.word_bits % self.bits:
            raise DesignError(
                f"word_bits must be a multiple of bits={self.bits} so lanes divide the word, "
                f"not {self.word_bits!r}")
        need_int("weight_bits", 1, 8)
        need_int("mult_bits", 2, MAX_MULT_BITS)
        need_int("max_degree", 1)
        for f in ("signed", "msg_requant", "upd_requant"):
            if not isinstance(getattr(self, f), bool):
                raise DesignError(f"{f} must be a bool, not {getattr(self, f)!r}")
        if self.acc_bits is not None:
            need_int("acc_bits", 2, 48)
            if self.acc_bits < self.required_acc_bits:
                raise DesignError(
                    f"acc_bits must be >= {self.required_acc_bits} (bits={self.bits} + "
                    f"weight_bits={self.weight_bits} + ceil(log2(max_degree={self.max_degree})) + 1), "
                    f"not {self.acc_bits!r}")
        elif self.required_acc_bits > 48:
            raise DesignError(f"max_degree must give an accumulator of at most 48 bits, not {self.max_degree!r}")
        for f in ("clock_hz", "dram_bandwidth_gbs"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise DesignError(f"{f} must be a positive number, not {v!r}")
        if self.dram not in DRAM_TYPES:
            raise DesignError(f"dram must be one of {DRAM_TYPES}, not {self.dram!r}")
        need_int("agg_units", 1, 4096)
        need_int("feature_buffer_kib", 1)
        need_int("index_bits", 8, 64)
        need_int("dense_rows", 1)
        need_int("dense_cols", 1)
        need_int("vector_lanes", 1)

    # ----------------------------------------------------------------- derived values
    @property
    def lanes(self) -> int:
        """Feature lanes per datapath word: ``word_bits // bits``."""
        return self.word_bits // self.bits

    @property
    def required_acc_bits(self) -> int:
        return acc_bits_required(self.bits, self.weight_bits, self.max_degree)

    @property
    def acc_width(self) -> int:
        """The accumulator width in use (explicit or derived), bits."""
        return self.acc_bits if self.acc_bits is not None else self.required_acc_bits

    @property
    def feat_spec(self) -> QuantSpec:
        return QuantSpec(self.bits, signed=self.signed)

    @property
    def weight_spec(self) -> QuantSpec:
        return QuantSpec(self.weight_bits)

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def key(self) -> str:
        """Stable short name: ``b<bits>w<word_bits>-<hash>``; the hash covers every field but ``name``.

        Fields added after the first release (:data:`LATER_FIELDS`) enter the hash only when they
        differ from their default, so every key named before they existed still names the
        same design point.
        """
        d = self.to_dict()
        d.pop("name")
        for f in LATER_FIELDS:
            if d[f] == _DEFAULTS[f]:
                d.pop(f)
        h = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]
        return f"b{self.bits}w{self.word_bits}-{h}"

    def replace(self, **changes: Any) -> "DesignPoint":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DesignPoint":
        if not isinstance(d, dict):
            raise DesignError(f"design point must be a table of keys, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        for k in d:
            if k not in known:
                raise DesignError(f"design point key {k!r} is unknown; known keys: {sorted(known)}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "DesignPoint":
        """Load a TOML design file (top-level keys, or a ``[design]`` table)."""
        p = Path(path)
        data = read_toml(p, "design file", DesignError)
        if "design" in data and isinstance(data["design"], dict):
            data = data["design"]
        if not data:
            raise DesignError(f"design file {str(p)!r} is empty: a design file must set at least "
                              f"one key (e.g. bits = 4)")
        data = {**data, **overrides}
        data.setdefault("name", p.stem)
        return cls.from_dict(data)


#: Fields added after keys were first published (see :meth:`DesignPoint.key`).
LATER_FIELDS = ("agg_units",)
_DEFAULTS = {f.name: f.default for f in fields(DesignPoint)}


def design_from_cli(path: str | Path | None, sets: list[str] | tuple[str, ...] = ()) -> "DesignPoint":
    """The design point of a command line: ``path`` is a TOML file or the name of a preset of
    :mod:`sim.design.presets` (the ``balanced`` defaults when None), with ``--set key=value``
    overrides ``sets`` applied."""
    from sim.design.presets import PRESETS, preset

    overrides = dict(parse_override(s) for s in sets)
    if path and (str(path) in PRESETS or (not str(path).endswith(".toml") and not Path(path).exists())):
        return preset(str(path), **overrides)
    if path:
        return DesignPoint.load(path, **overrides)
    return preset("balanced", **overrides)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``--set key=value`` override (value read as a TOML value, else a string)."""
    if "=" not in text:
        raise DesignError(f"override must look like key=value, not {text!r}")
    k, v = text.split("=", 1)
    try:
        val = tomllib.loads(f"v = {v}")["v"]
    except tomllib.TOMLDecodeError:
        val = v
    return k.strip(), val
