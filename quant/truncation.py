"""Bitwise truncation (BT) and skewness-aware BT* of 8-bit codes to four levels (numpy).

The paper's INT2 modes quantize on the **8-bit** grid first and then keep one of the four
8-bit codes ``{0, 85, 170, 255}`` (``255 = 3 * 85``)::

    q8 = clamp(R(x / s8 + z8), 0, 255)                 # quant.reference.quantize, uint8 spec
    BT : q' = 85 * round(q8 / 85)
    BT*: q' = clamp(85 * round((q8 + sk) / 85), 0, 255)  # sk: integer-rounded skewness

and dequantize with the 8-bit ``(s8, z8)``: ``x_hat = (q' - z8) * s8``.

Representation (the contract): a BT tensor is an **8-bit tensor** ``(q', s8, z8)`` with the
unsigned 8-bit spec whose codes happen to lie on the grid ``{0, 85, 170, 255}``.  It is
*stored* as the 2-bit code ``c = q' // 85`` (packed like any INT2 tensor) and expanded back
with ``q' = 85 * c`` before any integer arithmetic.  The 2-bit view ``value = 85*s8 *
(c - z8/85)`` would need the fractional zero point ``z8 / 85``, so it is not used for
arithmetic.  See ``docs/numerics.md``.

Because 85 is odd, ``round(t / 85)`` of an integer ``t`` never meets a tie and equals
``(t + 42) // 85`` (floor division), which is what :func:`truncate_codes` computes.
"""

from __future__ import annotations

import math

import numpy as np

from quant.errors import invalid
from quant.reference import check_finite, quantize
from quant.spec import QuantSpec

#: Distance between the four BT levels on the 8-bit grid.
BT_STEP = 85
#: The four 8-bit codes a BT / BT* tensor can hold.
BT_LEVELS = (0, 85, 170, 255)
#: The 8-bit spec every BT tensor uses.
BT_SPEC = QuantSpec(8)
#: Largest |skew| accepted (a larger shift would move every code to one end).
MAX_SKEW = 127


def check_skew(skew: int, field: str = "skew") -> int:
    """Validate the integer skewness shift of BT* (an int in -127..127)."""
    if isinstance(skew, bool) or not isinstance(skew, (int, np.integer)):
        raise invalid(field, skew, "an int")
    if not -MAX_SKEW <= int(skew) <= MAX_SKEW:
        raise invalid(field, int(skew), f"in -{MAX_SKEW}..{MAX_SKEW}")
    return int(skew)


def _codes_in(name: str, a, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """``a`` as int64, checked to be integer codes (in ``[lo, hi]`` when given); the
    ``QuantError`` names ``name``."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise invalid(f"{name}.dtype", str(a.dtype), "an integer dtype")
    a = a.astype(np.int64)
    if lo is not None and a.size and (a.min() < lo or a.max() > hi):
        raise invalid(name, (int(a.min()), int(a.max())), f"in [{lo}, {hi}]")
    return a


def truncate_codes(q8: np.ndarray, skew: int = 0) -> np.ndarray:
    """Map 8-bit codes to the nearest of ``{0, 85, 170, 255}`` after adding ``skew``.

    ``skew = 0`` is BT; a non-zero ``skew`` is BT* (the result is clipped to [0, 255]).

    Shapes: ``q8`` any shape, integer codes in [0, 255]; returns int32 of the same shape.

    >>> truncate_codes(np.array([0, 42, 43, 127, 128, 212, 213, 255])).tolist()
    [0, 0, 85, 85, 170, 170, 255, 255]
    >>> truncate_codes(np.array([0, 40, 42, 43]), skew=2).tolist()
    [0, 0, 85, 85]
    """
    q = _codes_in("q8", q8, 0, 255)
    sk = check_skew(skew)
    t = ((q + sk + BT_STEP // 2) // BT_STEP) * BT_STEP
    return np.clip(t, 0, 255).astype(np.int32)


def quantize_bt(x: np.ndarray, scale: float, zero_point: int, skew: int = 0) -> np.ndarray:
    """Float -> BT (``skew = 0``) or BT* codes on the 8-bit grid.

    ``truncate_codes(quantize(x, scale, zero_point, QuantSpec(8)), skew)``.

    Returns int32 codes in ``{0, 85, 170, 255}``, same shape as ``x``.
    """
    return truncate_codes(quantize(x, scale, zero_point, BT_SPEC), skew)


def bt_storage_codes(q: np.ndarray) -> np.ndarray:
    """8-bit BT codes -> 2-bit storage codes ``c = q // 85`` in {0, 1, 2, 3} (int32)."""
    q = _codes_in("q", q)
    off = q[(q % BT_STEP != 0) | (q < 0) | (q > 255)]
    if off.size:
        raise invalid("BT code", int(off[0]), f"one of {BT_LEVELS}")
    return (q // BT_STEP).astype(np.int32)


def bt_expand_codes(c: np.ndarray) -> np.ndarray:
    """2-bit storage codes -> 8-bit BT codes ``85 * c`` (int32)."""
    return (_codes_in("c", c, 0, 3) * BT_STEP).astype(np.int32)


def fisher_pearson_skew(x: np.ndarray) -> float:
    """Biased Fisher-Pearson skewness ``m3 / m2**1.5`` in float64 (0 for a constant tensor).

    The same estimator as ``scipy.stats.skew(x, bias=True)`` (the paper's code).
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    check_finite(v)
    if v.size == 0:
        raise invalid("x.size", 0, "> 0")
    d = v - v.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0.0:
        return 0.0
    m3 = float(np.mean(d * d * d))
    return m3 / m2 ** 1.5


def rounded_skew(x: np.ndarray) -> int:
    """The BT* shift: Fisher-Pearson skewness rounded half to even, limited to +-127."""
    g = fisher_pearson_skew(x)
    return int(max(-MAX_SKEW, min(MAX_SKEW, round(g)))) if math.isfinite(g) else 0
