"""The general row kernel of the packed aggregation: every width and weight zero point,
long rows flushed, and the edge-by-edge path with clamping for rows that may saturate."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sim.exact.kernels import sat_add
from sim.packed.row_ops import out_chain, plane_sums, requant_row
from sim.packed.swar import spread_table, swar_flush


@njit(cache=True, parallel=True)
def general_rows(rows, indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, w_zero, acc_lo, acc_hi,
                  out_m, out_n, out_z, out_qmin, out_qmax, upd_on, upd_m, upd_n, upd_z, upd_qmin,
                  upd_qmax, block, pack_bits, pack_off, y, yb, sats):
    """Rows ``rows`` of :func:`aggregate_planes` in general: every width and weight zero
    point, flushes of the narrow lanes for long rows, SWAR for one- and two-byte rows, and
    the exact edge-by-edge path with clamping for rows that may saturate.  Writes ``y`` or
    ``yb`` and ``sats`` in place."""
    n_rows = rows.shape[0]
    nb_bytes = xb.shape[1]
    planes = 8 // bits
    n_lanes = planes * nb_bytes
    mask = np.uint32((1 << bits) - 1)
    need_u = w_zero != 0
    budget16 = np.int64(65535 // ((1 << bits) - 1))
    budget32 = np.int64(4294967295 // 255)
    lim = acc_hi if acc_hi < -acc_lo else -acc_lo
    # one- and two-byte rows (few features): byte -> 16-bit slots table, one multiply per byte
    swar = nb_bytes <= 2 and (bits == 2 or bits == 4)
    spread = spread_table(bits)
    jmap = np.empty(n_feat, dtype=np.int64)  # lane l -> plane index p * B + k
    for l in range(n_feat):
        jmap[l] = (l % planes) * nb_bytes + l // planes
    same_layout = pack_bits == bits
    pack_per = 8 // pack_bits if pack_bits > 0 else 1
    out_bytes = (n_feat + pack_per - 1) // pack_per if pack_bits > 0 else 0
    last_lanes = n_feat - (out_bytes - 1) * pack_per  # valid lanes in the last output byte
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        acc16 = np.zeros(n_lanes, dtype=np.uint16)
        acc32 = np.zeros(n_lanes, dtype=np.uint32)
        tot = np.zeros(n_lanes, dtype=np.int64)
        totu = np.zeros(n_lanes, dtype=np.int64)
        r = np.zeros(n_lanes, dtype=np.int64)  # output codes in plane order
        for ri in range(b * block, min(n_rows, (b + 1) * block)):
            i = rows[ri]
            start = indptr[i]
            end = indptr[i + 1]
            bound = np.int64(0)
            s_w = np.int64(0)
            if w_zero == 0:  # weights are unsigned: sum |w - 0| = sum w
                for e in range(start, end):
                    s_w += np.int64(w[e])
                bound = s_w
            else:
                for e in range(start, end):
                    we = np.int64(w[e])
                    wc = we - w_zero
                    bound += wc if wc >= 0 else -wc
                    s_w += we
            deg = end - start
            if bound * x_cmax <= lim:
                # T = sum_e u_e * w_e per plane lane (written out here so LLVM vectorises it)
                if bits == 8 and s_w <= budget32:
                    # no lane can wrap in this row: no checks in the edge loop
                    for k in range(nb_bytes):
                        acc32[k] = 0
                    for e in range(start, end):
                        src = indices[e]
                        wv = np.uint32(w[e])
                        for k in range(nb_bytes):
                            acc32[k] += np.uint32(xb[src, k]) * wv
                    for k in range(nb_bytes):
                        tot[k] = np.int64(acc32[k])
                elif bits == 8:
                    for k in range(n_lanes):
                        tot[k] = 0
                    for k in range(nb_bytes):
                        acc32[k] = 0
                    run = np.int64(0)
                    for e in range(start, end):
                        we = np.int64(w[e])
                        if run + we > budget32:
                            for k in range(nb_bytes):
                                tot[k] += np.int64(acc32[k])
                                acc32[k] = 0
                            run = np.int64(0)
                        run += we
                        src = indices[e]
                        wv = np.uint32(we)
                        for k in range(nb_bytes):
                            acc32[k] += np.uint32(xb[src, k]) * wv
                    for k in range(nb_bytes):
                        tot[k] += np.int64(acc32[k])
                elif swar and s_w <= budget16 and nb_bytes == 1:
                    # no slot can wrap in this row: a tight reduction LLVM can vectorise (gathers)
                    for k in range(n_lanes):
                        tot[k] = 0
                    a0 = np.uint64(0)
                    for e in range(start, end):
                        a0 += spread[xb[indices[e], 0]] * np.uint64(w[e])
                    swar_flush(a0, tot, 0, nb_bytes, planes)
                elif swar:  # rows of one or two bytes: 16-bit SWAR slots, one multiply per byte
                    for k in range(n_lanes):
                        tot[k] = 0
                    a0 = np.uint64(0)
                    a1 = np.uint64(0)
                    run = np.int64(0)
                    for e in range(start, end):
                        we = np.int64(w[e])
                        if run + we > budget16:
                            swar_flush(a0, tot, 0, nb_bytes, planes)
                            if nb_bytes == 2:
                                swar_flush(a1, tot, 1, nb_bytes, planes)
                            a0 = np.uint64(0)
                            a1 = np.uint64(0)
                            run = np.int64(0)
                        run += we
                        src = indices[e]
                        wv = np.uint64(we)
                        a0 += spread[xb[src, 0]] * wv
                        if nb_bytes == 2:
                            a1 += spread[xb[src, 1]] * wv
                    swar_flush(a0, tot, 0, nb_bytes, planes)
                    if nb_bytes == 2:
                        swar_flush(a1, tot, 1, nb_bytes, planes)
                else:
                    for k in range(n_lanes):
                        tot[k] = 0
                    for k in range(n_lanes):
                        acc16[k] = 0
                    run = np.int64(0)
                    for e in range(start, end):
                        we = np.int64(w[e])
                        if run + we > budget16:
                            for k in range(n_lanes):
                                tot[k] += np.int64(acc16[k])
                                acc16[k] = 0
                            run = np.int64(0)
                        run += we
                        src = indices[e]
                        wv = np.uint16(we)
                        if bits == 2:
                            for k in range(nb_bytes):
                                v = np.uint16(xb[src, k])
                                acc16[k] = np.uint16(acc16[k] + (v & np.uint16(3)) * wv)
                                acc16[nb_bytes + k] = np.uint16(
                                    acc16[nb_bytes + k] + ((v >> np.uint16(2)) & np.uint16(3)) * wv)
                                acc16[2 * nb_bytes + k] = np.uint16(
                                    acc16[2 * nb_bytes + k] + ((v >> np.uint16(4)) & np.uint16(3)) * wv)
                                acc16[3 * nb_bytes + k] = np.uint16(
                                    acc16[3 * nb_bytes + k] + (v >> np.uint16(6)) * wv)
                        elif bits == 4:
                            for k in range(nb_bytes):
                                v = np.uint16(xb[src, k])
                                acc16[k] = np.uint16(acc16[k] + (v & np.uint16(15)) * wv)
                                acc16[nb_bytes + k] = np.uint16(acc16[nb_bytes + k] + (v >> np.uint16(4)) * wv)
                        else:  # bits == 1
                            for p in range(8):
                                sh = np.uint16(p)
                                for k in range(nb_bytes):
                                    acc16[p * nb_bytes + k] = np.uint16(
                                        acc16[p * nb_bytes + k]
                                        + ((np.uint16(xb[src, k]) >> sh) & np.uint16(1)) * wv)
                    for k in range(n_lanes):
                        tot[k] += np.int64(acc16[k])
                if need_u:
                    plane_sums(xb, indices, w, start, end, bits, True, acc16, acc32, totu)
                corr = deg * z_u * w_zero - z_u * s_w
                if need_u:
                    for k in range(n_lanes):
                        r[k] = tot[k] - w_zero * totu[k] + corr
                else:
                    for k in range(n_lanes):
                        r[k] = tot[k] + corr
                # requantize in plane order (contiguous lanes; lanes past F are discarded)
                requant_row(r, n_lanes, out_m, out_n, out_z, out_qmin, out_qmax)
                if upd_on:
                    for k in range(n_lanes):
                        r[k] -= out_z
                    requant_row(r, n_lanes, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
            else:  # saturation possible: exact edge-by-edge accumulation with clamping
                for k in range(n_lanes):
                    tot[k] = 0
                cnt = np.int64(0)
                for e in range(start, end):
                    src = indices[e]
                    wc = np.int64(w[e]) - w_zero
                    for l in range(n_feat):
                        j = jmap[l]
                        u = np.int64((np.uint32(xb[src, j % nb_bytes])
                                      >> np.uint32((j // nb_bytes) * bits)) & mask)
                        tot[j], c = sat_add(tot[j], (u - z_u) * wc, acc_lo, acc_hi)
                        cnt += c
                sats[i] = cnt
                for l in range(n_feat):
                    j = jmap[l]
                    r[j] = out_chain(tot[j], out_m, out_n, out_z, out_qmin, out_qmax, upd_on,
                                upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
            if pack_bits == 0:
                for l in range(n_feat):
                    y[i, l] = r[jmap[l]]
            elif same_layout:  # plane p of byte k is lane k * P + p: pack straight from planes
                for k in range(nb_bytes):
                    v = r[k] + pack_off
                    for p in range(1, planes):
                        v |= (r[p * nb_bytes + k] + pack_off) << (p * bits)
                    yb[i, k] = np.uint8(v)
                if last_lanes < planes:
                    yb[i, nb_bytes - 1] &= np.uint8((1 << (last_lanes * bits)) - 1)
            else:
                for k in range(out_bytes):
                    yb[i, k] = 0
                for l in range(n_feat):
                    yb[i, l // pack_per] |= np.uint8(
                        (r[jmap[l]] + pack_off) << ((l % pack_per) * pack_bits))
