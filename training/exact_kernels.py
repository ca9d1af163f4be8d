"""numba kernels of the integer-exact forward (CPU): one propagation op in one pass over the edges.

:func:`aggregate_table` computes, for every destination row ``i`` and channel ``c``, the
saturating sum over the row's edges, in CSR order, of ``table[x[src_e, c] - x_min, w_e - w_min]``
(the message of a pair of codes, looked up).  Each partial sum is clamped to the
accumulator range ``[lo, hi]``: that is the reference's edge-by-edge accumulation
(:func:`quant.aggregate.aggregate_reference`), and for rows whose partial sums never leave
the range (every row of a model whose accumulator is wide enough) it is the plain row sum.
Integers throughout, so the result does not depend on the order of evaluation.

The kernels run single-threaded (the trainer's thread count is its own) and are compiled on
first use and cached on disk by numba.

Index arrays reach the kernels as unsigned views (:func:`_unsigned`) and each row's edges as
slices indexed from zero (the training walk: an unsigned edge counter over unsigned row
pointers, and flat unsigned offsets into its tables).  numba guards every load through a
signed index it cannot prove non-negative with a negative-index fix-up; through unsigned
indices and ``range(m)`` loop variables there is none, and LLVM schedules the per-edge loads
freely.  The arithmetic and its order are unchanged.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: rows of at most this many channels take the kernels with scalar accumulators
NARROW = 4


def _unsigned(a: np.ndarray) -> np.ndarray:
    """``a`` (a signed integer array of non-negative indices) viewed as the unsigned type of
    its width, contiguous (module docstring: the kernels' loads then need no negative-index
    fix-up).  The callers' indices are in range: a graph's sources, codes minus their
    smallest code."""
    a = np.ascontiguousarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}")) if a.dtype.kind == "i" else a


@njit(cache=True, nogil=True)
def _aggregate_table(indptr, src, col, x, table_t, lo, hi, saturate, acc, out):  # pragma: no cover - numba
    n, c = out.shape
    for i in range(n):
        for k in range(c):
            acc[k] = 0
        start = indptr[i]
        m = indptr[i + 1] - start
        sr = src[start:start + m]
        cl = col[start:start + m]
        for j in range(m):
            row = table_t[cl[j]]
            xr = x[sr[j]]
            if saturate:
                for k in range(c):
                    s = acc[k] + row[xr[k]]
                    acc[k] = hi if s > hi else (lo if s < lo else s)
            else:
                for k in range(c):
                    acc[k] += row[xr[k]]
        for k in range(c):
            out[i, k] = acc[k]

@njit(cache=True, nogil=True)
def _sat(v, lo, hi, saturate):  # pragma: no cover - numba
    if saturate:
        return hi if v > hi else (lo if v < lo else v)
    return v


@njit(cache=True, nogil=True)
def _aggregate_table_narrow(indptr, src, col, x, table_t, lo, hi, saturate, out,
                            lanes):  # pragma: no cover - numba
    # rows of at most four channels: the accumulators are scalars (registers), not an array;
    # ``lanes``: a tuple of C zeros (compile-time C, as _exact_message_pass_narrow)
    c = len(lanes)
    n = out.shape[0]
    for i in range(n):
        a0 = np.int64(0)
        a1 = np.int64(0)
        a2 = np.int64(0)
        a3 = np.int64(0)
        start = indptr[i]
        m = indptr[i + 1] - start
        sr = src[start:start + m]
        cl = col[start:start + m]
        for j in range(m):
            row = table_t[cl[j]]
            s = sr[j]
            a0 = _sat(a0 + row[x[s, 0]], lo, hi, saturate)
            if c > 1:
                a1 = _sat(a1 + row[x[s, 1]], lo, hi, saturate)
            if c > 2:
                a2 = _sat(a2 + row[x[s, 2]], lo, hi, saturate)
            if c > 3:
                a3 = _sat(a3 + row[x[s, 3]], lo, hi, saturate)
        out[i, 0] = a0
        if c > 1:
            out[i, 1] = a1
        if c > 2:
            out[i, 2] = a2
        if c > 3:
            out[i, 3] = a3



def compact_codes(codes: np.ndarray, levels: int, offset: int = 0
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The codes renumbered over the values that occur, when at most half of the ``levels``
    occur (BT and BT* codes take four of 256 values), so the kernels' tables shrink to
    those rows.

    Parameters
    ----------
    codes : (N, C) integers in ``[offset, offset + levels)``
    levels : int
        The table's rows (values a code can take).
    offset : int
        The smallest code (row 0 of the table); the kernels subtract it as they read.

    Returns
    -------
    index : (N, C) the position of each code (minus ``offset``) among the values that
        occur, or the codes minus ``offset`` when more than half of the levels occur; uint8
        when ``levels <= 256`` (every code of at most 8 bits: a node's codes are then one
        small row the kernels read with fewer cache lines), else int32
    used : (U,) int64 the values (minus ``offset``) that occur, ascending, or ``None`` (no
        renumbering)
    """
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    dtype = np.uint8 if levels <= 256 else np.int32
    if codes.size == 0:
        return codes.astype(dtype), None
    flat = codes.reshape(-1)
    present = np.zeros(levels, dtype=np.bool_)
    if not _mark_present(flat, np.int64(offset), present):
        lo, hi = min_max(flat)
        raise ValueError(f"codes must be in [{offset}, {offset + levels}), not in [{lo}, {hi}]")
    used = np.flatnonzero(present)
    out = np.empty(codes.shape, dtype=dtype)
    if 2 * used.size > levels:
        _renumber(flat, np.int64(offset), np.arange(levels, dtype=dtype), out.reshape(-1))
        return out, None
    position = (np.cumsum(present, dtype=np.int32) - 1).astype(dtype)
    _renumber(flat, np.int64(offset), position, out.reshape(-1))
    return out, used


@njit(cache=True, nogil=True)
def _mark_present(codes, offset, present):  # pragma: no cover - numba
    n = present.shape[0]
    for i in range(codes.shape[0]):
        c = codes[i] - offset
        if c < 0 or c >= n:
            return False
        present[c] = True
    return True


@njit(cache=True, nogil=True)
def _renumber(codes, offset, position, out):  # pragma: no cover - numba
    for i in range(codes.shape[0]):
        out[i] = position[codes[i] - offset]


def aggregate_table(indptr: np.ndarray, src: np.ndarray, col: np.ndarray, x: np.ndarray,
                    table: np.ndarray, x_min: int, lo: int, hi: int, max_degree: int) -> np.ndarray:
    """Saturating row sums of looked-up messages (module docstring).

    Parameters
    ----------
    indptr : (N + 1,) int64 destination-sorted CSR row pointers
    src : (E,) int32 or int64 source of each edge
    col : (E,) int32 column of each edge's code in ``table`` (edge code minus the smallest code)
    x : (N_src, C) integer node codes, in ``[x_min, x_min + table.shape[0])``
    table : (Lx, Lw) int16, int32 or int64 message of each pair of codes (centred)
    x_min : int
        The smallest node code (row 0 of ``table``).
    lo, hi : int
        The accumulator range.
    max_degree : int
        The largest row length: below ``max_degree * max |message| <= min(hi, -lo)`` no
        partial sum can leave the range, and the clamp is skipped.

    Returns
    -------
    (N, C) int64 accumulators.
    """
    out = np.empty((indptr.shape[0] - 1, x.shape[1]), dtype=np.int64)
    xs, used = compact_codes(x, table.shape[0], x_min)
    if used is not None:                       # only the rows of the codes that occur
        table = table[used]
    table_t = np.ascontiguousarray(table.T)
    saturate = can_saturate(table, max_degree, lo, hi)
    xs = _unsigned(xs)
    src, col = _unsigned(src), _unsigned(col)
    if 0 < x.shape[1] <= NARROW:
        _aggregate_table_narrow(indptr, src, col, xs, table_t, int(lo), int(hi), bool(saturate), out,
                                (0,) * x.shape[1])
    else:
        _aggregate_table(indptr, src, col, xs, table_t, int(lo), int(hi), bool(saturate),
                         np.empty(x.shape[1], dtype=np.int64), out)
    return out


def can_saturate(table: np.ndarray, max_degree: int, lo: int, hi: int) -> bool:
    """Whether a row of at most ``max_degree`` messages of ``table`` can have a partial sum
    outside ``[lo, hi]`` (else the kernels skip the clamp)."""
    return int(max_degree) * int(np.abs(table).max(initial=0)) > min(int(hi), -int(lo))


@njit(cache=True, nogil=True)
def _quantized_message_sum(indptr, src, w, x, s, z, qmin, qmax, want_cut, want_coef,
                           acc, acc_c, out, coef, cut):  # pragma: no cover - numba
    n, c = out.shape
    ncut = 0
    zero = np.float32(0.0)
    for i in range(n):
        for k in range(c):
            acc[k] = zero
            acc_c[k] = zero
        start = indptr[i]
        m = indptr[i + 1] - start
        sr = src[start:start + m]
        for j in range(m):
            e = start + j
            xr = x[sr[j]]
            we = w[e]
            for k in range(c):
                u = (xr[k] * we) / s
                v = u + z
                q = qmin if v < qmin else (qmax if v > qmax else v)
                clipped = v != q
                q = np.rint(q) - z
                acc[k] += q * s
                if want_coef:
                    acc_c[k] += q - (zero if clipped else u)
                if want_cut and clipped:
                    cut[ncut] = e * c + k
                    ncut += 1
        for k in range(c):
            out[i, k] = acc[k]
            if want_coef:
                coef[i, k] = acc_c[k]
    return ncut


def quantized_message_sum(indptr: np.ndarray, src: np.ndarray, w: np.ndarray, x: np.ndarray,
                          s: np.float32, z: np.float32, qmin: np.float32, qmax: np.float32,
                          want_cut: bool, want_coef: bool):
    """The forward of ``training.fused_message._forward_clip`` (half-even rounding, no
    truncation) in one pass over the edges, with the same float32 operations in the same
    order: per message ``m = x[src] * w``, ``u = m / s``, ``v = u + z``,
    ``q = rint(clamp(v, qmin, qmax)) - z``; each row's ``q * s`` and ``q - k u``
    (``k = [v inside the range]``) added in edge order starting from zero.

    Parameters
    ----------
    indptr : (N + 1,) int64; src : (E,) int32 or int64; w : (E,) float32; x : (N_src, C) float32
    s, z, qmin, qmax : float32 scale, zero point and code range
    want_cut, want_coef : bool
        Whether to return the clipped positions and the row sums of the scale-gradient
        coefficient.

    Returns
    -------
    out : (N, C) float32 row sums of the dequantized messages
    cut : (K,) int64 ascending flat positions ``e * C + c`` of the clipped messages, or None
    coef : (N, C) float32, or None
    """
    n, c = indptr.shape[0] - 1, x.shape[1]
    out = np.empty((n, c), dtype=np.float32)
    coef = np.empty((n, c) if want_coef else (0, c), dtype=np.float32)
    cut = np.empty(src.shape[0] * c if want_cut else 0, dtype=np.int64)
    k = _quantized_message_sum(indptr, _unsigned(src), w, np.ascontiguousarray(x), np.float32(s), np.float32(z),
                               np.float32(qmin), np.float32(qmax), bool(want_cut), bool(want_coef),
                               np.empty(c, dtype=np.float32), np.empty(c, dtype=np.float32),
                               out, coef, cut)
    return out, (cut[:k].copy() if want_cut else None), (coef if want_coef else None)


@njit(cache=True, nogil=True)
def _pair_table(xv, wv, s, z, qmin, qmax, table_t, out):  # pragma: no cover - numba
    zero = np.float32(0.0)
    out_f = out.view(np.float32)
    for b in range(wv.shape[0]):
        for a in range(xv.shape[0]):
            u = (xv[a] * wv[b]) / s
            v = u + z
            q = qmin if v < qmin else (qmax if v > qmax else v)
            clipped = v != q
            q = np.rint(q) - z
            out[b, a, 0] = table_t[b, a]
            out_f[b, a, 1] = q * s
            out_f[b, a, 2] = q - (zero if clipped else u)
            out[b, a, 3] = 1 if clipped else 0


def pair_table(table: np.ndarray, xv: np.ndarray, wv: np.ndarray, s: np.float32, z: np.float32,
               qmin: np.float32, qmax: np.float32) -> np.ndarray | None:
    """The integer message and :func:`quantized_message_sum`'s per-message terms of every
    pair of codes, in one table.

    For node value ``xv[a]`` and edge value ``wv[b]`` the same float32 operations as that
    kernel: ``u = (xv[a] * wv[b]) / s``, ``v = u + z``, ``q = rint(clamp(v, qmin, qmax)) - z``.

    Parameters
    ----------
    table : (Lx, Lw) int16, int32 or int64 integer message of each pair of codes (as :func:`aggregate_table`)
    xv : (Lx,) float32 the value of every node code; wv : (Lw,) float32 of every edge code
    s, z, qmin, qmax : float32 scale, zero point and code range of the message quantizer

    Returns
    -------
    (Lw, Lx, 4) int32 or None
        Per pair ``(b, a)``: the integer message, the bits of the float32 ``q * s`` (the
        dequantized message) and of ``q - k u`` (``k``: the message is not clipped), and 1
        where the message is clipped.  ``None`` when an integer message does not fit int32.
    """
    if table.size and int(np.abs(table).max()) >= 2 ** 31 - 1:
        return None
    out = np.empty((wv.shape[0], xv.shape[0], 4), dtype=np.int32)
    _pair_table(np.ascontiguousarray(xv, dtype=np.float32), np.ascontiguousarray(wv, dtype=np.float32),
                np.float32(s), np.float32(z), np.float32(qmin), np.float32(qmax),
                np.ascontiguousarray(table.T), out)
    return out


@njit(cache=True, nogil=True)
def _exact_message_pass(indptr, src, col, x, pairs, lo, hi, saturate, want_cut, want_coef,
                        acc, acc_f, acc_c, out_i, out_f, coef, cut):  # pragma: no cover - numba
    n, c = out_i.shape
    ncut = 0
    zero = np.float32(0.0)
    pairs_f = pairs.view(np.float32)
    for i in range(n):
        for k in range(c):
            acc[k] = 0
            acc_f[k] = zero
            acc_c[k] = zero
        start = indptr[i]
        m = indptr[i + 1] - start
        sr = src[start:start + m]
        cl = col[start:start + m]
        for j in range(m):
            e = start + j
            b = cl[j]
            xr = x[sr[j]]
            for k in range(c):
                a = xr[k]
                s = acc[k] + pairs[b, a, 0]
                if saturate:
                    s = hi if s > hi else (lo if s < lo else s)
                acc[k] = s
                acc_f[k] += pairs_f[b, a, 1]
                if want_coef:
                    acc_c[k] += pairs_f[b, a, 2]
                if want_cut and pairs[b, a, 3]:
                    cut[ncut] = e * c + k
                    ncut += 1
        for k in range(c):
            out_i[i, k] = acc[k]
            out_f[i, k] = acc_f[k]
            if want_coef:
                coef[i, k] = acc_c[k]
    return ncut

@njit(cache=True, nogil=True)
def _exact_message_pass_narrow(indptr, src, col, x, pairs, lo, hi, flags, out_i, out_f, coef,
                               cut, lanes):  # pragma: no cover - numba
    # rows of at most four channels: scalar accumulators; the same order of every addition.
    # ``lanes`` is a tuple of C zeros: its length is a compile-time constant, so each channel
    # count gets its own machine code, without the unused lanes.  ``flags`` holds three
    # tuples (saturate, want_cut, want_coef), each empty or one zero, so the options too are
    # compile-time constants: tested at run time inside the edge loop they took registers,
    # and the loop spilled its table and index addresses to the stack.  The node codes and
    # the pair table are read through flat unsigned offsets (``pairs`` row-major, 4 int32 per
    # pair) for the same reason; together about a quarter less time per pass.  The four lanes
    # are written out: with a per-lane helper function (returning the updated accumulators)
    # numba's code ran several times slower on Tolokers.  The clipped messages' flat
    # positions e * C + k are written without a branch: every lane's position is stored at
    # the count so far and the count advanced by the lane's clip flag (0 or 1), so ``cut``
    # holds E * C entries and a store lands at most at the message's own position.  Where
    # many messages clip, a branch per message (or per edge) mispredicts and stalls the
    # loop's loads; one byte of flags per edge, listed by a second pass, took a quarter
    # longer than these stores.  Returns the number of clipped messages.
    c = len(lanes)
    saturate = len(flags[0]) > 0
    want_cut = len(flags[1]) > 0
    want_coef = len(flags[2]) > 0
    n = out_i.shape[0]
    zero = np.float32(0.0)
    one = np.uint64(1)
    two = np.uint64(2)
    three = np.uint64(3)
    four = np.uint64(4)
    row = np.uint64(pairs.shape[1]) * four          # int32 entries per edge code
    flat = pairs.reshape(-1)
    flat_f = flat.view(np.float32)
    xf = x.reshape(-1)
    cc = np.uint64(c)
    ncut = np.uint64(0)
    for i in range(n):
        i0 = np.int64(0)
        i1 = np.int64(0)
        i2 = np.int64(0)
        i3 = np.int64(0)
        f0 = zero
        f1 = zero
        f2 = zero
        f3 = zero
        c0 = zero
        c1 = zero
        c2 = zero
        c3 = zero
        e = indptr[i]
        end = indptr[i + 1]
        while e < end:
            base = np.uint64(col[e]) * row
            r = np.uint64(src[e]) * cc
            p = base + np.uint64(xf[r]) * four
            i0 = _sat(i0 + flat[p], lo, hi, saturate)
            f0 += flat_f[p + one]
            if want_coef:
                c0 += flat_f[p + two]
            b0 = np.uint64(flat[p + three])
            if c > 1:
                p = base + np.uint64(xf[r + one]) * four
                i1 = _sat(i1 + flat[p], lo, hi, saturate)
                f1 += flat_f[p + one]
                if want_coef:
                    c1 += flat_f[p + two]
                b1 = np.uint64(flat[p + three])
            if c > 2:
                p = base + np.uint64(xf[r + two]) * four
                i2 = _sat(i2 + flat[p], lo, hi, saturate)
                f2 += flat_f[p + one]
                if want_coef:
                    c2 += flat_f[p + two]
                b2 = np.uint64(flat[p + three])
            if c > 3:
                p = base + np.uint64(xf[r + three]) * four
                i3 = _sat(i3 + flat[p], lo, hi, saturate)
                f3 += flat_f[p + one]
                if want_coef:
                    c3 += flat_f[p + two]
                b3 = np.uint64(flat[p + three])
            if want_cut:
                q = e * cc
                cut[ncut] = q
                if c > 1:
                    ncut += b0
                    cut[ncut] = q + one
                    b0 = b1
                if c > 2:
                    ncut += b0
                    cut[ncut] = q + two
                    b0 = b2
                if c > 3:
                    ncut += b0
                    cut[ncut] = q + three
                    b0 = b3
                ncut += b0
            e += one
        out_i[i, 0] = i0
        out_f[i, 0] = f0
        if want_coef:
            coef[i, 0] = c0
        if c > 1:
            out_i[i, 1] = i1
            out_f[i, 1] = f1
            if want_coef:
                coef[i, 1] = c1
        if c > 2:
            out_i[i, 2] = i2
            out_f[i, 2] = f2
            if want_coef:
                coef[i, 2] = c2
        if c > 3:
            out_i[i, 3] = i3
            out_f[i, 3] = f3
            if want_coef:
                coef[i, 3] = c3
    return ncut


def exact_message_pass(indptr: np.ndarray, src: np.ndarray, col: np.ndarray, x: np.ndarray,
                       pairs: np.ndarray, lo: int, hi: int, saturate: bool, want_cut: bool,
                       want_coef: bool):
    """:func:`aggregate_table` and :func:`quantized_message_sum` in one pass over the edges,
    when the float messages are those of codes.

    In the integer-exact forward a propagation's float input is the dequantized node codes
    and its edge weights the dequantized edge codes, so every float message, and each of its
    terms in :func:`quantized_message_sum`, is a function of its pair of codes:
    :func:`pair_table` gives them all, and the pass adds the looked-up terms in the same
    order as that kernel (each row in edge order from zero; clipped positions ascending), so
    the float results are bit-identical to it.  The integer accumulators are those of
    :func:`aggregate_table`.

    Parameters
    ----------
    indptr, src, col
        As :func:`aggregate_table`.
    x : (N_src, C) each node code's column of ``pairs``: the code minus the smallest code,
        or its position among the codes that occur (:func:`compact_codes`) when ``pairs``
        has only their columns
    pairs : (Lw, Lx, 4) int32, :func:`pair_table`
    lo, hi : int
        The accumulator range.
    saturate : bool
        Whether a partial sum can leave ``[lo, hi]`` (else the clamp is skipped).
    want_cut, want_coef : bool

    Returns
    -------
    acc : (N, C) int64 accumulators (as :func:`aggregate_table`)
    out, cut, coef : as :func:`quantized_message_sum`
    """
    n, c = indptr.shape[0] - 1, x.shape[1]
    out_i = np.empty((n, c), dtype=np.int64)
    out_f = np.empty((n, c), dtype=np.float32)
    coef = np.empty((n, c) if want_coef else (0, c), dtype=np.float32)
    cut = np.empty(src.shape[0] * c if want_cut else 0, dtype=np.int64)
    xs = _unsigned(np.asarray(x, dtype=np.uint8 if pairs.shape[1] <= 256 else np.int32))
    src, col = _unsigned(src), _unsigned(col)
    if 0 < c <= NARROW:
        flags = tuple((0,) if f else () for f in (saturate, want_cut, want_coef))
        k = _exact_message_pass_narrow(_unsigned(indptr), src, col, xs, np.ascontiguousarray(pairs),
                                       int(lo), int(hi), flags, out_i, out_f, coef,
                                       cut.view(np.uint64), (0,) * c)
        k = int(k)
    else:
        k = _exact_message_pass(indptr, src, col, xs, pairs, int(lo), int(hi), bool(saturate),
                                bool(want_cut), bool(want_coef), np.empty(c, dtype=np.int64),
                                np.empty(c, dtype=np.float32), np.empty(c, dtype=np.float32),
                                out_i, out_f, coef, cut)
    return out_i, out_f, (cut[:k].copy() if want_cut else None), (coef if want_coef else None)


@njit(cache=True, nogil=True, inline="always")
def _finish(out, snap, has_snap, dz, ds, vals, has_vals):  # pragma: no cover - numba
    # a stage's tail on its clamped codes, after the loop that made them (kept apart, so
    # that loop stays as vectorizable as without a tail): BT's snap, the two ``add`` ops
    # ``level = clamp(round_shift(y Ma + Mb, n), l0, l1)``, ``clamp(level step, qmin,
    # qmax)``, in place; then the dequantization
    if has_snap:
        ma, mb, n, l0, l1, step, qmin, qmax = (snap[0], snap[1], snap[2], snap[3], snap[4],
                                               snap[5], snap[6], snap[7])
        half = np.int64(1) << (n - 1)
        for i in range(out.shape[0]):
            lv = (out[i] * ma + mb + half) >> n
            lv = l0 if lv < l0 else (l1 if lv > l1 else lv)
            r = lv * step
            out[i] = qmin if r < qmin else (qmax if r > qmax else r)
    if has_vals:
        for i in range(out.shape[0]):
            vals[i] = np.float32(out[i] - dz) * ds


#: the tail's placeholders when there is no snap or no value output
_NO_SNAP = np.zeros(8, dtype=np.int64)
_NO_VALUES = np.zeros(0, dtype=np.float32)


def _tail_args(tail, shape: tuple) -> tuple:
    """The kernels' tail arguments for ``tail`` (``None``, or ``(snap, scale, zero)``), and the
    values array (``None`` without a tail)."""
    if tail is None:
        return (_NO_SNAP, False, np.int64(0), np.float32(0.0), _NO_VALUES, False), None
    snap, scale, zero = tail
    if snap is None:
        snap_arr = _NO_SNAP
    else:
        snap_arr = np.array(snap, dtype=np.int64)
        if snap_arr.shape != (8,) or snap_arr[2] < 1:
            raise ValueError(f"a snap is (Ma, Mb, n >= 1, level min, level max, step, qmin, "
                             f"qmax), not {snap!r}")
    vals = np.empty(shape, dtype=np.float32)
    return (snap_arr, snap is not None, np.int64(zero), np.float32(scale), vals.reshape(-1),
            True), vals


@njit(cache=True, nogil=True)
def _add_codes(a, za, ma, b, zb, mb, n, z, qmin, qmax, out, snap, has_snap, dz, ds, vals,
               has_vals):  # pragma: no cover - numba
    half = np.int64(1) << (n - 1) if n > 0 else np.int64(0)
    for i in range(out.shape[0]):
        v = (a[i] - za) * ma + (b[i] - zb) * mb
        if n > 0:
            v = (v + half) >> n
        elif n < 0:
            v = v << -n
        v += z
        out[i] = qmin if v < qmin else (qmax if v > qmax else v)
    _finish(out, snap, has_snap, dz, ds, vals, has_vals)


def add_codes(a: np.ndarray, a_zero: int, a_mult: int, b: np.ndarray, b_zero: int, b_mult: int,
              shift: int, zero_point: int, qmin: int, qmax: int, tail=None):
    """``clamp(round_shift((a - za) Ma + (b - zb) Mb, n) + z, qmin, qmax)`` in one pass: the
    arithmetic of :func:`quant.reference.add_requantize` (int64 throughout, arithmetic
    shifts, half-up rounding), on two int64 arrays of one shape.

    The caller has validated the multipliers, shift and zero point (as
    :func:`quant.torch_ops.add_requantize` does).  Returns ``(codes, values)``: int64 codes of
    that shape, and ``values`` ``None`` without a ``tail``.

    ``tail`` (optional) ``(snap, scale, zero)``: in the same call each code then goes through
    BT's snap, the export's two ``add`` ops ``level = clamp(round_shift(y Ma + Mb, n), l0,
    l1)`` and ``clamp(level step, qmin, qmax)`` with ``snap = (Ma, Mb, n, l0, l1, step, qmin,
    qmax)`` (``None``: no snap), and is dequantized as :func:`dequantize` does with ``scale``
    and ``zero``; ``values`` are then those float32 values (of the snapped codes).
    """
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    out = np.empty(a.shape, dtype=np.int64)
    targs, vals = _tail_args(tail, a.shape)
    _add_codes(a.reshape(-1), np.int64(a_zero), np.int64(a_mult), b.reshape(-1), np.int64(b_zero),
               np.int64(b_mult), np.int64(shift), np.int64(zero_point), np.int64(qmin),
               np.int64(qmax), out.reshape(-1), *targs)
    return out, vals


@njit(cache=True, nogil=True)
def _subtract_clipped(gx, g, w, src, dst, cut, lanes):  # pragma: no cover - numba
    # ``lanes``: a tuple of C zeros, so C is a compile-time constant (the division by it a
    # multiplication and shifts)
    c = np.uint64(len(lanes))
    for j in range(cut.shape[0]):
        p = cut[j]
        e = p // c
        ch = p - e * c
        gx[src[e] * c + ch] += -(g[dst[e] * c + ch] * w[e])


def subtract_clipped(gx: np.ndarray, g: np.ndarray, w: np.ndarray, src: np.ndarray,
                     dst: np.ndarray, cut: np.ndarray, c: int) -> None:
    """``gx[src[e], k] += -(g[dst[e], k] * w[e])`` for each clipped message ``e * c + k`` of
    ``cut``, in place, in the order of ``cut``: the message sum's input-gradient correction
    (a clipped message passes no gradient), with the float32 operations and order of
    ``corr = g[dst, k] * w`` negated and ``index_add_``-ed into ``gx``.

    Parameters
    ----------
    gx : (N * C,) float32, contiguous (written)
    g : (N * C,) float32 upstream gradient; w : (E,) float32 edge values
    src, dst : (E,) int64 sources and destinations, canonical order
    cut : (K,) int64 flat positions ``e * C + k``, each in ``[0, E * C)``
    c : int
        The channels C.
    """
    _subtract_clipped(gx, g, w, _unsigned(src), _unsigned(dst), _unsigned(cut), (0,) * int(c))


@njit(cache=True, nogil=True, inline="always")
def _requant_one(v, m, n, z, lo, hi):  # pragma: no cover - numba
    r = v * m
    if n > 0:
        r = (r + (np.int64(1) << (n - 1))) >> n
    elif n < 0:
        r = r << -n
    r += z
    return lo if r < lo else (hi if r > hi else r)


@njit(cache=True, nogil=True)
def _requant_chain(v, m1, n1, z1, lo1, hi1, two, m2, n2, z2, lo2, hi2, out, snap, has_snap, dz, ds,
                   vals, has_vals):  # pragma: no cover - numba
    vmax = np.int64(0)
    for i in range(v.shape[0]):
        a = v[i]
        a = -a if a < 0 else a
        vmax = a if a > vmax else vmax
    for i in range(v.shape[0]):
        r = _requant_one(v[i], m1, n1, z1, lo1, hi1)
        if two:
            r = _requant_one(r - z1, m2, n2, z2, lo2, hi2)
        out[i] = r
    _finish(out, snap, has_snap, dz, ds, vals, has_vals)
    return vmax


def requant_chain(v: np.ndarray, first, second=None, tail=None):
    """``second(first(v))`` in one pass, or ``first(v)`` without ``second``: each requantizer
    ``r`` (a :class:`quant.aggregate.Requantizer`) is ``clamp(round_shift(u r.multiplier,
    r.shift) + r.zero_point, qmin, qmax)`` of its centred input ``u`` (``v``, then the first
    result minus ``first.zero_point``), the arithmetic of :func:`quant.reference.requantize`
    in int64.

    Returns ``None``, computing nothing the caller keeps, when a product could leave the
    range :func:`quant.reference.requantize` admits (``max|u| |M| 2**max(0, -n)`` from
    :data:`quant.reference.PRODUCT_LIMIT` up): the caller then takes the validated path,
    which refuses it with its error.

    ``tail`` (optional) ``(snap, scale, zero)``: as in :func:`add_codes`, the codes are
    snapped and dequantized in the same pass.

    Shapes: ``v`` any shape, int64; returns ``(codes, values)`` as :func:`add_codes`: int64
    codes of that shape, float32 values with a ``tail``, else ``None``.
    """
    from quant.reference import product_fits

    v = np.ascontiguousarray(v, dtype=np.int64)
    out = np.empty(v.shape, dtype=np.int64)
    two = second is not None
    s = second if two else first
    targs, vals = _tail_args(tail, v.shape)
    vmax = _requant_chain(v.reshape(-1), np.int64(first.multiplier), np.int64(first.shift),
                          np.int64(first.zero_point), np.int64(first.spec.qmin),
                          np.int64(first.spec.qmax), two, np.int64(s.multiplier),
                          np.int64(s.shift), np.int64(s.zero_point), np.int64(s.spec.qmin),
                          np.int64(s.spec.qmax), out.reshape(-1), *targs)
    if not product_fits(int(vmax), first.multiplier, first.shift):
        return None
    if two:
        umax = max(abs(first.spec.qmin - first.zero_point), abs(first.spec.qmax - first.zero_point))
        if not product_fits(umax, second.multiplier, second.shift):
            return None
    return out, vals


@njit(cache=True, nogil=True)
def _message_table(x0, x1, xz, w0, w1, wz, has_msg, m, n, z, lo, hi, out):  # pragma: no cover - numba
    for a in range(x1 - x0 + 1):
        u = x0 + a - xz
        for b in range(w1 - w0 + 1):
            v = u * (w0 + b - wz)
            if has_msg:
                v = _requant_one(v, m, n, z, lo, hi) - z
            out[a, b] = v


def message_table(x_range: tuple[int, int], x_zero: int, w_range: tuple[int, int], w_zero: int,
                  msg=None) -> np.ndarray | None:
    """Every message ``(x - z_x)(w - z_w)`` of the code ranges ``x_range`` and ``w_range``
    (inclusive), requantized by ``msg`` (a :class:`quant.aggregate.Requantizer`, optional) and
    centred (``msg``'s codes minus its zero point): :func:`requant_chain` on every pair.

    Returns (levels_x, levels_w) int16 when every entry is within ``+-32767``, else int32
    (written row by row); ``None``, computing nothing, when a product could leave the range
    :func:`quant.reference.requantize` admits (the caller then takes the validated path).
    """
    from quant.reference import product_fits

    (x0, x1), (w0, w1) = x_range, w_range
    pmax = max(abs(x0 - x_zero), abs(x1 - x_zero)) * max(abs(w0 - w_zero), abs(w1 - w_zero))
    if msg is None:
        m = n = z = 0
        emax = pmax
        lo = hi = 0
    else:
        m, n, z = msg.multiplier, msg.shift, msg.zero_point
        lo, hi = msg.spec.qmin, msg.spec.qmax
        if not product_fits(pmax, m, n):
            return None
        emax = max(abs(lo - z), abs(hi - z))
    dtype = np.int16 if emax <= np.iinfo(np.int16).max else np.int32
    out = np.empty((x1 - x0 + 1, w1 - w0 + 1), dtype=dtype)
    _message_table(np.int64(x0), np.int64(x1), np.int64(x_zero), np.int64(w0), np.int64(w1),
                   np.int64(w_zero), msg is not None, np.int64(m), np.int64(n), np.int64(z),
                   np.int64(lo), np.int64(hi), out)
    return out


@njit(cache=True, nogil=True)
def _dequantize(q, z, s, out):  # pragma: no cover - numba
    for i in range(q.shape[0]):
        out[i] = np.float32(q[i] - z) * s


def dequantize(q: np.ndarray, zero_point: int, scale) -> np.ndarray:
    """``float32(q - z) * s`` (float32 ``s``): :func:`quant.torch_ops.dequantize` in one pass.

    ``q - z`` goes to float32 rounded to nearest even, as torch's conversion does (exact for
    codes of up to 24 bits).  Shapes: ``q`` any shape, int64; returns float32 of that shape.
    """
    q = np.ascontiguousarray(q, dtype=np.int64)
    out = np.empty(q.shape, dtype=np.float32)
    _dequantize(q.reshape(-1), np.int64(zero_point), np.float32(scale), out.reshape(-1))
    return out


@njit(cache=True, nogil=True)
def _centred_max(codes, zero):  # pragma: no cover - numba
    m = np.int64(0)
    for i in range(codes.shape[0]):
        v = codes[i] - zero
        v = -v if v < 0 else v
        m = v if v > m else m
    return m


def centred_max(codes: np.ndarray, zero: int) -> int:
    """``max |codes - zero|`` (0 for no codes), one pass.  Shapes: ``codes`` any, int64."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    return int(_centred_max(codes.reshape(-1), np.int64(zero)))


@njit(cache=True, nogil=True)
def _centred_operand(codes, zero, xv, masked, out):  # pragma: no cover - numba
    zf = out.dtype.type(zero)
    z0 = out.dtype.type(0.0)
    for i in range(codes.shape[0]):
        if masked and xv[i] == 0:
            out[i] = z0
        else:
            out[i] = out.dtype.type(codes[i]) - zf


def centred_operand(codes: np.ndarray, zero: int, dtype, xv: np.ndarray | None) -> np.ndarray:
    """``codes - zero`` in float ``dtype`` (float32 or float64), 0 where ``xv == 0`` (the
    dropped-out inputs, when ``xv`` is given): the operand of an exact linear layer, with the
    operations of ``codes.to(dtype) - zero`` then ``masked_fill_(xv == 0, 0)``.

    Shapes: ``codes`` (N, K) int64, ``xv`` (N, K) float32 or ``None``; returns (N, K).
    """
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    out = np.empty(codes.shape, dtype=dtype)
    masked = xv is not None
    xf = np.ascontiguousarray(xv, dtype=np.float32).reshape(-1) if masked else np.zeros(1, np.float32)
    _centred_operand(codes.reshape(-1), np.int64(zero), xf, masked, out.reshape(-1))
    return out


@njit(cache=True, nogil=True)
def _linear_accumulators(prod, scale, rescale, bias, with_bias, out):  # pragma: no cover - numba
    n, c = out.shape
    for i in range(n):
        for k in range(c):
            a = np.int64(prod[i, k])
            if rescale:
                a = np.int64(np.rint(np.float64(a) / scale))
            if with_bias:
                a += bias[k]
            out[i, k] = a


def linear_accumulators(prod: np.ndarray, keep_share: float | None, bias: np.ndarray | None
                        ) -> np.ndarray:
    """A linear layer's int64 accumulators from its exact float product: ``prod`` to int64,
    then (``keep_share`` given: the dropout rescaling) ``rint(float64(acc) / keep_share)``
    to int64, then ``+ bias``: the operations of ``prod.to(int64)``,
    ``round(acc.to(float64) / keep_share).to(int64)`` and ``acc + bias[None, :]``.

    Shapes: ``prod`` (N, C) float32 / float64 integral values, ``bias`` (C,) int64 or
    ``None``; returns (N, C) int64.
    """
    prod = np.ascontiguousarray(prod)
    out = np.empty(prod.shape, dtype=np.int64)
    b = np.zeros(1, np.int64) if bias is None else np.ascontiguousarray(bias, dtype=np.int64)
    _linear_accumulators(prod, np.float64(1.0 if keep_share is None else keep_share),
                         keep_share is not None, b, bias is not None, out)
    return out


@njit(cache=True, nogil=True)
def _min_max(a):  # pragma: no cover - numba
    lo = a[0]
    hi = a[0]
    for i in range(1, a.shape[0]):
        v = a[i]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    return lo, hi


def min_max(a: np.ndarray) -> tuple[int, int]:
    """``(min, max)`` of a non-empty integer array in one pass.  Shapes: ``a`` any."""
    a = np.ascontiguousarray(a)
    lo, hi = _min_max(a.reshape(-1))
    return int(lo), int(hi)


@njit(cache=True, nogil=True)
def _scatter_unclipped(gx, g, w, src, dst, cut, lanes, clipped):  # pragma: no cover - numba
    # the clipped positions first become a flag per message (independent stores); the edge
    # loop then keeps a clipped message's entry with a select, not a branch (where many
    # messages clip a branch mispredicts).  ``lanes``: a tuple of C zeros, so the lane loop
    # has a compile-time trip count and is unrolled (with a run-time C it took half again
    # as long)
    c = np.uint64(len(lanes))
    for j in range(cut.shape[0]):
        clipped[cut[j]] = 1
    for e in range(src.shape[0]):
        we = w[e]
        gs = dst[e] * c
        gd = src[e] * c
        p = np.uint64(e) * c
        for k in range(len(lanes)):
            q = np.uint64(k)
            old = gx[gd + q]
            new = old + g[gs + q] * we
            gx[gd + q] = old if clipped[p + q] else new


def scatter_unclipped(g: np.ndarray, w: np.ndarray, src: np.ndarray, dst: np.ndarray,
                      cut: np.ndarray, num_src: int, c: int) -> np.ndarray:
    """The message sum's input gradient summed edge by edge: ``gx[src[e], k] += g[dst[e], k]
    * w[e]`` for every message ``e * c + k`` not in ``cut`` (a clipped message passes no
    gradient), edges in order, from zeros: the float32 operations and order of
    ``zeros.index_add_(0, src, gm * w[:, None])`` with ``gm = g[dst]`` and the clipped
    positions of ``gm`` set to 0 (adding a zero product leaves every partial sum as it is:
    starting from +0, no partial sum is -0).

    Parameters
    ----------
    g : (N * C,) float32 upstream gradient; w : (E,) float32 edge values
    src, dst : (E,) int64 sources and destinations, canonical order
    cut : (K,) int64 clipped flat positions ``e * C + k``, ascending
    num_src : int
        Rows of the gradient.
    c : int
        The channels C.

    Returns
    -------
    (num_src * C,) float32.
    """
    gx = np.zeros(num_src * c, dtype=np.float32)
    clipped = np.zeros(src.shape[0] * c, dtype=np.uint8)
    _scatter_unclipped(gx, g, w, _unsigned(src), _unsigned(dst), _unsigned(cut), (0,) * int(c),
                       clipped)
    return gx


@njit(cache=True, nogil=True)
def _lookup(codes, table, out):  # pragma: no cover - numba
    n = table.shape[0]
    for i in range(codes.shape[0]):
        c = codes[i]
        if c < 0 or c >= n:
            return False
        out[i] = table[c]
    return True


def lookup(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[codes]`` in one pass: each code's entry of a table of every code's result
    (BT's snap).  Shapes: ``codes`` any shape, int64; ``table`` (L,) int64; returns int64
    of ``codes``' shape.  A code outside ``[0, L)`` raises ``IndexError``, as the tensor
    gather does."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    out = np.empty(codes.shape, dtype=np.int64)
    if not _lookup(codes.reshape(-1), np.ascontiguousarray(table, dtype=np.int64), out.reshape(-1)):
        lo, hi = min_max(codes)
        raise IndexError(f"codes must be in [0, {table.shape[0]}), not in [{lo}, {hi}]")
    return out
