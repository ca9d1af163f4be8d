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
here: callers use :func:`sim.exact.functional.aggregate` for such steps.

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

import numpy as np
from numba import njit

from sim.packed.exact_rows import general_rows
from sim.packed.swar import LITTLE_ENDIAN, tight_rows_int4_words, tight_rows_swar
from sim.packed.tight_rows import tight_rows, tight_rows_vector


@njit(cache=True)
def aggregate_planes(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, w_zero, acc_lo, acc_hi,
                     out_m, out_n, out_z, out_qmin, out_qmax,
                     upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits, pack_off,
                     thresholds, use_thresholds):
    """One propagation step on packed feature rows (no message requantization).

    Rows of the common case (INT2/INT4 features, weight zero point 0,
    a weight sum that proves no uint16 lane can wrap and no saturation, non-negative shifts)
    go through :func:`tight_rows_vector` (rows of a multiple of 4 bytes written packed,
    see :func:`vector_rows_supported`) or :func:`tight_rows` and its variants; every other
    row through :func:`general_rows`.

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
        todo = tight_rows_vector(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim, thresholds,
                                  out_qmin if not upd_on else upd_qmin, pack_off, block, yb)
        rows = np.flatnonzero(todo)
    elif tight and nb_bytes <= 2:
        # rows of one or two bytes (few features, e.g. SMP's classes): 16-bit SWAR slots
        todo = tight_rows_swar(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                                out_m, out_n, out_z, out_qmin, out_qmax,
                                upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block,
                                pack_bits, pack_off, y, yb)
        rows = np.flatnonzero(todo)
    elif tight and bits == 4 and nb_bytes % 2 == 0 and LITTLE_ENDIAN:
        # INT4 rows read as uint16 words: four nibble planes, no byte widening
        todo = tight_rows_int4_words(indptr, indices, w, xb.view(np.uint16), n_feat, z_u,
                                      x_cmax, lim, out_m, out_n, out_z, out_qmin, out_qmax,
                                      upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block,
                                      pack_bits, pack_off, y, yb)
        rows = np.flatnonzero(todo)
    elif tight:
        todo = tight_rows(indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, lim,
                           out_m, out_n, out_z, out_qmin, out_qmax,
                           upd_on, upd_m, upd_n, upd_z, upd_qmin, upd_qmax, block, pack_bits,
                           pack_off, y, yb)
        rows = np.flatnonzero(todo)
    else:
        rows = np.arange(n_rows)
    if rows.shape[0] > 0:
        general_rows(rows, indptr, indices, w, xb, n_feat, bits, z_u, x_cmax, w_zero, acc_lo,
                      acc_hi, out_m, out_n, out_z, out_qmin, out_qmax, upd_on, upd_m, upd_n,
                      upd_z, upd_qmin, upd_qmax, block, pack_bits, pack_off, y, yb, sats)
    return y, yb, sats
