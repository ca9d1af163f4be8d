"""SWAR row kernels of the packed aggregation: rows of one or two packed bytes summed in
16-bit slots of one 64-bit word, and INT4 rows read as native uint16 words."""

from __future__ import annotations

import sys

import numpy as np
from numba import njit, prange

from sim.packed.row_ops import out_chain, requant_planes


#: the INT4 word path reads two packed bytes as one native uint16 (lane order needs little endian)
LITTLE_ENDIAN = sys.byteorder == "little"


@njit(cache=True)
def spread_table(bits):
    """Byte -> uint64 with the byte's lanes (``bits`` wide, at most four) in 16-bit slots:
    slot ``p`` holds lane ``p``, so one 64-bit multiply-add serves every lane of a byte (SWAR)."""
    table = np.zeros(256, dtype=np.uint64)
    slots = min(8 // bits, 4)
    for v in range(256):
        t = np.uint64(0)
        for p in range(slots):
            t |= np.uint64((v >> (p * bits)) & ((1 << bits) - 1)) << np.uint64(16 * p)
        table[v] = t
    return table


@njit(cache=True, inline="always")
def swar_flush(a, tot, k, nb, planes):
    """Add the 16-bit slots of SWAR word ``a`` (byte ``k`` of the row) to the plane totals."""
    for p in range(planes):
        tot[p * nb + k] += np.int64((a >> np.uint64(16 * p)) & np.uint64(0xFFFF))




@njit(cache=True, parallel=True)
def tight_rows_swar(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                     out_m, out_n, out_z, out_qmin, out_qmax,
                     upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits,
                     pack_off, y, yb):
    """:func:`tight_rows` for INT2/INT4 rows of one or two bytes (few features; the
    general kernel's SWAR path with the checks moved out of the edge loop): a
    256-entry table spreads a byte's lanes into the 16-bit slots of a uint64, so one
    multiply-add per byte and edge accumulates all its lanes (slot ``p`` of word ``k`` is
    lane ``k * P + p``).  Same checks, flags and results as :func:`tight_rows`."""
    n_rows = indptr.shape[0] - 1
    nb = xb.shape[1]
    planes = 8 // bits
    umask = (1 << bits) - 1
    budget16 = np.int64(65535 // umask)
    spread = spread_table(bits)
    todo = np.empty(n_rows, dtype=np.bool_)  # set for every row below
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        r = np.zeros(2 * planes, dtype=np.int64)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            a0 = np.uint64(0)
            a1 = np.uint64(0)
            s_w = np.int64(0)
            if nb == 1:
                for e in range(indptr[i], indptr[i + 1]):
                    we = w[e]
                    s_w += np.int64(we)
                    a0 += spread[xb[indices[e], 0]] * np.uint64(we)
            else:
                for e in range(indptr[i], indptr[i + 1]):
                    we = w[e]
                    src = indices[e]
                    s_w += np.int64(we)
                    a0 += spread[xb[src, 0]] * np.uint64(we)
                    a1 += spread[xb[src, 1]] * np.uint64(we)
            todo[i] = s_w > budget16 or s_w * x_cmax > lim
            if todo[i]:
                continue
            n_l = min(n_feat, nb * planes)
            for l in range(n_l):
                a = a0 if l < planes else a1
                slot = np.int64((a >> np.uint64(16 * (l % planes))) & np.uint64(0xFFFF))
                r[l] = out_chain(slot - z_u * s_w, out_m, out_n, out_z, out_qmin, out_qmax, upd_on,
                                 upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
            if pack_bits == 0:
                for l in range(n_l):
                    y[i, l] = r[l]
            else:
                for k in range(nb):
                    v = np.int64(0)
                    for p in range(planes):
                        l = k * planes + p
                        if l < n_feat:
                            v |= (r[l] + pack_off) << (p * bits)
                    yb[i, k] = np.uint8(v)
    return todo


@njit(cache=True, parallel=True)
def tight_rows_int4_words(indptr, indices, w, xw, n_feat, z_u, x_cmax, lim,
                           out_m, out_n, out_z, out_qmin, out_qmax,
                           upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits,
                           pack_off, y, yb):
    """:func:`tight_rows` for INT4 rows of an even number of bytes, read as little-endian
    uint16 words ``xw`` (N, B/2): nibble ``j`` of word ``m`` is lane ``4m + j``, so four
    constant shift-and-mask planes of 16-bit lanes replace the byte widening.  Same flags,
    same results."""
    n_rows = indptr.shape[0] - 1
    nw = xw.shape[1]
    budget16 = np.int64(65535 // 15)
    last_lanes = n_feat - (2 * nw - 1) * 2  # valid lanes in the last byte (1 or 2)
    todo = np.empty(n_rows, dtype=np.bool_)  # set for every row below
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        acc = np.zeros((4, nw), dtype=np.uint16)
        r = np.zeros((4, nw), dtype=np.int64)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            start = indptr[i]
            end = indptr[i + 1]
            for p in range(4):
                for k in range(nw):
                    acc[p, k] = 0
            s_w = np.int64(0)
            for e in range(start, end):
                src = indices[e]
                s_w += np.int64(w[e])
                wv = np.uint16(w[e])
                for k in range(nw):
                    v = xw[src, k]
                    acc[0, k] += (v & np.uint16(15)) * wv
                    acc[1, k] += ((v >> np.uint16(4)) & np.uint16(15)) * wv
                    acc[2, k] += ((v >> np.uint16(8)) & np.uint16(15)) * wv
                    acc[3, k] += (v >> np.uint16(12)) * wv
            todo[i] = s_w > budget16 or s_w * x_cmax > lim
            if todo[i]:
                continue
            requant_planes(acc, r, 4, nw, z_u * s_w, out_m, out_n, out_z, out_qmin,
                           out_qmax, upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
            if pack_bits == 0:
                for k in range(nw):
                    for p in range(4):
                        if 4 * k + p < n_feat:
                            y[i, 4 * k + p] = r[p, k]
            else:
                for k in range(nw):
                    yb[i, 2 * k] = np.uint8((r[0, k] + pack_off) | ((r[1, k] + pack_off) << 4))
                    yb[i, 2 * k + 1] = np.uint8((r[2, k] + pack_off) | ((r[3, k] + pack_off) << 4))
                if last_lanes < 2:
                    yb[i, 2 * nw - 1] &= np.uint8(15)
    return todo
