"""Offset-binary packed feature rows: integer codes to packed bytes and back (the layout
of :func:`quant.pack.pack_codes` applied to ``q + offset``)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def pack_row(q, r, offset, bits, f, out, at):
    """Pack row ``r`` of codes ``q`` (lanes ``0 .. f - 1``) as offset-binary bytes
    ``out[at], out[at + 1], ...``: lane ``l`` in bits ``(l % per) * bits`` of byte
    ``l // per`` (``per = 8 // bits``), ``0 <= q + offset < 2**bits`` (unchecked)."""
    per = 8 // bits
    for k in range((f + per - 1) // per):
        v = np.uint32(0)
        for p in range(per):
            l = k * per + p
            if l < f:
                v |= np.uint32(np.int64(q[r, l]) + offset) << np.uint32(p * bits)
        out[at + k] = np.uint8(v)


@njit(cache=True, parallel=True)
def pack_rows(q, offset, bits, block):
    """Pack integer codes into offset-binary bytes (the layout of :func:`quant.pack.pack_codes`
    applied to ``q + offset``).

    Shapes: ``q`` (N, F) any integer dtype with ``0 <= q + offset < 2**bits`` (unchecked);
    returns uint8 (N, ceil(F * bits / 8)).
    """
    n, f = q.shape
    per = 8 // bits
    nb_bytes = (f + per - 1) // per
    out = np.empty((n, nb_bytes), dtype=np.uint8)  # pack_row writes every byte of a row
    flat = out.reshape(n * nb_bytes)
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            pack_row(q, i, offset, bits, f, flat, i * nb_bytes)
    return out


@njit(cache=True, parallel=True)
def unpack_rows(yb, offset, bits, n_feat, block):
    """Inverse of :func:`pack_rows`: offset-binary packed bytes (N, B) -> int16 codes
    ``lane - offset`` (N, n_feat)."""
    n = yb.shape[0]
    per = 8 // bits
    mask = (1 << bits) - 1
    out = np.empty((n, n_feat), dtype=np.int16)
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            for l in range(n_feat):
                v = (np.int64(yb[i, l // per]) >> ((l % per) * bits)) & mask
                out[i, l] = np.int16(v - offset)
    return out
