"""Fast, bit-exact numba kernels on packed low-bit operands (the measured CPU kernels).

Layout
------
A feature row of ``F`` codes of ``b`` bits (``b`` in 1, 2, 4, 8) is stored as
``B = ceil(F * b / 8)`` bytes in the layout of :func:`quant.pack.pack_codes` (lane 0 in the
least significant bits), in *offset binary*: lane ``u = q - qmin_offset`` is unsigned
(``u = q`` for unsigned codes, ``u = q + 2**(b-1)`` for signed ones).  Rows are ``uint8
(N, B)``.  Lane ``l`` sits in byte ``k = l // P``, bit field ``p = l % P`` with
``P = 8 // b``.

How the speed is earned
-----------------------
The row sum of one destination ``i`` and lane ``l`` is
``sum_e (u_el - z_u) (w_e - z_w) = T_l - z_w U_l - z_u S_w + d z_u z_w`` with
``T_l = sum_e u_el w_e``, ``U_l = sum_e u_el`` (needed only when ``z_w != 0``),
``S_w = sum_e w_e`` and ``d`` the degree.  Only ``T`` (and ``U``) depend on the lane, and they
are sums of *unsigned* products, so they are accumulated in ``uint32`` "planes": for each bit
field ``p`` one contiguous loop over the ``B`` bytes of the source row,
``acc[p * B + k] += ((byte_k >> p*b) & mask) * w_e``, which LLVM turns into AVX2/AVX-512
integer vector code (zero-extend, shift, and, multiply, add on 8-16 lanes per instruction).
A row of INT2 features is 16 bytes for ``F = 64`` (FP32: 256 bytes), so the random row
gathers of a propagation step touch 16x fewer cache lines and the whole feature table stays
in cache.  ``uint32`` planes cannot wrap while ``sum_e (w_e + 1) <= (2**32 - 1) // umax``;
longer rows are flushed into int64 totals before that (exact for any degree).

Exactness
---------
The result equals :func:`quant.aggregate.aggregate_reference` bit for bit: a row whose bound
``max|q - z_x| * sum_e |w_e - z_w|`` fits in the accumulator range cannot saturate in any
edge order, so its exact sum is the answer (fast path); every other row is accumulated edge
by edge with clamping and a saturation count (exact path), as the hardware does.  Message
requantization (a nonlinear function of each product) has no fast form and is not handled
here: callers use :func:`sim.functional.aggregate` for such steps.

Kernels
-------
aggregate_planes : one propagation step on packed rows -> int16 codes and saturation counts
pack_rows : int codes (N, F) -> offset-binary packed bytes (N, B); unpack_rows its inverse
spmm_f32 : the FP32 CSR SpMM written the same way (our own FP32 baseline)
exact_gemm_dtype, gemm_exact_float, requant_float_acc_i16 : a linear layer of integer codes
    computed exactly in float BLAS (bounded accumulators), then requantized
quantize_f32_i16 : the input stage (float features -> codes) in one parallel pass
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit, prange

from sim.kernels import requant_1, sat_add
from sim.row_vector_ir import row_chunk_packed

#: the INT4 word path reads two packed bytes as one native uint16 (lane order needs little endian)
_LITTLE_ENDIAN = sys.byteorder == "little"

__all__ = ["add_requant_i16", "aggregate_planes", "exact_gemm_dtype", "gemm_exact_float",
           "level_thresholds", "linear_requant_exact", "pack_rows", "quantize_f32_i16", "relu_i16",
           "requant_float_acc_i16", "spmm_f32", "unpack_rows", "vector_rows_shape",
           "vector_rows_supported"]

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
    (:mod:`sim.row_vector_ir`): INT2/INT4 rows of a multiple of 4 bytes, weight zero point 0,
    output packed at the input width."""
    return (bits in (2, 4) and row_bytes % 4 == 0 and row_bytes > 0 and pack_bits == bits
            and w_zero == 0)


def vector_rows_supported(bits: int, row_bytes: int, pack_bits: int, w_zero: int,
                          thresholds: np.ndarray | None) -> bool:
    """Whether :func:`aggregate_planes` takes the vector-IR row kernel: the shape of
    :func:`vector_rows_shape` and a monotone requantizer chain (``thresholds`` from
    :func:`level_thresholds`, not None)."""
    return vector_rows_shape(bits, row_bytes, pack_bits, w_zero) and thresholds is not None


@njit(cache=True, inline="always")
def _out(v, out_m, out_n, out_z, out_qmin, out_qmax, upd_on, upd_m, upd_n, upd_z, upd_qmin,
         upd_qmax):
    r = requant_1(v, out_m, out_n, out_z, out_qmin, out_qmax)
    if upd_on:
        r = requant_1(r - out_z, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
    return r


@njit(cache=True, inline="always")
def _requant_row(r, n, m, sh, z, qmin, qmax):
    """In place over ``r[:n]`` (int64): ``clamp(round_shift(r * m, sh) + z, qmin, qmax)``,
    with the shift's sign tested once per row so that the lane loops vectorise."""
    if sh > 0:
        half = np.int64(1) << (sh - 1)
        for l in range(n):
            r[l] = ((r[l] * m + half) >> sh) + z
    elif sh < 0:
        for l in range(n):
            r[l] = ((r[l] * m) << (-sh)) + z
    else:
        for l in range(n):
            r[l] = r[l] * m + z
    for l in range(n):
        r[l] = min(max(r[l], qmin), qmax)


@njit(cache=True)
def _spread_table(bits):
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
def _swar_flush(a, tot, k, nb, planes):
    """Add the 16-bit slots of SWAR word ``a`` (byte ``k`` of the row) to the plane totals."""
    for p in range(planes):
        tot[p * nb + k] += np.int64((a >> np.uint64(16 * p)) & np.uint64(0xFFFF))


@njit(cache=True, inline="always")
def _flush16(acc, tot, n_lanes):
    for k in range(n_lanes):
        tot[k] += np.int64(acc[k])
        acc[k] = 0


@njit(cache=True, inline="always")
def _flush32(acc, tot, n_lanes):
    for k in range(n_lanes):
        tot[k] += np.int64(acc[k])
        acc[k] = 0


@njit(cache=True, inline="always")
def _plane_sums(xb, indices, w, start, end, bits, unit, acc16, acc32, tot):
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
                _flush32(acc32, tot, nb)
                run = np.int64(0)
            run += we
            src = indices[e]
            wv = np.uint32(we)
            for k in range(nb):
                acc32[k] += np.uint32(xb[src, k]) * wv
        _flush32(acc32, tot, nb)
        return
    for k in range(n_lanes):
        acc16[k] = 0
    budget = np.int64(65535 // ((1 << bits) - 1))
    run = np.int64(0)
    for e in range(start, end):
        we = np.int64(1) if unit else np.int64(w[e])
        if run + we > budget:
            _flush16(acc16, tot, n_lanes)
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
    _flush16(acc16, tot, n_lanes)


@njit(cache=True, parallel=True)
def aggregate_planes(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, w_zero, acc_lo, acc_hi,
                     out_m, out_n, out_z, out_qmin, out_qmax,
                     upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits, pack_off,
                     thresholds, use_thresholds):
    """One propagation step on packed feature rows (no message requantization).

    Rows of the common case (INT2/INT4 features, weight zero point 0,
    a weight sum that proves no uint16 lane can wrap and no saturation, non-negative shifts)
    go through :func:`_tight_rows_vector` (rows of a multiple of 4 bytes written packed,
    see :func:`vector_rows_supported`) or :func:`_tight_rows` and its variants; every other
    row through :func:`_general_rows`.

    Parameters
    ----------
    indptr : int64 (N + 1,)
        Row pointers of the destination-sorted CSR graph.
    indices : uint16 / int32 / int64 (E,)
        Source of each edge (any integer dtype holding ``0..N_src-1``).
    w : uint8 / uint16 (E,)
        Unsigned edge-weight codes.
    xb : uint8 (N_src, B)
        Offset-binary packed feature rows (module docstring).
    n_feat : int
        ``F`` (lanes past ``F`` are ignored).
    bits : int
        Code width ``b`` in {1, 2, 4, 8}.
    z_u : int
        Feature zero point in offset binary.
    x_cmax : int
        ``max |q - z_x|`` over the feature code range (the no-saturation bound).
    w_zero, acc_lo, acc_hi : int
        Weight zero point and accumulator range.
    out_*, upd_* : int
        Aggregate and (if ``upd_on``) update requantizers: multiplier, shift, zero point,
        code range.
    block : int
        Destination rows per parallel work item.
    pack_bits, pack_off : int
        ``pack_bits = 0``: return the output codes as int16 ``(N, F)``.  Otherwise pack
        ``code + pack_off`` (offset binary) at ``pack_bits`` in {1, 2, 4, 8} bits per lane, the
        layout of :func:`quant.pack.pack_codes` with zero padding lanes: uint8
        ``(N, ceil(F * pack_bits / 8))``, what the unit writes for the next layer.
    thresholds : int64 (L,)
        :func:`level_thresholds` of the requantizer chain (any array when unused).
    use_thresholds : bool
        :func:`vector_rows_supported` for this call.

    Returns
    -------
    y : int16 (N, F), or (0, F) when packing
        Output codes.
    yb : uint8 (N, B_out), or (0, 0) when not packing
        Packed output codes.
    sats : int64 (N,)
        Saturation events per row (0 on the fast path, which cannot saturate).
    """
    n_rows = indptr.shape[0] - 1
    nb_bytes = xb.shape[1]
    pack_per = 8 // pack_bits if pack_bits > 0 else 1
    out_bytes = (n_feat + pack_per - 1) // pack_per if pack_bits > 0 else 0
    y = np.empty((0 if pack_bits > 0 else n_rows, n_feat), dtype=np.int16)
    yb = np.empty((n_rows if pack_bits > 0 else 0, out_bytes), dtype=np.uint8)
    sats = np.zeros(n_rows, dtype=np.int64)
    lim = acc_hi if acc_hi < -acc_lo else -acc_lo
    tight = (w_zero == 0 and (bits == 2 or bits == 4) and out_n >= 0
             and (upd_n >= 0 or not upd_on) and (pack_bits == 0 or pack_bits == bits))
    if tight and use_thresholds:
        # rows of 16-byte chunks written packed: accumulators in vector registers (LLVM IR)
        todo = _tight_rows_vector(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim, thresholds,
                                  out_qmin if not upd_on else upd_qmin, pack_off, block, yb)
        rows = np.flatnonzero(todo)
    elif tight and nb_bytes <= 2:
        # rows of one or two bytes (few features, e.g. SMP's classes): 16-bit SWAR slots
        todo = _tight_rows_swar(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                                out_m, out_n, out_z, out_qmin, out_qmax,
                                upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block,
                                pack_bits, pack_off, y, yb)
        rows = np.flatnonzero(todo)
    elif tight and bits == 4 and nb_bytes % 2 == 0 and _LITTLE_ENDIAN:
        # INT4 rows read as uint16 words: four nibble planes, no byte widening
        todo = _tight_rows_int4_words(indptr, indices, w, xb.view(np.uint16), n_feat, z_u,
                                      x_cmax, lim, out_m, out_n, out_z, out_qmin, out_qmax,
                                      upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block,
                                      pack_bits, pack_off, y, yb)
        rows = np.flatnonzero(todo)
    elif tight:
        todo = _tight_rows(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                           out_m, out_n, out_z, out_qmin, out_qmax,
                           upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits,
                           pack_off, y, yb)
        rows = np.flatnonzero(todo)
    else:
        rows = np.arange(n_rows)
    if rows.shape[0] > 0:
        _general_rows(rows, indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, w_zero, acc_lo,
                      acc_hi, out_m, out_n, out_z, out_qmin, out_qmax, upd_on, upd_m, upd_n,
                      upd_z, upd_qmin, upd_qmax, block, pack_bits, pack_off, y, yb, sats)
    return y, yb, sats


@njit(cache=True, parallel=True)
def _tight_rows_vector(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim, thresholds,
                       fqmin, pack_off, block, yb):
    """:func:`_tight_rows` for INT2/INT4 rows of a multiple of 4 bytes written packed at the
    input width, with the per-row work in :func:`sim.row_vector_ir.row_chunk_packed` (chunks of
    the widest of 32, 16, 8, 4 bytes that divides the row).

    The requantizer chain is applied as thresholds on the unsigned lane sum
    ``T = D + z_u S_w`` (``D`` the exact row sum): row threshold ``theta[j] + z_u S_w``
    clamped to ``[0, 65535]`` (0: reached by every lane; 65535: by none, because the weight-sum
    budget here is ``S_w <= 65534 // umax``, so ``T <= 65534``), padded to ``2**b - 1``
    thresholds with 65535.  Rows over the budget or the accumulator bound are flagged for
    :func:`_general_rows`, as in :func:`_tight_rows`.
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
    todo = np.zeros(n_rows, dtype=np.bool_)
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        t = np.full(umax, 65535, dtype=np.uint16)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            start = indptr[i]
            end = indptr[i + 1]
            s_w = np.int64(0)
            for e in range(start, end):
                s_w += np.int64(w[e])
            if s_w > budget or s_w * x_cmax > lim:
                todo[i] = True
                continue
            zs = z_u * s_w
            for j in range(n_th):
                t[j] = np.uint16(min(max(thresholds[j] + zs, 0), 65535))
            # literal chunk widths and lane widths: one specialised intrinsic per pair
            for c in range(n_chunks):
                if bits == 2:
                    if cw == 32:
                        row_chunk_packed(indices, w, xb, start, end, c, 2, 32, t, base, yb, i)
                    elif cw == 16:
                        row_chunk_packed(indices, w, xb, start, end, c, 2, 16, t, base, yb, i)
                    elif cw == 8:
                        row_chunk_packed(indices, w, xb, start, end, c, 2, 8, t, base, yb, i)
                    else:
                        row_chunk_packed(indices, w, xb, start, end, c, 2, 4, t, base, yb, i)
                elif cw == 32:
                    row_chunk_packed(indices, w, xb, start, end, c, 4, 32, t, base, yb, i)
                elif cw == 16:
                    row_chunk_packed(indices, w, xb, start, end, c, 4, 16, t, base, yb, i)
                elif cw == 8:
                    row_chunk_packed(indices, w, xb, start, end, c, 4, 8, t, base, yb, i)
                else:
                    row_chunk_packed(indices, w, xb, start, end, c, 4, 4, t, base, yb, i)
            yb[i, nb - 1] &= last_mask  # padding lanes are zero
    return todo


@njit(cache=True, parallel=True)
def _tight_rows(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                out_m, out_n, out_z, out_qmin, out_qmax,
                upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits, pack_off,
                y, yb):
    """The common case of :func:`aggregate_planes` (INT2/INT4, weight zero point 0), written
    as one small loop nest so that LLVM vectorises it: each row is accumulated in a
    ``(planes, B)`` uint16 array with constant shifts and masks per plane and no checks in the
    edge loop, then requantized and written (packed straight from the planes).  The weight
    sum ``S_w`` is summed on the way; a row whose ``S_w`` could have wrapped a lane
    (``S_w > 65535 // umax``) or whose bound ``S_w * x_cmax`` exceeds the accumulator is
    not written and is flagged for :func:`_general_rows`.  Returns bool (N,) flags.
    """
    n_rows = indptr.shape[0] - 1
    nb = xb.shape[1]
    planes = 8 // bits
    budget16 = np.int64(65535 // ((1 << bits) - 1))
    half_out = (np.int64(1) << (out_n - 1)) if out_n > 0 else np.int64(0)
    half_upd = (np.int64(1) << (upd_n - 1)) if upd_n > 0 else np.int64(0)
    last_lanes = n_feat - (nb - 1) * planes  # valid lanes in the last byte
    todo = np.zeros(n_rows, dtype=np.bool_)
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
            s_w = np.int64(0)
            if bits == 2:
                for e in range(start, end):
                    src = indices[e]
                    s_w += np.int64(w[e])
                    wv = np.uint16(w[e])
                    for k in range(nb):
                        v = np.uint16(xb[src, k])
                        acc[0, k] += (v & np.uint16(3)) * wv
                        acc[1, k] += ((v >> np.uint16(2)) & np.uint16(3)) * wv
                        acc[2, k] += ((v >> np.uint16(4)) & np.uint16(3)) * wv
                        acc[3, k] += (v >> np.uint16(6)) * wv
            else:
                for e in range(start, end):
                    src = indices[e]
                    s_w += np.int64(w[e])
                    wv = np.uint16(w[e])
                    for k in range(nb):
                        v = np.uint16(xb[src, k])
                        acc[0, k] += (v & np.uint16(15)) * wv
                        acc[1, k] += (v >> np.uint16(4)) * wv
            if s_w > budget16 or s_w * x_cmax > lim:
                todo[i] = True
                continue
            # sum_e (u - z_u) w_e = T - z_u S_w; requantize (and update-requantize) per lane
            corr = half_out - z_u * s_w * out_m
            for p in range(planes):
                for k in range(nb):
                    q = ((np.int64(acc[p, k]) * out_m + corr) >> out_n) + out_z
                    r[p, k] = min(max(q, out_qmin), out_qmax)
            if upd_on:
                corr_u = half_upd - out_z * upd_m
                for p in range(planes):
                    for k in range(nb):
                        q = ((r[p, k] * upd_m + corr_u) >> upd_n) + upd_z
                        r[p, k] = min(max(q, upd_qmin), upd_qmax)
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


@njit(cache=True, parallel=True)
def _tight_rows_swar(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                     out_m, out_n, out_z, out_qmin, out_qmax,
                     upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits,
                     pack_off, y, yb):
    """:func:`_tight_rows` for INT2/INT4 rows of one or two bytes (few features; the
    general kernel's SWAR path with the checks moved out of the edge loop): a
    256-entry table spreads a byte's lanes into the 16-bit slots of a uint64, so one
    multiply-add per byte and edge accumulates all its lanes (slot ``p`` of word ``k`` is
    lane ``k * P + p``).  Same checks, flags and results as :func:`_tight_rows`."""
    n_rows = indptr.shape[0] - 1
    nb = xb.shape[1]
    planes = 8 // bits
    umask = (1 << bits) - 1
    budget16 = np.int64(65535 // umask)
    spread = _spread_table(bits)
    half_out = (np.int64(1) << (out_n - 1)) if out_n > 0 else np.int64(0)
    half_upd = (np.int64(1) << (upd_n - 1)) if upd_n > 0 else np.int64(0)
    todo = np.zeros(n_rows, dtype=np.bool_)
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
            if s_w > budget16 or s_w * x_cmax > lim:
                todo[i] = True
                continue
            corr = half_out - z_u * s_w * out_m
            n_l = min(n_feat, nb * planes)
            for l in range(n_l):
                a = a0 if l < planes else a1
                slot = np.int64((a >> np.uint64(16 * (l % planes))) & np.uint64(0xFFFF))
                q = ((slot * out_m + corr) >> out_n) + out_z
                q = min(max(q, out_qmin), out_qmax)
                if upd_on:
                    q = (((q - out_z) * upd_m + half_upd) >> upd_n) + upd_z
                    q = min(max(q, upd_qmin), upd_qmax)
                r[l] = q
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
def _tight_rows_int4_words(indptr, indices, w, xw, n_feat, z_u, x_cmax, lim,
                           out_m, out_n, out_z, out_qmin, out_qmax,
                           upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits,
                           pack_off, y, yb):
    """:func:`_tight_rows` for INT4 rows of an even number of bytes, read as little-endian
    uint16 words ``xw`` (N, B/2): nibble ``j`` of word ``m`` is lane ``4m + j``, so four
    constant shift-and-mask planes of 16-bit lanes replace the byte widening.  Same flags,
    same results."""
    n_rows = indptr.shape[0] - 1
    nw = xw.shape[1]
    budget16 = np.int64(65535 // 15)
    half_out = (np.int64(1) << (out_n - 1)) if out_n > 0 else np.int64(0)
    half_upd = (np.int64(1) << (upd_n - 1)) if upd_n > 0 else np.int64(0)
    last_lanes = n_feat - (2 * nw - 1) * 2  # valid lanes in the last byte (1 or 2)
    todo = np.zeros(n_rows, dtype=np.bool_)
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
            if s_w > budget16 or s_w * x_cmax > lim:
                todo[i] = True
                continue
            corr = half_out - z_u * s_w * out_m
            for p in range(4):
                for k in range(nw):
                    q = ((np.int64(acc[p, k]) * out_m + corr) >> out_n) + out_z
                    r[p, k] = min(max(q, out_qmin), out_qmax)
            if upd_on:
                corr_u = half_upd - out_z * upd_m
                for p in range(4):
                    for k in range(nw):
                        q = ((r[p, k] * upd_m + corr_u) >> upd_n) + upd_z
                        r[p, k] = min(max(q, upd_qmin), upd_qmax)
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


@njit(cache=True, parallel=True)
def _general_rows(rows, indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, w_zero, acc_lo, acc_hi,
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
    spread = _spread_table(bits)
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
                    _swar_flush(a0, tot, 0, nb_bytes, planes)
                elif swar:  # rows of one or two bytes: 16-bit SWAR slots, one multiply per byte
                    for k in range(n_lanes):
                        tot[k] = 0
                    a0 = np.uint64(0)
                    a1 = np.uint64(0)
                    run = np.int64(0)
                    for e in range(start, end):
                        we = np.int64(w[e])
                        if run + we > budget16:
                            _swar_flush(a0, tot, 0, nb_bytes, planes)
                            if nb_bytes == 2:
                                _swar_flush(a1, tot, 1, nb_bytes, planes)
                            a0 = np.uint64(0)
                            a1 = np.uint64(0)
                            run = np.int64(0)
                        run += we
                        src = indices[e]
                        wv = np.uint64(we)
                        a0 += spread[xb[src, 0]] * wv
                        if nb_bytes == 2:
                            a1 += spread[xb[src, 1]] * wv
                    _swar_flush(a0, tot, 0, nb_bytes, planes)
                    if nb_bytes == 2:
                        _swar_flush(a1, tot, 1, nb_bytes, planes)
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
                    _plane_sums(xb, indices, w, start, end, bits, True, acc16, acc32, totu)
                corr = deg * z_u * w_zero - z_u * s_w
                if need_u:
                    for k in range(n_lanes):
                        r[k] = tot[k] - w_zero * totu[k] + corr
                else:
                    for k in range(n_lanes):
                        r[k] = tot[k] + corr
                # requantize in plane order (contiguous lanes; lanes past F are discarded)
                _requant_row(r, n_lanes, out_m, out_n, out_z, out_qmin, out_qmax)
                if upd_on:
                    for k in range(n_lanes):
                        r[k] -= out_z
                    _requant_row(r, n_lanes, upd_m, upd_n, upd_z, upd_qmin, upd_qmax)
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
                    r[j] = _out(tot[j], out_m, out_n, out_z, out_qmin, out_qmax, upd_on,
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
    out = np.zeros((n, nb_bytes), dtype=np.uint8)
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            for k in range(nb_bytes):
                v = np.uint32(0)
                for p in range(per):
                    l = k * per + p
                    if l < f:
                        v |= np.uint32(np.int64(q[i, l]) + offset) << np.uint32(p * bits)
                out[i, k] = np.uint8(v)
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


@njit(cache=True, parallel=True)
def spmm_f32(indptr, indices, w, x, block):
    """FP32 CSR SpMM ``Y = A X`` written like :func:`aggregate_planes` (our FP32 baseline).

    Shapes: ``indptr`` (N + 1,), ``indices`` (E,), ``w`` float32 (E,), ``x`` float32
    (N_src, F); returns float32 (N, F).  Each row is summed in edge order in float32.
    """
    n_rows = indptr.shape[0] - 1
    f = x.shape[1]
    y = np.empty((n_rows, f), dtype=np.float32)
    n_blocks = (n_rows + block - 1) // block
    for b in prange(n_blocks):
        acc = np.zeros(f, dtype=np.float32)
        for i in range(b * block, min(n_rows, (b + 1) * block)):
            for k in range(f):
                acc[k] = 0
            for e in range(indptr[i], indptr[i + 1]):
                we = w[e]
                src = indices[e]
                for k in range(f):
                    acc[k] += x[src, k] * we
            for k in range(f):
                y[i, k] = acc[k]
    return y


#: float32 / float64 represent every integer of magnitude up to 2**24 / 2**53 exactly
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


def exact_gemm_dtype(k: int, x_absmax: int, w_absmax: int):
    """The narrowest float dtype in which a GEMM of integer codes is exact, or None.

    Parameters
    ----------
    k : int
        Inner dimension (input features).
    x_absmax, w_absmax : int
        Largest magnitude of a centred input code ``x - z_x`` and of a centred weight code.

    Returns
    -------
    numpy.float32, numpy.float64 or None
        ``float32`` when ``B = k * x_absmax * w_absmax < 2**24``, ``float64`` when
        ``B < 2**53``, None otherwise.

    Notes
    -----
    Why this is exact, in any summation order: every product ``x_t w_t`` is an integer of
    magnitude at most ``x_absmax * w_absmax <= B``, and every partial sum a GEMM forms (any
    blocking, any number of accumulators, fused multiply-add or not) is a sum of a subset of
    the ``k`` products, an integer of magnitude at most ``B``.  Below the dtype's exact-integer
    bound each such value is representable, so no operation rounds and the float result is
    the integer dot product itself.  The BLAS behind numpy's ``@`` therefore returns
    :func:`quant.reference.linear_accumulate` (before the bias) exactly.
    """
    bound = int(k) * int(x_absmax) * int(w_absmax)
    if bound < _F32_EXACT:
        return np.float32
    if bound < _F64_EXACT:
        return np.float64
    return None


def gemm_exact_float(x, x_zero, wt_float, xbuf=None, out=None):
    """``(x - x_zero) @ wt`` of integer codes, computed exactly in float BLAS.

    Parameters
    ----------
    x : int (N, K) codes
    x_zero : int
    wt_float : float32 or float64 (K, C)
        Centred weight codes ``(w - w_zero).T`` in the dtype :func:`exact_gemm_dtype` chose
        for this layer and input.
    xbuf, out : optional (N, K) and (N, C) arrays of ``wt_float.dtype``
        Scratch for the centred input and the result (allocated when not given).

    Returns
    -------
    (N, C) array of ``wt_float.dtype`` holding integers: the exact accumulators (no bias).
    The caller must have checked :func:`exact_gemm_dtype` for the actual ``max|x - x_zero|``.
    """
    xf = np.empty(x.shape, dtype=wt_float.dtype) if xbuf is None else xbuf
    _centred_float_into(x, x_zero, xf)
    return np.matmul(xf, wt_float, out=out)


def linear_requant_exact(x, x_zero, wt_float, bias, m, n, z, qmin, qmax, block,
                         chunk_rows=16384):
    """A linear layer with requantization, ``requant((x - x_zero) @ wt + bias)``, in float
    BLAS on row chunks: int16 (N, C) codes out.

    Each chunk of ``chunk_rows`` rows goes through :func:`gemm_exact_float` with reused float
    buffers (exact under :func:`exact_gemm_dtype`'s bound, which the caller has checked) and
    is requantized (:func:`requant_float_acc_i16`) into the output.  The buffers
    stay in cache and are allocated once, instead of two (N, K) / (N, C) float arrays that
    are page-faulted in on every call.
    """
    rows, k = x.shape
    c = wt_float.shape[1]
    out = np.empty((rows, c), dtype=np.int16)
    step = max(1, min(int(chunk_rows), rows))
    xbuf = np.empty((step, k), dtype=wt_float.dtype)
    abuf = np.empty((step, c), dtype=wt_float.dtype)
    for i0 in range(0, rows, step):
        r = min(step, rows - i0)
        acc = gemm_exact_float(x[i0:i0 + r], x_zero, wt_float, xbuf[:r], abuf[:r])
        out[i0:i0 + r] = requant_float_acc_i16(acc, bias, m, n, z, qmin, qmax, block)
    return out


@njit(cache=True, parallel=True)
def _centred_float_into(x, x_zero, out):
    """``out[:] = x - x_zero`` (float; exact: small integers)."""
    rows, k = x.shape
    for i in prange(rows):
        for t in range(k):
            out[i, t] = np.int64(x[i, t]) - x_zero


@njit(cache=True, parallel=True)
def requant_float_acc_i16(acc, bias, m, n, z, qmin, qmax, block):
    """``clamp(round_shift((acc + bias) * m, n) + z, qmin, qmax)`` of integer-valued float
    accumulators (:func:`gemm_exact_float`), int16 (N, C) codes out.  ``acc`` holds exact
    integers, so the conversion to int64 is exact."""
    rows, c = acc.shape
    y = np.empty((rows, c), dtype=np.int16)
    n_blocks = (rows + block - 1) // block
    for b in prange(n_blocks):
        for i in range(b * block, min(rows, (b + 1) * block)):
            for j in range(c):
                y[i, j] = requant_1(np.int64(acc[i, j]) + bias[j], m, n, z, qmin, qmax)
    return y


#: rounding-mode numbers of :func:`quantize_f32_i16` (``quant.spec.Rounding`` values)
ROUNDING_CODES = {"half_even": 0, "half_up": 1, "floor": 2}


@njit(cache=True, parallel=True)
def quantize_f32_i16(x, scale, zero_point, qmin, qmax, mode, block):
    """Float features -> int16 codes, :func:`quant.reference.quantize` in one pass.

    ``clamp(R(x / s + z), qmin, qmax)`` with every operation rounded to float32 as the
    reference does (``np.float32`` after each division and addition; a float32 division or
    addition carried out in float64 and rounded once to float32 is the correctly rounded
    float32 result, since 53 >= 2 * 24 + 2).  ``R`` by ``mode`` (:data:`ROUNDING_CODES`):
    ties to even, ties up, or floor, from ``f = floor(v)`` and the exact fraction ``v - f``.

    Parameters
    ----------
    x : float32 (N, F)
    scale : float32
        Positive, finite (checked by the caller).
    zero_point, qmin, qmax, mode, block : int

    Returns
    -------
    codes : int16 (N, F)
    nonfinite : int
        Count of NaN / infinite inputs (their codes are undefined; the caller refuses them).
    """
    rows, f = x.shape
    out = np.empty((rows, f), dtype=np.int16)
    s = np.float32(scale)
    zf = np.float32(zero_point)
    lo = np.float32(qmin)
    hi = np.float32(qmax)
    half = np.float32(0.5)
    n_blocks = (rows + block - 1) // block
    bad = np.zeros(n_blocks, dtype=np.int64)
    for b in prange(n_blocks):
        nb = 0
        for i in range(b * block, min(rows, (b + 1) * block)):
            for j in range(f):
                xv = x[i, j]
                if not np.isfinite(xv):
                    nb += 1
                    out[i, j] = 0
                    continue
                v = np.float32(np.float32(xv / s) + zf)
                fl = np.float32(np.floor(v))
                if mode != 2:
                    d = np.float32(v - fl)
                    if d > half:
                        fl = np.float32(fl + np.float32(1.0))
                    elif d == half:
                        if mode == 1 or (np.int64(fl) & 1) == 1:
                            fl = np.float32(fl + np.float32(1.0))
                if fl < lo:
                    fl = lo
                elif fl > hi:
                    fl = hi
                out[i, j] = np.int16(fl)
        bad[b] = nb
    return out, bad.sum()


@njit(cache=True, parallel=True)
def add_requant_i16(a, a_zero, a_mult, b, b_zero, b_mult, shift, z, qmin, qmax, block):
    """``clamp(round_shift((a-za)*Ma + (b-zb)*Mb, n) + z, qmin, qmax)`` over (R, C) code
    arrays (:func:`quant.reference.add_requantize`), int16 out."""
    rows, c = a.shape
    out = np.empty((rows, c), dtype=np.int16)
    n_blocks = (rows + block - 1) // block
    for bb in prange(n_blocks):
        for i in range(bb * block, min(rows, (bb + 1) * block)):
            for j in range(c):
                s = (np.int64(a[i, j]) - a_zero) * a_mult + (np.int64(b[i, j]) - b_zero) * b_mult
                out[i, j] = requant_1_add(s, shift, z, qmin, qmax)
    return out


@njit(cache=True, inline="always")
def requant_1_add(s, shift, z, qmin, qmax):
    if shift > 0:
        r = ((s + (np.int64(1) << (shift - 1))) >> shift) + z
    elif shift < 0:
        r = (s << (-shift)) + z
    else:
        r = s + z
    if r < qmin:
        return qmin
    if r > qmax:
        return qmax
    return r


@njit(cache=True, parallel=True)
def relu_i16(q, z, block):
    """``max(q, z)`` over an (R, C) code array, int16 out."""
    rows, c = q.shape
    out = np.empty((rows, c), dtype=np.int16)
    n_blocks = (rows + block - 1) // block
    for bb in prange(n_blocks):
        for i in range(bb * block, min(rows, (bb + 1) * block)):
            for j in range(c):
                v = np.int64(q[i, j])
                out[i, j] = v if v > z else z
    return out
