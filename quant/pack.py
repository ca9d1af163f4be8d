"""Sub-byte packing, defined once: lane 0 in the least significant bits.

INT2: four codes per byte, INT4: two, INT8: one.  A lane holds the code's low ``bits``
bits (two's complement for signed codes).  The same layout is used for the RTL's stream
words (``word_bits / bits`` lanes per word) and tested against Amaranth's
``lib.data.ArrayLayout`` in ``tests/rtl``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quant.errors import invalid

PACKABLE_BITS = (1, 2, 4, 8)


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or int(bits) not in PACKABLE_BITS:
        raise invalid("bits", bits, f"one of {PACKABLE_BITS} for packing")
    return int(bits)


def lanes_per_byte(bits: int) -> int:
    """Codes per byte: 8 // bits."""
    return 8 // _check_bits(bits)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack codes along the last axis into bytes.

    Parameters
    ----------
    codes : integer array (..., F)
        Codes; only the low ``bits`` bits of each are kept, so signed codes are stored in
        two's complement.  Values outside the ``bits``-bit signed or unsigned range raise.
    bits : {1, 2, 4, 8}

    Returns
    -------
    np.ndarray of uint8, shape (..., ceil(F * bits / 8))
        Lane ``k`` of byte ``i`` holds code ``i * (8 // bits) + k`` in bits
        ``[k*bits, (k+1)*bits)``.  Missing lanes of the last byte are 0.
    """
    bits = _check_bits(bits)
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise invalid("codes.dtype", str(c.dtype), "an integer dtype")
    c = c.astype(np.int64)
    if c.size and (c.min() < -(1 << (bits - 1)) or c.max() > (1 << bits) - 1):
        raise invalid("codes", (int(c.min()), int(c.max())), f"representable in {bits} bits")
    per = 8 // bits
    f = c.shape[-1] if c.ndim else 1
    c = c.reshape(c.shape[:-1] + (f,)) if c.ndim else c.reshape(1)
    nbytes = -(-f // per)
    pad = nbytes * per - f
    if pad:
        c = np.concatenate([c, np.zeros(c.shape[:-1] + (pad,), np.int64)], axis=-1)
    c = (c & ((1 << bits) - 1)).reshape(c.shape[:-1] + (nbytes, per))
    shifts = np.arange(per, dtype=np.int64) * bits
    return (c << shifts).sum(axis=-1).astype(np.uint8)


def unpack_codes(packed: np.ndarray, bits: int, count: int, signed: bool = False) -> np.ndarray:
    """Inverse of :func:`pack_codes`.

    Shapes: ``packed`` (..., B) uint8; returns int32 (..., count) with ``count <= B * 8 // bits``.
    """
    bits = _check_bits(bits)
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise invalid("packed.dtype", str(p.dtype), "uint8")
    per = 8 // bits
    if not 0 <= count <= p.shape[-1] * per:
        raise invalid("count", count, f"in 0..{p.shape[-1] * per}")
    shifts = np.arange(per, dtype=np.int64) * bits
    lanes = (p.astype(np.int64)[..., None] >> shifts) & ((1 << bits) - 1)
    lanes = lanes.reshape(p.shape[:-1] + (p.shape[-1] * per,))[..., :count]
    if signed:
        lanes = np.where(lanes >= (1 << (bits - 1)), lanes - (1 << bits), lanes)
    return lanes.astype(np.int32)


def pack_fields(values: Sequence[int], widths: Sequence[int]) -> int:
    """Pack integer fields into one word, field 0 in the least significant bits.

    Each value is reduced to its low ``width`` bits (two's complement for negatives).
    This is the layout of an Amaranth ``data.StructLayout``/``ArrayLayout`` and of the
    flattened stream payloads in the generated Verilog.
    """
    if len(values) != len(widths):
        raise invalid("len(values)", len(values), f"equal to len(widths)={len(widths)}")
    word, pos = 0, 0
    for v, w in zip(values, widths):
        v = int(v)
        if w < 1:
            raise invalid("width", w, ">= 1")
        if v < -(1 << (w - 1)) or v > (1 << w) - 1:
            raise invalid("field value", v, f"representable in {w} bits")
        word |= (v & ((1 << w) - 1)) << pos
        pos += w
    return word


def unpack_fields(word: int, widths: Sequence[int], signed: Sequence[bool] | None = None) -> list[int]:
    """Inverse of :func:`pack_fields`."""
    out, pos = [], 0
    signed = signed if signed is not None else [False] * len(widths)
    for w, s in zip(widths, signed):
        v = (int(word) >> pos) & ((1 << w) - 1)
        if s and v >= (1 << (w - 1)):
            v -= 1 << w
        out.append(v)
        pos += w
    return out


def pack_word(codes: Sequence[int], bits: int) -> int:
    """Pack ``len(codes)`` lanes of ``bits`` bits into one integer word (lane 0 at the LSB)."""
    return pack_fields(list(codes), [bits] * len(codes))


def unpack_word(word: int, bits: int, lanes: int, signed: bool = False) -> list[int]:
    """Inverse of :func:`pack_word`."""
    return unpack_fields(word, [bits] * lanes, [signed] * lanes)
