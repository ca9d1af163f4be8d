"""Fast row kernels of the packed aggregation for rows that provably cannot saturate:
the vector-IR kernel (packed output) and the plane-accumulator loop."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sim.packed.row_ops import requant_planes
from sim.packed.row_vector_ir import row_chunk_packed


@njit(cache=True, parallel=True)
def tight_rows_vector(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim, thresholds,
                       fqmin, pack_off, block, yb):
    """:func:`tight_rows` for INT2/INT4 rows of a multiple of 4 bytes written packed at the
    input width, with the per-row work in :func:`sim.packed.row_vector_ir.row_chunk_packed` (chunks of
    the widest of 32, 16, 8, 4 bytes that divides the row).

    The requantizer chain is applied as thresholds on the unsigned lane sum
    ``T = D + z_u S_w`` (``D`` the exact row sum): row threshold ``theta[j] + z_u S_w``
    clamped to ``[0, 65535]`` (0: reached by every lane; 65535: by none, because the weight-sum
    budget here is ``S_w <= 65534 // umax``, so ``T <= 65534``), padded to ``2**b - 1``
    thresholds with 65535.  Rows over the budget or the accumulator bound are flagged for
    :func:`general_rows`, as in :func:`tight_rows`.
    """
    n_rows = indptr.shape[0] - 1
    nb = xb.shape[1]
    n_th = thresholds.shape[0]
    umax = (1 << bits) - 1
    budget = np.int64(65534 // umax)
    cw = 32 if nb % 32 == 0 else 16 if nb % 16 == 0 else 8 if nb % 8 == 0 else 4
    n_chunks = nb // cw
    base = fqmin + pack_off
    last_lanes = n_feat - (nb - 1) * (8 // bits)  # valid lanes in the last byte
    last_mask = np.uint8((1 << (last_lanes * bits)) - 1) if last_lanes < 8 // bits else np.uint8(255)
    todo = np.empty(n_rows, dtype=np.bool_)  # set for every row below
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        t = np.full(umax, 65535, dtype=np.uint16)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            start = indptr[i]
            end = indptr[i + 1]
            s_w = np.int64(0)
            for e in range(np.uint64(start), np.uint64(end)):  # unsigned: no wraparound check
                s_w += np.int64(w[e])
            todo[i] = s_w > budget or s_w * x_cmax > lim
            if todo[i]:
                continue
            zs = z_u * s_w
            for j in range(n_th):
                t[j] = np.uint16(min(max(thresholds[j] + zs, 0), 65535))
            # literal lane widths: one specialised intrinsic each (chunk widths switch inside)
            for c in range(n_chunks):
                if bits == 2:
                    row_chunk_packed(indices, w, xb, start, end, c, 2, cw, t, base, yb, i)
                else:
                    row_chunk_packed(indices, w, xb, start, end, c, 4, cw, t, base, yb, i)
            yb[i, nb - 1] &= last_mask  # padding lanes are zero
    return todo


@njit(cache=True, inline="always")
def _sum_planes(acc, indices, w, xb, start, end, bits):
    """``acc[p, k] += lane p of xb[src, k] * w_e`` (uint16, no checks) over the edges
    ``[start, end)`` of one row; returns ``S_w``.  ``bits`` (2 or 4) is a constant at each
    call, so the shifts and masks are constants and LLVM vectorises the byte loop."""
    nb = xb.shape[1]
    s_w = np.int64(0)
    for e in range(start, end):
        src = indices[e]
        s_w += np.int64(w[e])
        wv = np.uint16(w[e])
        for k in range(nb):
            v = np.uint16(xb[src, k])
            if bits == 2:
                acc[0, k] += (v & np.uint16(3)) * wv
                acc[1, k] += ((v >> np.uint16(2)) & np.uint16(3)) * wv
                acc[2, k] += ((v >> np.uint16(4)) & np.uint16(3)) * wv
                acc[3, k] += (v >> np.uint16(6)) * wv
            else:
                acc[0, k] += (v & np.uint16(15)) * wv
                acc[1, k] += (v >> np.uint16(4)) * wv
    return s_w


@njit(cache=True, parallel=True)
def tight_rows(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                out_m, out_n, out_z, out_qmin, out_qmax,
                upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits, pack_off,
                y, yb):
    """The common case of :func:`aggregate_planes` (INT2/INT4, weight zero point 0), written
    as one small loop nest so that LLVM vectorises it: each row is accumulated in a
    ``(planes, B)`` uint16 array with constant shifts and masks per plane and no checks in the
    edge loop, then requantized and written (packed straight from the planes).  The weight
    sum ``S_w`` is summed on the way; a row whose ``S_w`` could have wrapped a lane
    (``S_w > 65535 // umax``) or whose bound ``S_w * x_cmax`` exceeds the accumulator is
    not written and is flagged for :func:`general_rows`.  Returns bool (N,) flags.
    """
    n_rows = indptr.shape[0] - 1
    nb = xb.shape[1]
    planes = 8 // bits
    budget16 = np.int64(65535 // ((1 << bits) - 1))
    last_lanes = n_feat - (nb - 1) * planes  # valid lanes in the last byte
    todo = np.empty(n_rows, dtype=np.bool_)  # set for every row below
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        acc = np.zeros((planes, nb), dtype=np.uint16)
        r = np.zeros((planes, nb), dtype=np.int64)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            start = indptr[i]
            end = indptr[i + 1]
            for p in range(planes):
                for k in range(nb):
                    acc[p, k] = 0
            if bits == 2:
                s_w = _sum_planes(acc, indices, w, xb, start, end, 2)
            else:
                s_w = _sum_planes(acc, indices, w, xb, start, end, 4)
            todo[i] = s_w > budget16 or s_w * x_cmax > lim
            if todo[i]:
                continue
            # sum_e (u - z_u) w_e = T - z_u S_w; requantize (and update-requantize) per lane
            requant_planes(acc, r, planes, nb, z_u * s_w, out_m, out_n, out_z, out_qmin,
                           out_qmax, upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
            if pack_bits == 0:
                for k in range(nb):
                    for p in range(planes):
                        if k * planes + p < n_feat:
                            y[i, k * planes + p] = r[p, k]
            else:  # lane k * P + p is plane p of byte k: pack straight from the planes
                for k in range(nb):
                    q = r[0, k] + pack_off
                    for p in range(1, planes):
                        q |= (r[p, k] + pack_off) << (p * bits)
                    yb[i, k] = np.uint8(q)
                if last_lanes < planes:
                    yb[i, nb - 1] &= np.uint8((1 << (last_lanes * bits)) - 1)
    return todo
