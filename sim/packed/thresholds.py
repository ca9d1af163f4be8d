"""Output-level thresholds of the vector-IR row kernel: the requantizer chain of a row
sum inverted into a sorted table of integer thresholds, and the shape predicates that say
which rows the kernel takes."""

from __future__ import annotations

import numpy as np


#: threshold sentinels of :func:`level_thresholds` ("always" / "never" reached)
_NEVER = 1 << 40


def level_thresholds(out_m: int, out_n: int, out_z: int, out_qmin: int, out_qmax: int,
                     upd_on: bool, upd_m: int, upd_n: int, upd_z: int, upd_qmin: int,
                     upd_qmax: int) -> np.ndarray | None:
    """The requantizer chain of a row as thresholds on the exact row sum (Python integers).

    The aggregate requantizer ``f1(D) = clamp(((D * m + h) >> n) + z, qmin, qmax)`` (``h`` the
    rounding half) and, if on, the update requantizer ``f2`` applied to its code are
    non-decreasing in the row sum ``D`` when both multipliers are ``>= 0``.  The final code
    is then ``fqmin + #{j : D >= theta[j]}`` with ``theta[j]`` the smallest ``D`` whose code
    reaches ``fqmin + 1 + j``: ``ceil((((c - z) << n) - h) / m)`` for the first-stage code
    ``c`` the update stage needs.  Exact for every shift and multiplier of the contract.

    Returns
    -------
    numpy.ndarray or None
        int64 ``(fqmax - fqmin,)`` non-decreasing thresholds (``-2**40`` / ``2**40`` for
        levels reached by every / no sum), or None when the chain is not monotone (a
        negative multiplier or shift) or has more than 16 output levels.
    """
    if out_m < 0 or out_n < 0 or (upd_on and (upd_m < 0 or upd_n < 0)):
        return None
    fqmin, fqmax = (upd_qmin, upd_qmax) if upd_on else (out_qmin, out_qmax)
    if fqmax - fqmin > 15:
        return None
    h_out = (1 << (out_n - 1)) if out_n > 0 else 0
    h_upd = (1 << (upd_n - 1)) if upd_on and upd_n > 0 else 0
    theta = []
    for level in range(fqmin + 1, fqmax + 1):
        c = level
        if upd_on:  # smallest first-stage code whose update code reaches `level`
            if upd_m == 0:
                c = out_qmin if min(max((h_upd >> upd_n) + upd_z, upd_qmin), upd_qmax) >= level \
                    else out_qmax + 1
            else:
                c = max(out_z - ((h_upd - ((level - upd_z) << upd_n)) // upd_m), out_qmin)
        if c > out_qmax:
            t = _NEVER
        elif c <= out_qmin:
            t = -_NEVER
        elif out_m == 0:
            t = -_NEVER if (h_out >> out_n) + out_z >= c else _NEVER
        else:
            t = -((h_out - ((c - out_z) << out_n)) // out_m)
        theta.append(max(-_NEVER, min(_NEVER, t)))
    return np.array(theta, dtype=np.int64)


def vector_rows_shape(bits: int, row_bytes: int, pack_bits: int, w_zero: int) -> bool:
    """Whether operands of this shape suit the vector-IR row kernel
    (:mod:`sim.packed.row_vector_ir`): INT2/INT4 rows of a multiple of 4 bytes, weight zero point 0,
    output packed at the input width."""
    return (bits in (2, 4) and row_bytes % 4 == 0 and row_bytes > 0 and pack_bits == bits
            and w_zero == 0)


def vector_rows_supported(bits: int, row_bytes: int, pack_bits: int, w_zero: int,
                          thresholds: np.ndarray | None) -> bool:
    """Whether :func:`aggregate_planes` takes the vector-IR row kernel: the shape of
    :func:`vector_rows_shape` and a monotone requantizer chain (``thresholds`` from
    :func:`level_thresholds`, not None)."""
    return vector_rows_shape(bits, row_bytes, pack_bits, w_zero) and thresholds is not None
