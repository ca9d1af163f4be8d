"""Quantization specification: bit width, signedness, range and rounding of integer codes.

Stdlib only, so that every package (including ``rtl`` and the design point) can import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from quant.errors import invalid

MIN_BITS = 1
MAX_BITS = 8


class Rounding(str, enum.Enum):
    """Rounding of a float to an integer code (float -> code only).

    The integer requantizer always rounds half up (see :func:`quant.reference.round_shift`).
    """

    HALF_EVEN = "half_even"  #: ties to even: numpy ``rint``, ``torch.round``
    HALF_UP = "half_up"  #: ties toward +inf: ``floor(v) + [v - floor(v) >= 0.5]`` (exact)
    FLOOR = "floor"  #: toward -inf

    @classmethod
    def parse(cls, value: "Rounding | str") -> "Rounding":
        if isinstance(value, Rounding):
            return value
        try:
            return cls(value)
        except ValueError:
            raise invalid("rounding", value, f"one of {[m.value for m in cls]}") from None


@dataclass(frozen=True)
class QuantSpec:
    """How integer codes are formed.

    Parameters
    ----------
    bits : int
        Code width, 1..8.
    signed : bool
        ``False``: codes in ``[0, 2**bits - 1]`` (the paper's asymmetric form).
        ``True``: two's complement codes in ``[-2**(bits-1), 2**(bits-1) - 1]``.
    narrow_range : bool
        Drop the most negative code (signed) or the top code (unsigned), giving a range
        symmetric about zero for signed codes.
    rounding : Rounding or str
        Rounding of float -> code.

    Raises
    ------
    QuantError
        For bits outside 1..8, a narrow range with no code left, or an unknown rounding mode.
    """

    bits: int
    signed: bool = False
    narrow_range: bool = False
    rounding: Rounding = Rounding.HALF_EVEN

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise invalid("bits", self.bits, "an int")
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise invalid("bits", self.bits, f"in {MIN_BITS}..{MAX_BITS}")
        if not isinstance(self.signed, bool):
            raise invalid("signed", self.signed, "a bool")
        if not isinstance(self.narrow_range, bool):
            raise invalid("narrow_range", self.narrow_range, "a bool")
        if self.narrow_range and self.bits == 1:
            raise invalid("narrow_range", self.narrow_range, "False for 1-bit codes")
        object.__setattr__(self, "rounding", Rounding.parse(self.rounding))

    @property
    def qmin(self) -> int:
        """Smallest code.

        >>> QuantSpec(4, signed=True).qmin, QuantSpec(4, signed=True, narrow_range=True).qmin
        (-8, -7)
        """
        if self.signed:
            return -(1 << (self.bits - 1)) + (1 if self.narrow_range else 0)
        return 0

    @property
    def qmax(self) -> int:
        """Largest code.

        >>> QuantSpec(2).qmax, QuantSpec(2, narrow_range=True).qmax
        (3, 2)
        """
        if self.signed:
            return (1 << (self.bits - 1)) - 1
        return (1 << self.bits) - 1 - (1 if self.narrow_range else 0)

    @property
    def levels(self) -> int:
        """Number of codes, ``qmax - qmin + 1``."""
        return self.qmax - self.qmin + 1

    def check_zero_point(self, zero_point: int, field: str = "zero_point") -> int:
        """Validate that ``zero_point`` is an int inside ``[qmin, qmax]`` and return it."""
        if isinstance(zero_point, bool) or not isinstance(zero_point, (int,)) and not hasattr(zero_point, "__index__"):
            raise invalid(field, zero_point, "an int")
        z = int(zero_point)
        if not self.qmin <= z <= self.qmax:
            raise invalid(field, z, f"in the code range [{self.qmin}, {self.qmax}]")
        return z

    def to_dict(self) -> dict:
        return {"bits": self.bits, "signed": self.signed, "narrow_range": self.narrow_range,
                "rounding": self.rounding.value}

    @classmethod
    def from_dict(cls, d: dict) -> "QuantSpec":
        known = {"bits", "signed", "narrow_range", "rounding"}
        unknown = set(d) - known
        if unknown:
            raise invalid("QuantSpec key", sorted(unknown)[0], f"one of {sorted(known)}")
        return cls(**d)
