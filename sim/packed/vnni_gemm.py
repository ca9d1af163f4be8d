"""Linear layers of integer codes on the CPU's int8 dot-product instruction (AVX-512 VNNI).

``vpdpbusd`` multiplies 64 unsigned bytes by 64 signed bytes and adds each group of four
products to one of sixteen int32 lanes, exactly (no saturation).  :func:`linear_requant_vnni`
computes ``requant((x - z_x) @ wc + bias)`` with it:

* the weights, centred (``wc = w - z_w``, each in ``[-128, 127]``), are laid out once per
  layer (:func:`pack_weights_vnni`): for each group of four inputs ``t`` and each block of
  sixteen outputs, 64 bytes ``wc[4t + i, 16 b + j]`` at byte ``4 j + i``;
* each input row becomes unsigned bytes ``u = x + off`` (``off = 0`` for codes in 0..255,
  128 for codes in -128..127), zero padded to a multiple of four;
* per row and output block, one ``vpdpbusd`` per four inputs (the four bytes broadcast to
  every lane) accumulates ``sum_k u_k wc[k, j]`` in int32;
* ``sum_k (x_k - z_x) wc[k, j] = sum_k u_k wc[k, j] - (z_x + off) colsum_j`` is corrected in
  int64, the bias added and the requantizer (:func:`sim.exact.kernels.requant_1`) applied.

Exactness: every product is at most ``255 * 128`` in magnitude, so every partial sum of a
row is at most ``K * 255 * 128``, below 2**31 for ``K <= 65792`` (checked), and the int32
lanes hold the exact dot products.  The instruction is used only when numba compiles for a
CPU that has it (:func:`vnni_available`); otherwise the runner keeps its other GEMM paths.
Tests compare the result with :func:`quant.reference.linear_accumulate` at the operand
extremes.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from sim.exact.kernels import requant_1

__all__ = ["VNNI_MAX_K", "linear_requant_vnni", "pack_weights_vnni", "vnni_available",
           "vnni_layer_ok"]

#: widest inner dimension whose int32 partial sums cannot wrap (``K * 255 * 128 < 2**31``)
VNNI_MAX_K = ((1 << 31) - 1) // (255 * 128)

_I32, _I8, _I64 = ir.IntType(32), ir.IntType(8), ir.IntType(64)


def vnni_available() -> bool:
    """Whether numba compiles for a CPU with AVX-512 VNNI (``vpdpbusd`` on 512-bit vectors)."""
    try:
        from llvmlite import binding

        f = binding.get_host_cpu_features()
        return bool(f.get("avx512vnni", False) and f.get("avx512bw", False))
    except Exception:  # pragma: no cover - feature probe unavailable
        return False


def vnni_layer_ok(k: int, wc: np.ndarray) -> bool:
    """Whether a layer of ``k`` inputs and centred weights ``wc`` fits the kernel: every
    ``wc`` in int8 and ``k <= VNNI_MAX_K``."""
    return (0 < k <= VNNI_MAX_K and wc.size > 0 and int(wc.min()) >= -128
            and int(wc.max()) <= 127)


def pack_weights_vnni(wc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lay out centred weights (K, C) for :func:`linear_requant_vnni`.

    Returns
    -------
    wp : int8 (ceil(K / 4) * ceil(C / 16) * 64,)
        Group ``t``, output block ``b``: 64 bytes at ``(t * nblk + b) * 64``, byte
        ``4 j + i`` = ``wc[4 t + i, 16 b + j]`` (zero beyond ``K`` or ``C``).
    colsum : int64 (C,)
        ``sum_k wc[k, j]``.
    """
    wc = np.asarray(wc, dtype=np.int64)
    k, c = wc.shape
    kp, cp = -(-k // 4) * 4, -(-c // 16) * 16
    full = np.zeros((kp, cp), dtype=np.int8)
    full[:k, :c] = wc
    # (t, i, b, j) -> (t, b, j, i)
    wp = full.reshape(kp // 4, 4, cp // 16, 16).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(wp).reshape(-1), wc.sum(axis=0)


@intrinsic
def _dot_block(typingctx, ubuf, wp, n_groups, blk, n_blk, out):
    """``out[j] = sum_t sum_i ubuf[4t + i] * wp[(t * n_blk + blk) * 64 + 4 j + i]`` for
    ``j < 16``: one ``vpdpbusd`` per group of four inputs, the accumulator in a register."""
    sig = types.void(ubuf, wp, n_groups, blk, n_blk, out)

    def codegen(context, builder, signature, args):
        aty = signature.args
        ua = context.make_array(aty[0])(context, builder, args[0])
        wa = context.make_array(aty[1])(context, builder, args[1])
        oa = context.make_array(aty[5])(context, builder, args[5])
        v32, v8 = ir.VectorType(_I32, 16), ir.VectorType(_I8, 64)
        dpb = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v32, [v32, v8, v8]),
                                             "llvm.x86.avx512.vpdpbusd.512")
        n_groups = args[2]
        blk, n_blk = args[3], args[4]
        ubase = builder.bitcast(ua.data, _I32.as_pointer())
        wbase = builder.bitcast(wa.data, _I8.as_pointer())
        pre = builder.block
        head = builder.append_basic_block("vnni.head")
        body = builder.append_basic_block("vnni.body")
        done = builder.append_basic_block("vnni.done")
        zero = ir.Constant(v32, [0] * 16)
        builder.branch(head)
        builder.position_at_end(head)
        t = builder.phi(_I64)
        t.add_incoming(ir.Constant(_I64, 0), pre)
        acc = builder.phi(v32)
        acc.add_incoming(zero, pre)
        builder.cbranch(builder.icmp_signed("<", t, n_groups), body, done)
        builder.position_at_end(body)
        a = builder.load(builder.gep(ubase, [t]), align=1)
        av = builder.insert_element(ir.Constant(v32, ir.Undefined), a, ir.Constant(_I32, 0))
        av = builder.shuffle_vector(av, ir.Constant(v32, ir.Undefined),
                                    ir.Constant(v32, [0] * 16))
        off = builder.mul(builder.add(builder.mul(t, n_blk), blk), ir.Constant(_I64, 64))
        bv = builder.load(builder.bitcast(builder.gep(wbase, [off]), v8.as_pointer()), align=1)
        new = builder.call(dpb, [acc, builder.bitcast(av, v8), bv])
        t.add_incoming(builder.add(t, ir.Constant(_I64, 1)), builder.block)
        acc.add_incoming(new, builder.block)
        builder.branch(head)
        builder.position_at_end(done)
        builder.store(acc, builder.bitcast(oa.data, v32.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, parallel=True)
def _linear_vnni(x, off, corr_zero, wp, colsum, bias, c, m, n, z, qmin, qmax, block):
    rows, k = x.shape
    n_groups = (k + 3) // 4
    n_blk = (c + 15) // 16
    y = np.empty((rows, c), dtype=np.int16)
    n_blocks = (rows + block - 1) // block
    for b in prange(n_blocks):
        ubuf = np.zeros(n_groups * 4, dtype=np.uint8)
        acc = np.zeros(16, dtype=np.int32)
        for i in range(b * block, min(rows, (b + 1) * block)):
            for t in range(k):
                ubuf[t] = np.uint8(np.int64(x[i, t]) + off)
            for bl in range(n_blk):
                _dot_block(ubuf, wp, n_groups, bl, n_blk, acc)
                for j in range(min(16, c - 16 * bl)):
                    col = 16 * bl + j
                    s = np.int64(acc[j]) - corr_zero * colsum[col] + bias[col]
                    y[i, col] = requant_1(s, m, n, z, qmin, qmax)
    return y


def linear_requant_vnni(x: np.ndarray, x_zero: int, packed: tuple[np.ndarray, np.ndarray],
                        bias: np.ndarray, m: int, n: int, z: int, qmin: int, qmax: int,
                        block: int = 64) -> np.ndarray | None:
    """``requant((x - x_zero) @ wc + bias)`` with ``vpdpbusd``: int16 (N, C) codes, or None
    when the input codes are neither within 0..255 nor within -128..127.

    Parameters
    ----------
    x : int (N, K) codes
    x_zero : int
    packed : :func:`pack_weights_vnni` of the centred weights (K, C)
    bias : int64 (C,)
    m, n, z, qmin, qmax : int
        Output requantizer; the caller checks its int64 headroom as for the other paths.
    """
    x = np.ascontiguousarray(x)
    lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
    if 0 <= lo and hi <= 255:
        off = 0
    elif -128 <= lo and hi <= 127:
        off = 128
    else:
        return None
    wp, colsum = packed
    return _linear_vnni(x, off, int(x_zero) + off, wp, colsum, np.asarray(bias, np.int64),
                        colsum.size, int(m), int(n), int(z), int(qmin), int(qmax), int(block))
