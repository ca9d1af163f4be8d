"""The integer reference: plain numpy, bit-exact definition of every integer operation.

Every other implementation (torch integer mode, numba simulator, Amaranth RTL, cocotb
models) is tested against these functions with exact equality.  See ``docs/numerics.md``.

Conventions
-----------
* Codes are held in ``np.int64`` arrays while computing and returned as ``np.int32``.
* Float -> code conversion is done in IEEE float32 (the trainer's dtype):
  ``q = clamp(R(x / s + z), qmin, qmax)`` with ``R`` the spec's rounding mode.
* The requantizer is ``clamp(round_shift(v * M, n) + z, qmin, qmax)``; ``round_shift``
  rounds half up (add ``2**(n-1)``, arithmetic shift right by ``n``); a negative ``n``
  is an exact left shift.
"""

from __future__ import annotations

import math

import numpy as np

from quant.errors import QuantError, invalid
from quant.spec import QuantSpec, Rounding

#: Largest right shift a requantizer may use (keeps ``v * M`` and the rounding term in int64).
MAX_SHIFT = 62
#: Widest multiplier :func:`derive_multiplier` accepts.
MAX_MULT_BITS = 31
#: ``|v * M|`` must stay below this so that the product and rounding term fit in int64.
PRODUCT_LIMIT = 1 << 62


# ---------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------


def product_fits(vmax: int, multiplier: int, shift: int) -> bool:
    """Whether ``|v| <= vmax`` times ``multiplier``, left-shifted by ``max(0, -shift)``, stays
    below :data:`PRODUCT_LIMIT`: the range :func:`requantize` admits (Python ints, exact)."""
    return vmax * abs(multiplier) * (1 << max(0, -shift)) < PRODUCT_LIMIT


def check_scale(scale: float, field: str = "scale") -> np.float32:
    """Return ``scale`` as float32 after checking it is finite and > 0."""
    try:
        s = np.float32(scale)
    except (TypeError, ValueError):
        raise invalid(field, scale, "a positive finite number") from None
    if not np.isfinite(s) or s <= 0:
        raise invalid(field, float(scale), "a positive finite number")
    return s


def check_finite(x: np.ndarray, field: str = "x") -> None:
    """Raise if ``x`` holds NaN or infinity, naming the first bad index and value."""
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise QuantError(f"{field} must be finite, not {float(x[idx])!r} at index {idx}")


def _check_int_array(v: np.ndarray, field: str) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype.kind not in "iu":
        raise invalid(f"{field}.dtype", str(v.dtype), "an integer dtype")
    return v.astype(np.int64)


def _check_shift(n: int, field: str = "shift") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise invalid(field, n, "an int")
    n = int(n)
    if not -MAX_SHIFT <= n <= MAX_SHIFT:
        raise invalid(field, n, f"in -{MAX_SHIFT}..{MAX_SHIFT}")
    return n


def _check_multiplier(m: int, field: str = "multiplier", signed: bool = False) -> int:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)):
        raise invalid(field, m, "an int")
    m = int(m)
    lo = -(1 << MAX_MULT_BITS) + 1 if signed else 0
    if not lo <= m < (1 << MAX_MULT_BITS):
        raise invalid(field, m, f"in {lo}..2**{MAX_MULT_BITS}-1")
    return m


# ---------------------------------------------------------------------------------------
# float <-> code
# ---------------------------------------------------------------------------------------

def round_float(v: np.ndarray, rounding: Rounding) -> np.ndarray:
    """Round float32 values to integral float32 values with the given mode."""
    rounding = Rounding.parse(rounding)
    if rounding is Rounding.HALF_EVEN:
        return np.rint(v)
    if rounding is Rounding.HALF_UP:
        # floor(v) + [v - floor(v) >= 0.5]: exact (the fraction is exact in float32), unlike
        # floor(v + 0.5), whose addition rounds 0.49999997 + 0.5 up to 1.0.
        f = np.floor(v)
        return f + (v - f >= np.float32(0.5)).astype(f.dtype)
    return np.floor(v)


def quantize(x: np.ndarray, scale: float, zero_point: int, spec: QuantSpec) -> np.ndarray:
    """Float -> integer codes: ``clamp(R(x / s + z), qmin, qmax)`` in float32.

    Parameters
    ----------
    x : array_like, any shape
        Real values (converted to float32).
    scale : float
        Step size ``s > 0``.
    zero_point : int
        Code of real zero, inside ``[qmin, qmax]``.
    spec : QuantSpec

    Returns
    -------
    np.ndarray of int32, same shape as ``x``
    """
    x = np.asarray(x, dtype=np.float32)
    check_finite(x)
    s = check_scale(scale)
    z = spec.check_zero_point(zero_point)
    v = round_float(x / s + np.float32(z), spec.rounding)
    return np.clip(v, spec.qmin, spec.qmax).astype(np.int32)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Codes -> float32 values ``(q - z) * s``.

    Shapes: ``q`` any shape; returns float32 of the same shape.
    """
    q = _check_int_array(q, "q")
    s = check_scale(scale)
    return (q - int(zero_point)).astype(np.float32) * s


def saturate(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Clamp integers to ``[lo, hi]`` (int64 in, int64 out)."""
    return np.clip(_check_int_array(v, "v"), lo, hi)


_ZERO32 = np.float32(0.0)
_EPS32 = np.finfo(np.float32).eps


def qparams_from_range(lo: float, hi: float, spec: QuantSpec) -> tuple[np.float32, int]:
    """Scale and zero point covering ``[min(lo, 0), max(hi, 0)]`` (float32 arithmetic).

    Unsigned: ``s = (hi - lo) / (levels - 1)``, ``z = clamp(R(-lo / s), qmin, qmax)``.
    Signed (symmetric): ``s = max(|lo|, |hi|) / qmax``, ``z = 0``.
    A degenerate range gives ``s = 1``.  ``s`` is at least float32 eps.
    """
    lo32 = np.minimum(np.float32(lo), _ZERO32)
    hi32 = np.maximum(np.float32(hi), _ZERO32)
    if not (math.isfinite(lo32) and math.isfinite(hi32)):
        raise invalid("range", (float(lo), float(hi)), "finite")
    if spec.signed:
        if spec.qmax < 1:
            raise invalid("bits", spec.bits, ">= 2 for a signed symmetric range (qmax would be 0)")
        amax = np.maximum(-lo32, hi32)
        if amax == 0:
            return np.float32(1.0), 0
        return np.maximum(amax / np.float32(spec.qmax), _EPS32), 0
    if hi32 == lo32:
        return np.float32(1.0), 0
    s = np.maximum((hi32 - lo32) / np.float32(spec.levels - 1), _EPS32)
    z = float(round_float(-lo32 / s, spec.rounding))          # integral: the clamp is exact
    return np.float32(s), int(min(max(z, spec.qmin), spec.qmax))


# ---------------------------------------------------------------------------------------
# integer requantization
# ---------------------------------------------------------------------------------------

def round_shift(v: np.ndarray, n: int) -> np.ndarray:
    """Divide by ``2**n`` rounding half up (toward +inf on ties), exactly.

    ``n > 0``: ``(v + 2**(n-1)) >> n`` (arithmetic shift); ``n == 0``: ``v``;
    ``n < 0``: ``v << -n``.

    >>> round_shift(np.array([-3, -2, -1, 1, 2, 3]), 1).tolist()
    [-1, -1, 0, 1, 1, 2]
    """
    return shift_half_up(_check_int_array(v, "v"), _check_shift(n))


def shift_half_up(v, n: int):
    """The arithmetic of :func:`round_shift` on any integer array type with ``+``, ``>>`` and
    ``<<`` (numpy, torch), unvalidated: ``(v + 2**(n-1)) >> n``, ``v << -n`` or ``v``."""
    if n > 0:
        return (v + (1 << (n - 1))) >> n
    if n < 0:
        return v << (-n)
    return v


def requantize(v: np.ndarray, multiplier: int, shift: int, zero_point: int,
               spec: QuantSpec) -> np.ndarray:
    """Integer-only rescale: ``clamp(round_shift(v * M, n) + z, qmin, qmax)``.

    Parameters
    ----------
    v : integer array, any shape
        Centred values (already minus their zero points) at the input scale.
    multiplier, shift : int
        ``(M, n)`` from :func:`derive_multiplier`; the rescale factor is ``M * 2**-n``.
    zero_point : int
        Output zero point.
    spec : QuantSpec
        Output code range.

    Returns
    -------
    np.ndarray of int32, same shape as ``v``

    Raises
    ------
    QuantError
        If ``|v * M|`` (or the left-shifted value) could leave int64's safe range.
    """
    v = _check_int_array(v, "v")
    m = _check_multiplier(multiplier)
    n = _check_shift(shift)
    z = spec.check_zero_point(zero_point)
    if v.size:
        vmax = int(np.abs(v).max())
        if not product_fits(vmax, m, n):
            raise invalid("v * multiplier", vmax * m, f"below 2**62 (multiplier={m}, shift={n})")
    out = round_shift(v * m, n) + z
    return np.clip(out, spec.qmin, spec.qmax).astype(np.int32)


def derive_multiplier(ratio: float, mult_bits: int = 16) -> tuple[int, int]:
    """Fixed-point ``(M, n)`` with ``M * 2**-n ~ ratio`` and ``M < 2**mult_bits``.

    ``M`` is normalised to ``[2**(mult_bits-1), 2**mult_bits - 1]`` whenever the shift
    range allows, so the relative error ``|M 2**-n - ratio| / ratio`` is at most
    ``2**-mult_bits`` (the bound ``tests/quant`` checks).  Ratios of ``2**mult_bits``
    or more give a negative shift (an exact left shift).  ``M`` is rounded half up.

    Raises
    ------
    QuantError
        For a non-positive or non-finite ratio, or ``mult_bits`` outside 1..31.
    """
    if isinstance(mult_bits, bool) or not isinstance(mult_bits, (int, np.integer)) \
            or not 1 <= int(mult_bits) <= MAX_MULT_BITS:
        raise invalid("mult_bits", mult_bits, f"an int in 1..{MAX_MULT_BITS}")
    mult_bits = int(mult_bits)
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise invalid("ratio", ratio, "a positive finite number") from None
    if not math.isfinite(r) or r <= 0:
        raise invalid("ratio", ratio, "a positive finite number")
    frac, exp = math.frexp(r)  # r = frac * 2**exp, frac in [0.5, 1)
    n = mult_bits - exp
    m = math.floor(math.ldexp(frac, mult_bits) + 0.5)
    if m == (1 << mult_bits):
        m >>= 1
        n -= 1
    if n > MAX_SHIFT:
        # ratio below 2**(mult_bits-1-MAX_SHIFT): keep the largest shift, lose precision
        m = math.floor(math.ldexp(r, MAX_SHIFT) + 0.5)
        n = MAX_SHIFT
        if m == 0:
            raise invalid("ratio", ratio, f"at least 2**-{MAX_SHIFT + 1} to be representable")
    if n < -MAX_SHIFT:
        raise invalid("ratio", ratio, "small enough to be representable")
    return int(m), int(n)


def multiplier_value(multiplier: int, shift: int) -> float:
    """The real factor ``M * 2**-n`` a ``(M, n)`` pair stands for."""
    return math.ldexp(float(multiplier), -int(shift))


def _finite_ratios(ratios) -> list[float]:
    """``ratios`` as floats, each refused unless it is a finite number."""
    out = []
    for r in ratios:
        try:
            rf = float(r)
        except (TypeError, ValueError):
            raise invalid("ratio", r, "a finite number") from None
        if not math.isfinite(rf):
            raise invalid("ratio", r, "a finite number")
        out.append(rf)
    return out


def derive_shared_multipliers(ratios: tuple[float, ...], mult_bits: int = 16
                              ) -> tuple[tuple[int, ...], int]:
    """Signed multipliers ``M_i`` with one common shift ``n`` for the terms of one sum.

    The largest ``|ratio|`` sets ``n`` (normalised as in :func:`derive_multiplier`); every
    ratio is then rounded half up at that shift, keeping its sign (so small ratios lose
    relative precision).  A ratio of exactly 0 gives ``M = 0``.
    """
    if not ratios:
        raise invalid("ratios", ratios, "non-empty")
    mags = [abs(r) for r in _finite_ratios(ratios)]
    if max(mags) == 0:
        raise invalid("ratios", tuple(ratios), "not all zero")
    _, n = derive_multiplier(max(mags), mult_bits)
    ms = []
    for r in ratios:
        m = int(math.floor(math.ldexp(abs(float(r)), n) + 0.5))
        ms.append(m if float(r) >= 0 else -m)
    return tuple(ms), n


#: widest add multiplier :func:`derive_add_multipliers` gives (``|M| <= 2**30 < 2**31``)
ADD_MULT_BITS = 30


def derive_add_multipliers(ratios: tuple[float, ...], mult_bits: int = 16,
                           max_mult_bits: int = ADD_MULT_BITS) -> tuple[tuple[int, ...], int]:
    """Signed multipliers ``M_i`` with one common shift ``n``, each ratio at full precision.

    Unlike :func:`derive_shared_multipliers`, where the largest ratio sets the shift and a
    small ratio (SMP's constraint coefficient ``c_k``) keeps only a few bits, the shift here
    is the largest that gives the *smallest* non-zero ratio ``mult_bits`` significant bits,
    limited so that no multiplier exceeds ``2**max_mult_bits``::

        n = min(mult_bits - e_min, max_mult_bits - e_max, 62),   |r| = f 2**e, f in [0.5, 1)

    Every ratio is rounded half up at that shift, keeping its sign; a ratio of exactly 0
    gives ``M = 0``.  Relative error of ratio ``i`` (docs/numerics.md, section 6)::

        |M_i 2**-n - r_i| / |r_i| <= 2**-min(mult_bits, max_mult_bits - (e_max - e_i))

    so every ratio within ``2**(max_mult_bits - mult_bits)`` of the largest keeps the
    ``2**-mult_bits`` bound of :func:`derive_multiplier`, and no ratio is ever less precise
    than with :func:`derive_shared_multipliers`.  The shift is never smaller than
    :func:`derive_shared_multipliers`'s.

    >>> derive_add_multipliers((1.0, 0.0002), 16)
    ((268435456, 53687), 28)
    >>> derive_shared_multipliers((1.0, 0.0002), 16)
    ((32768, 7), 15)
    """
    if not ratios:
        raise invalid("ratios", ratios, "non-empty")
    if isinstance(max_mult_bits, bool) or not isinstance(max_mult_bits, (int, np.integer)) \
            or not 1 <= int(max_mult_bits) <= MAX_MULT_BITS - 1:
        raise invalid("max_mult_bits", max_mult_bits, f"an int in 1..{MAX_MULT_BITS - 1}")
    if isinstance(mult_bits, bool) or not isinstance(mult_bits, (int, np.integer)) \
            or not 1 <= int(mult_bits) <= int(max_mult_bits):
        raise invalid("mult_bits", mult_bits, f"an int in 1..{int(max_mult_bits)}")
    rs = _finite_ratios(ratios)
    exps = [math.frexp(abs(r))[1] for r in rs if r != 0.0]
    if not exps:
        raise invalid("ratios", tuple(ratios), "not all zero")
    n = min(int(mult_bits) - min(exps), int(max_mult_bits) - max(exps), MAX_SHIFT)
    if n < -MAX_SHIFT:
        raise invalid("ratios", tuple(ratios), "small enough to be representable")
    ms = []
    for r in rs:
        m = int(math.floor(math.ldexp(abs(r), n) + 0.5))
        ms.append(m if r >= 0 else -m)
    return tuple(ms), int(n)


# ---------------------------------------------------------------------------------------
# accumulators
# ---------------------------------------------------------------------------------------

def signed_bits_for(max_abs: int) -> int:
    """Two's complement width that holds every value in ``[-max_abs, max_abs]``.

    >>> signed_bits_for(127), signed_bits_for(128)
    (8, 9)
    """
    if max_abs < 0:
        raise invalid("max_abs", max_abs, ">= 0")
    return int(max_abs).bit_length() + 1


def acc_bits_required(code_bits: int, mult_bits: int, max_degree: int) -> int:
    """Accumulator width that cannot overflow: ``code_bits + mult_bits + ceil(log2 D) + 1``.

    Holds a sum of ``D = max_degree`` products of a centred ``code_bits`` operand
    (``|x - z| <= 2**code_bits - 1``) and a centred ``mult_bits`` operand, with its sign bit.

    >>> acc_bits_required(2, 8, 168)
    19
    """
    for name, val in (("code_bits", code_bits), ("mult_bits", mult_bits)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise invalid(name, val, "a positive int")
    if isinstance(max_degree, bool) or not isinstance(max_degree, (int, np.integer)) or max_degree < 1:
        raise invalid("max_degree", max_degree, "a positive int")
    return int(code_bits) + int(mult_bits) + math.ceil(math.log2(int(max_degree))) + 1


def acc_range(acc_bits: int) -> tuple[int, int]:
    """``(lo, hi)`` of a two's complement accumulator of ``acc_bits`` bits."""
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, (int, np.integer)) or not 2 <= acc_bits <= 63:
        raise invalid("acc_bits", acc_bits, "an int in 2..63")
    return -(1 << (int(acc_bits) - 1)), (1 << (int(acc_bits) - 1)) - 1


# ---------------------------------------------------------------------------------------
# layer-level integer operations
# ---------------------------------------------------------------------------------------

def relu_codes(q: np.ndarray, zero_point: int) -> np.ndarray:
    """ReLU on codes: ``max(q, z)`` (the code of real zero)."""
    return np.maximum(_check_int_array(q, "q"), int(zero_point)).astype(np.int32)


#: the range of a bias code (int32)
BIAS_MIN, BIAS_MAX = -(1 << 31), (1 << 31) - 1


def quantize_bias(bias: np.ndarray, scale_x: float, scale_w: float) -> np.ndarray:
    """Bias as int32 at scale ``s_x * s_w``: ``clamp(rint(b / (s_x s_w)), -2**31, 2**31 - 1)``
    (float64, half to even, saturated to int32); done once at export.

    Saturation happens only when ``s_x s_w`` is tiny against the bias (a layer whose input
    or weights have collapsed to a very small range); the bias is then the nearest int32.
    """
    b = np.asarray(bias, dtype=np.float64)
    check_finite(b, "bias")
    s = float(check_scale(scale_x, "scale_x")) * float(check_scale(scale_w, "scale_w"))
    return np.clip(np.rint(b / s), BIAS_MIN, BIAS_MAX).astype(np.int32)


def linear_accumulate(x_q: np.ndarray, x_zero: int, w_q: np.ndarray, w_zero: int,
                      bias_q: np.ndarray | None = None) -> np.ndarray:
    """Integer GEMM ``(x - z_x) @ (w - z_w).T + b`` exactly in int64.

    Shapes: ``x_q`` (N, K), ``w_q`` (C, K), ``bias_q`` (C,); returns (N, C) int64.
    """
    x = _check_int_array(x_q, "x_q") - int(x_zero)
    w = _check_int_array(w_q, "w_q") - int(w_zero)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise invalid("shapes", (x.shape, w.shape), "(N, K) and (C, K)")
    acc = x @ w.T
    if bias_q is not None:
        acc = acc + _check_int_array(bias_q, "bias_q")[None, :]
    return acc


def add_requantize(a: np.ndarray, a_zero: int, a_mult: int, b: np.ndarray, b_zero: int,
                   b_mult: int, shift: int, zero_point: int, spec: QuantSpec) -> np.ndarray:
    """Integer ``y = clamp(round_shift((a-za)*Ma + (b-zb)*Mb, n) + z)``: a weighted sum (or
    difference: multipliers are signed) of two quantized tensors at one output scale, as in the
    APPNP / SMP combination steps.  ``(Ma, Mb), n`` come from :func:`derive_add_multipliers`
    (the trainer's export) or :func:`derive_shared_multipliers`.

    Shapes: ``a`` and ``b`` broadcast together; returns int32 of the broadcast shape.
    """
    out = add_shifted(_check_int_array(a, "a"), a_zero, a_mult, _check_int_array(b, "b"), b_zero,
                      b_mult, shift, zero_point, spec)
    return np.clip(out, spec.qmin, spec.qmax).astype(np.int32)


def add_shifted(a, a_zero: int, a_mult: int, b, b_zero: int, b_mult: int, shift: int,
                zero_point: int, spec: QuantSpec):
    """``round_shift((a-za)*Ma + (b-zb)*Mb, n) + z`` before the clamp, on int64 arrays of any
    type with ``+``, ``*`` and shifts (numpy, torch): the shared arithmetic of
    :func:`add_requantize` and :func:`quant.torch_ops.add_requantize`, which check ``a`` and
    ``b`` and clamp in their own array type.  The multipliers, shift and zero point are
    checked here."""
    ma = _check_multiplier(a_mult, "a_mult", signed=True)
    mb = _check_multiplier(b_mult, "b_mult", signed=True)
    n = _check_shift(shift)
    z = spec.check_zero_point(zero_point)
    return shift_half_up((a - int(a_zero)) * ma + (b - int(b_zero)) * mb, n) + z
