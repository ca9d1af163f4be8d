"""Per-row building blocks of the packed aggregation kernels (numba, inlined): the row
requantizer chain, flushes of narrow accumulators, and the plane sums of one row."""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.exact.kernels import requant_1


@njit(cache=True, inline="always")
def out_chain(v, out_m, out_n, out_z, out_qmin, out_qmax, upd_on, upd_m, upd_n, upd_z, upd_qmin,
              upd_qmax):
    """The requantizer chain of one row sum ``v``: aggregate, then (``upd_on``) update."""
    r = requant_1(v, out_m, out_n, out_z, out_qmin, out_qmax)
    if upd_on:
        r = requant_1(r - out_z, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
    return r


@njit(cache=True, inline="always")
def requant_planes(acc, r, planes, nb, offset, out_m, out_n, out_z, out_qmin, out_qmax, upd_on,
                   upd_m, upd_n, upd_z, upd_qmin, upd_qmax):
    """``r[p, k] = out_chain(acc[p, k] - offset)`` over ``planes`` x ``nb`` plane lanes: the
    requantizer chain of the row sums ``T - z_u S_w`` (``offset = z_u S_w``) of one row."""
    for p in range(planes):
        for k in range(nb):
            r[p, k] = out_chain(np.int64(acc[p, k]) - offset, out_m, out_n, out_z, out_qmin,
                                out_qmax, upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)


@njit(cache=True, inline="always")
def requant_row(r, n, m, sh, z, qmin, qmax):
    """In place over ``r[:n]`` (int64): ``clamp(round_shift(r * m, sh) + z, qmin, qmax)``
    (:func:`sim.exact.kernels.requant_1` on each lane)."""
    for l in range(n):
        r[l] = requant_1(r[l], m, sh, z, qmin, qmax)


@njit(cache=True, inline="always")
def _flush(acc, tot, n_lanes):
    """``tot[:n_lanes] += acc[:n_lanes]`` (int64), then ``acc[:n_lanes] = 0``."""
    for k in range(n_lanes):
        tot[k] += np.int64(acc[k])
        acc[k] = 0


@njit(cache=True, inline="always")
def plane_sums(xb, indices, w, start, end, bits, unit, acc16, acc32, tot):
    """``tot[p * B + k] = sum_e u_e(k, p) * w_e`` (``w_e = 1`` when ``unit``) for one row.

    Narrow vector accumulators (uint16 for ``bits <= 4``, uint32 for 8 bits) are flushed
    into the int64 totals before any lane could wrap: a lane grows by at most
    ``umax * w_e`` per edge, so a flush is due when the running sum of ``w_e`` would pass
    ``(2**width - 1) // umax``.  One branch per width keeps the shifts and masks constant
    so that LLVM vectorises the byte loops.
    """
    nb = xb.shape[1]
    n_lanes = (8 // bits) * nb
    for k in range(n_lanes):
        tot[k] = 0
    if bits == 8:
        for k in range(nb):
            acc32[k] = 0
        budget = np.int64(4294967295 // 255)
        run = np.int64(0)
        for e in range(start, end):
            we = np.int64(1) if unit else np.int64(w[e])
            if run + we > budget:
                _flush(acc32, tot, nb)
                run = np.int64(0)
            run += we
            src = indices[e]
            wv = np.uint32(we)
            for k in range(nb):
                acc32[k] += np.uint32(xb[src, k]) * wv
        _flush(acc32, tot, nb)
        return
    for k in range(n_lanes):
        acc16[k] = 0
    budget = np.int64(65535 // ((1 << bits) - 1))
    run = np.int64(0)
    for e in range(start, end):
        we = np.int64(1) if unit else np.int64(w[e])
        if run + we > budget:
            _flush(acc16, tot, n_lanes)
            run = np.int64(0)
        run += we
        src = indices[e]
        wv = np.uint16(we)
        if bits == 2:
            if nb == 1:
                v = np.uint16(xb[src, 0])
                acc16[0] = np.uint16(acc16[0] + (v & np.uint16(3)) * wv)
                acc16[1] = np.uint16(acc16[1] + ((v >> np.uint16(2)) & np.uint16(3)) * wv)
                acc16[2] = np.uint16(acc16[2] + ((v >> np.uint16(4)) & np.uint16(3)) * wv)
                acc16[3] = np.uint16(acc16[3] + (v >> np.uint16(6)) * wv)
            else:
                for k in range(nb):
                    v = np.uint16(xb[src, k])
                    acc16[k] = np.uint16(acc16[k] + (v & np.uint16(3)) * wv)
                    acc16[nb + k] = np.uint16(acc16[nb + k] + ((v >> np.uint16(2)) & np.uint16(3)) * wv)
                    acc16[2 * nb + k] = np.uint16(acc16[2 * nb + k]
                                                  + ((v >> np.uint16(4)) & np.uint16(3)) * wv)
                    acc16[3 * nb + k] = np.uint16(acc16[3 * nb + k] + (v >> np.uint16(6)) * wv)
        elif bits == 4:
            if nb == 1:
                v = np.uint16(xb[src, 0])
                acc16[0] = np.uint16(acc16[0] + (v & np.uint16(15)) * wv)
                acc16[1] = np.uint16(acc16[1] + (v >> np.uint16(4)) * wv)
            else:
                for k in range(nb):
                    v = np.uint16(xb[src, k])
                    acc16[k] = np.uint16(acc16[k] + (v & np.uint16(15)) * wv)
                    acc16[nb + k] = np.uint16(acc16[nb + k] + (v >> np.uint16(4)) * wv)
        else:  # bits == 1
            for p in range(8):
                sh = np.uint16(p)
                for k in range(nb):
                    acc16[p * nb + k] = np.uint16(acc16[p * nb + k]
                                                  + ((np.uint16(xb[src, k]) >> sh) & np.uint16(1)) * wv)
    _flush(acc16, tot, n_lanes)
