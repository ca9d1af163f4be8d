"""Torch fake-quant modules for quantization-aware training, exact against the reference.

Every module quantizes one tensor (per tensor, one ``(scale, zero_point)``) and exposes

* ``forward(x)``: fake quantization ``x_hat = (q - z) * s`` in float32, differentiable;
* ``qparams() -> (scale: np.float32, zero_point: int, spec: QuantSpec)``, valid after one
  call; computed by :func:`quant.reference.qparams_from_range` from the module's range;
* ``to_int(x) -> torch.int32`` codes, equal to
  ``quant.reference.quantize(x.numpy(), *qparams())`` (for BT / BT*: equal to
  ``quant.truncation.quantize_bt(x.numpy(), scale, zero_point, skew)``), and the codes that
  ``forward`` dequantizes, so ``forward(x) == dequantize(to_int(x), scale, zero_point)``
  exactly once the range is fixed (eval mode);
* ``enabled``: ``False`` when ``bits`` is ``None`` or 32 (FP32 passthrough).

Variants
--------
:class:`QLRQuantizer`
    The paper's quantizer with learnable ranges: asymmetric unsigned codes on
    ``[min(0, a*min x), max(0, a*max x)]`` with a learnable range multiplier ``a`` (alpha),
    initialised by grid search at the first call.  ``bt_mode="BT"`` / ``"BT*"`` give the
    paper's INT2 bitwise truncation (8-bit grid, four levels).  ``paper_code=True``
    reproduces the published code's backward pass (labelled compatibility mode).
:class:`SymmetricQuantizer`
    Signed symmetric codes (zero point 0), learnable alpha, hardware friendly.
:class:`MinMaxObserverQuantizer`
    Asymmetric or symmetric codes from an exponential moving average of min / max; no
    learnable parameter.

Range tracking (all variants): in training mode the min / max of the current tensor
(detached) or, with ``momentum=m``, their moving average ``r <- (1 - m) r + m r_now``; in
eval mode the values stored at the last training forward.  A module that has never run in
training mode takes the range of its first input.

All state (alpha, range, skewness, counters) lives in parameters and buffers, so it is in
``state_dict`` and moves with ``.to(device)``.  See ``docs/numerics.md``.
"""

from __future__ import annotations

import logging
import math
import threading
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from quant import torch_ops
from quant.errors import QuantError, invalid
from quant.reference import qparams_from_range
from quant.spec import MAX_BITS, MIN_BITS, QuantSpec, Rounding
from quant.truncation import BT_SPEC, BT_STEP, check_skew, rounded_skew

__all__ = ["BT_MODES", "FakeQuantizer", "MinMaxObserverQuantizer", "QLRQuantizer",
           "SymmetricQuantizer", "alpha_grid", "make_quantizer"]

log = logging.getLogger(__name__)

#: Bitwise-truncation modes of :class:`QLRQuantizer` (``"BT*"`` is the code's ``"SBT"``).
BT_MODES = (None, "BT", "BT*")
_EPS32 = float(np.finfo(np.float32).eps)


def alpha_grid(bits: int) -> np.ndarray:
    """Candidate alphas of the initial grid search (float32, ascending).

    ``bits <= 2``: 0.1, 0.2, ..., 1.0; otherwise 0.02, 0.04, ..., 1.0 (the paper's INT2 and
    INT4 / INT8 grids; other widths use the nearest of the two).  Candidate ``k`` is
    ``float32(k * step)`` with ``k * step`` evaluated in float64, as the published code does.

    >>> [round(float(a), 6) for a in alpha_grid(2)[:3]]
    [0.1, 0.2, 0.3]
    >>> len(alpha_grid(2)), len(alpha_grid(4)), len(alpha_grid(8))
    (10, 50, 50)
    """
    count, step = (10, 0.1) if bits <= 2 else (50, 0.02)
    return np.array([(k + 1) * step for k in range(count)], dtype=np.float32)


def _check_bits(bits: int | None) -> int | None:
    """``None`` / 32 mean FP32 passthrough; otherwise an int in 1..8."""
    if bits is None:
        return None
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise invalid("bits", bits, f"an int in {MIN_BITS}..{MAX_BITS}, 32 or None")
    if int(bits) == 32:
        return None
    if not MIN_BITS <= int(bits) <= MAX_BITS:
        raise invalid("bits", int(bits), f"in {MIN_BITS}..{MAX_BITS}, 32 or None")
    return int(bits)


def _check_momentum(momentum: float | None) -> float | None:
    if momentum is None:
        return None
    m = float(momentum)
    if not 0.0 < m <= 1.0:
        raise invalid("momentum", momentum, "in (0, 1] or None")
    return m


class _TruncateSTE(torch.autograd.Function):
    """BT / BT* truncation of float32 8-bit codes; straight-through gradient."""

    @staticmethod
    def forward(ctx, q8: torch.Tensor, skew: int) -> torch.Tensor:  # noqa: D102
        return _truncate_float(q8, skew)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: D102
        return g, None


class _LearnedStepFake(torch.autograd.Function):
    """LSQ-style fake quantization ``(q - z) s`` with ``q = T(round(clamp(x / s + z)))`` as one
    autograd node (``T``: the quantizer's truncation, identity outside BT modes).

    Values and gradients are those of the composite ``(T(R(clamp(x / s + z))) - z) * s``
    with straight-through ``R`` and ``T``, bit for bit: the backward runs autograd's own
    formulas for each op of it in the same order (``mul``: ``g s`` and ``sum(g (q - z))``;
    ``clamp``: the gradient where ``qmin <= x / s + z <= qmax``, else 0; ``div``:
    ``g_v / s`` and ``sum(-g_v ((x / s) / s))``), and the two terms of the gradient of
    ``s`` are added as autograd adds them.  It keeps ``x`` and the codes (8-bit; every
    spec has at most 8 bits) for the backward instead of three float tensors, and is one
    graph node instead of seven.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, s: torch.Tensor, z: int, spec: QuantSpec,
                truncate, skew: int | None = None) -> torch.Tensor:  # noqa: D102
        code_dtype = torch.uint8 if spec.qmin >= 0 else torch.int8
        ctx.z, ctx.spec = z, spec
        if _fused_ok(x, s) and (skew is None or (spec.qmin >= 0 and spec.qmax <= 255)):
            out, codes = _fused_forward(x, s, z, spec, skew, code_dtype)
            ctx.save_for_backward(x, s, codes)
            return out
        zt = torch.tensor(float(z), dtype=torch.float32)
        q = truncate(torch_ops.round_float(torch.clamp(x / s + zt, spec.qmin, spec.qmax),
                                           spec.rounding))
        ctx.save_for_backward(x, s, q.to(code_dtype))
        return (q - zt) * s

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: D102
        x, s, codes = ctx.saved_tensors
        need_x, need_s = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gx = gs = None
        if (need_x or need_s) and _fused_ok(x, s) and g.dtype == torch.float32 \
                and g.shape == x.shape and g.is_contiguous() and g.device.type == "cpu":
            gx, t1, t2 = _fused_backward(x, g, codes, s, ctx.z, ctx.spec, need_x)
            if need_s:
                gs = t1.sum() + t2.sum()
            return gx, gs, None, None, None, None
        if need_x or need_s:
            zt = torch.tensor(float(ctx.z), dtype=torch.float32)
            xs = x / s
            v = xs + zt
            keep = (v >= ctx.spec.qmin).logical_and_(v <= ctx.spec.qmax)
            gv = torch.where(keep, g * s, torch.zeros((), dtype=g.dtype))
            if need_x:
                gx = gv / s
            if need_s:
                gs = (g * (codes.to(torch.float32) - zt)).sum() + (-gv * (xs / s)).sum()
        return gx, gs, None, None, None, None


class _RangeScale(torch.autograd.Function):
    """The scale of an unsigned quantizer's range as one autograd node.

    ``s = clamp((clamp(a hi, min=0) - clamp(a lo, max=0)) / (levels - 1), min=eps)`` for the
    stored range ``[lo, hi]`` (constants) and the range multiplier ``a`` (a 0-d parameter):
    the value and the gradient of ``a`` are those of the seven tensor ops
    (:meth:`FakeQuantizer._scaled_range_t`, :meth:`FakeQuantizer._scale_zero_t`) bit for
    bit, and with BT's exact zero (:meth:`QLRQuantizer._adjust_range`) those of the ops
    of the adjusted range too.  The forward computes them on float32 scalars (each step one IEEE float32
    operation, as the ops on 0-d float32 tensors are); the backward applies autograd's
    formula of each op in reverse: ``clamp`` passes the gradient where its input is within
    the bound (else ``+0``), ``div`` divides it by ``levels - 1``, ``sub`` negates the
    lower branch, ``mul`` multiplies by ``lo`` / ``hi``, and the two branches are added
    (a two-term sum: its order does not matter).  A 0-d op costs several microseconds of
    dispatch and autograd bookkeeping forward and backward; a quantizer runs this on every
    training call.
    """

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, terms: tuple) -> torch.Tensor:  # noqa: D102
        s, ctx.terms = terms[0], terms[1:]
        return _scalar(s)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: D102
        v, levels_m1, lo_s, hi_s, mn, mx, shape, adj = ctx.terms
        zero = np.float32(0.0)
        gv = np.float32(g.item()) if v >= _EPS32_NP else zero    # clamp(min=eps)
        gd = gv / levels_m1                                       # / (levels - 1)
        g_hi = gd if hi_s >= zero else zero                       # clamp(hi_s, min=0)
        g_lo = -gd if lo_s <= zero else zero                      # -(...), clamp(lo_s, max=0)
        if adj is not None:           # BT's exact zero: lo_s = -z8 s8, hi_s = (255 - z8) s8
            lo_s0, hi_s0, neg_z8, top, c255 = adj
            gd = (g_lo * neg_z8 + g_hi * top) / c255              # s8 = (hi - lo) / 255
            g_hi = gd if hi_s0 >= zero else zero
            g_lo = -gd if lo_s0 <= zero else zero
        ga = g_lo * mn + g_hi * mx                                # a min, a max
        return _scalar(ga).reshape(shape), None


_EPS32_NP = np.float32(_EPS32)


def _scalar(v) -> torch.Tensor:
    """A 0-d float32 tensor of the float32 value ``v`` (exact: float32 -> double -> float32)."""
    return torch.scalar_tensor(float(v), dtype=torch.float32)


#: the kernels' rounding code of each spec rounding (:mod:`quant.fake_quant_kernels`)
_ROUNDING_CODES = {Rounding.HALF_EVEN: 0, Rounding.HALF_UP: 1, Rounding.FLOOR: 2}


#: run :class:`_LearnedStepFake` on the one-pass kernels where they apply (tests turn it off
#: to compare with the tensor ops)
USE_KERNELS = True


def _fused_ok(x: torch.Tensor, s: torch.Tensor) -> bool:
    """Whether :class:`_LearnedStepFake` runs on the one-pass kernels: a contiguous float32
    CPU tensor ``x`` with elements and a float32 scale on the CPU."""
    return (USE_KERNELS and x.device.type == "cpu" and x.dtype == torch.float32
            and x.is_contiguous() and x.numel() > 0 and s.dtype == torch.float32
            and s.device.type == "cpu" and s.numel() == 1)


def _scalars(s: torch.Tensor, z: int, spec: QuantSpec) -> tuple:
    return (np.float32(s.detach().reshape(()).item()), np.float32(z), np.float32(spec.qmin),
            np.float32(spec.qmax))


def _fused_forward(x: torch.Tensor, s: torch.Tensor, z: int, spec: QuantSpec,
                   skew: int | None, code_dtype: torch.dtype
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward of :class:`_LearnedStepFake` in one pass
    (:func:`quant.fake_quant_kernels.fake_forward`): ``(x_hat, codes)``, shaped as ``x``."""
    from quant.fake_quant_kernels import fake_forward

    out = torch.empty_like(x)
    codes = torch.empty(x.shape, dtype=code_dtype)
    fake_forward(x.detach().reshape(-1).numpy(), *_scalars(s, z, spec),
                 _ROUNDING_CODES[Rounding.parse(spec.rounding)], skew is not None,
                 0 if skew is None else int(skew),
                 out.reshape(-1).numpy(), codes.reshape(-1).numpy())
    return out, codes


_local = threading.local()
#: scratch buffers kept per thread (a model's quantizers see a handful of shapes)
_SCRATCH_KEPT = 16


def _scratch(like: torch.Tensor, slot: int) -> torch.Tensor:
    """A float32 CPU tensor shaped as ``like``, reused by this thread for ``slot`` (contents
    undefined): the backward's two terms, summed and dropped before the next backward node
    runs, need no fresh allocation each call.  One buffer per (slot, shape) is kept, the
    :data:`_SCRATCH_KEPT` most recently made."""
    pool = getattr(_local, "scratch", None)
    if pool is None:
        pool = _local.scratch = {}
    key = (slot, tuple(like.shape))
    buf = pool.get(key)
    if buf is None:
        while len(pool) >= _SCRATCH_KEPT:
            pool.pop(next(iter(pool)))
        buf = pool[key] = torch.empty(like.shape, dtype=torch.float32)
    return buf


def _fused_backward(x: torch.Tensor, g: torch.Tensor, codes: torch.Tensor, s: torch.Tensor,
                    z: int, spec: QuantSpec, need_x: bool
                    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """The element-wise part of :class:`_LearnedStepFake`'s backward in one pass
    (:func:`quant.fake_quant_kernels.fake_backward`): ``(gx or None, t1, t2)``, each shaped
    and laid out as the composite's tensors (contiguous, ``x``'s shape)."""
    from quant.fake_quant_kernels import fake_backward

    t1, t2 = _scratch(x, 0), _scratch(x, 1)
    gx = torch.empty_like(x) if need_x else None
    fake_backward(x.detach().reshape(-1).numpy(), g.detach().reshape(-1).numpy(),
                  codes.reshape(-1).numpy(), *_scalars(s, z, spec), need_x,
                  (gx if need_x else t1).reshape(-1).numpy(), t1.reshape(-1).numpy(),
                  t2.reshape(-1).numpy())
    return gx, t1, t2



def _truncate_formula(q8: torch.Tensor, skew: int) -> torch.Tensor:
    """``clamp(85 * round((q8 + skew) / 85), 0, 255)`` exactly, for integral float32 ``q8``."""
    t = q8.to(torch.int64) + int(skew) + BT_STEP // 2
    t = torch.div(t, BT_STEP, rounding_mode="floor") * BT_STEP
    return torch.clamp(t, 0, 255).to(torch.float32)


@lru_cache(maxsize=None)
def _truncation_table(skew: int) -> torch.Tensor:
    """(256,) float32: :func:`_truncate_formula` of every 8-bit code."""
    return _truncate_formula(torch.arange(256, dtype=torch.float32), skew)


def _truncate_float(q8: torch.Tensor, skew: int) -> torch.Tensor:
    """:func:`_truncate_formula` of 8-bit codes (integral float32 ``q8`` in ``[0, 255]``, as
    every caller's clamped and rounded codes are), looked up in its table of the 256 codes:
    one gather instead of five passes.  A code outside ``[0, 255]`` raises ``IndexError``."""
    table = _truncation_table(int(skew)).to(q8.device)
    return table.index_select(0, q8.reshape(-1).to(torch.int64)).reshape(q8.shape)


class FakeQuantizer(nn.Module):
    """Shared machinery: range tracking, qparams, ``to_int``; subclasses define the range.

    Parameters
    ----------
    bits : int or None
        Code width 1..8; ``None`` or 32 disables quantization (passthrough).
    signed, narrow_range, rounding
        The :class:`~quant.spec.QuantSpec` of the codes.
    momentum : float or None
        ``None``: range of the current tensor; else EMA weight of the new min / max.
    """

    def __init__(self, bits: int | None, *, signed: bool = False, narrow_range: bool = False,
                 rounding: Rounding | str = Rounding.HALF_EVEN,
                 momentum: float | None = None) -> None:
        super().__init__()
        self.bits = _check_bits(bits)
        self.spec: QuantSpec | None = (
            QuantSpec(self.bits, signed=signed, narrow_range=narrow_range, rounding=rounding)
            if self.bits is not None else None)
        if self.spec is not None and self.spec.signed and self.spec.qmax < 1:
            raise invalid("bits", self.bits, ">= 2 for signed symmetric codes")
        self.momentum = _check_momentum(momentum)
        self.enabled = self.bits is not None
        self.register_buffer("min_val", torch.zeros((), dtype=torch.float32))
        self.register_buffer("max_val", torch.zeros((), dtype=torch.float32))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    # -- the spec the codes use -----------------------------------------------------------
    @property
    def code_spec(self) -> QuantSpec:
        """Spec of the codes ``to_int`` returns (8-bit for BT modes)."""
        if self.spec is None:
            raise invalid("bits", self.bits, "set (quantizer is disabled)")
        return self.spec

    # -- hooks ----------------------------------------------------------------------------
    def _alpha(self) -> torch.Tensor | None:
        return None

    def _alpha_value(self) -> float | None:
        """alpha as a Python float (``None`` without one): :meth:`qparams`' cache key, read
        without the autograd view :meth:`_alpha` makes."""
        return None

    def _on_first_call(self, x: torch.Tensor) -> None:
        """Called once with the first input (before its range is recorded)."""

    def _on_training_call(self, x: torch.Tensor) -> None:
        """Called on every training forward after the first."""

    def _truncate(self, q: torch.Tensor) -> torch.Tensor:
        return q

    def _truncation_skew(self) -> int | None:
        """The skew of BT's truncation when :meth:`_truncate` is one (8-bit codes to four
        levels, :func:`_truncate_formula`), ``None`` when it is the identity."""
        return None

    # -- range ----------------------------------------------------------------------------
    def _update_range(self, x: torch.Tensor, ends: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> None:
        """Record the range of ``x`` (``ends``: its minimum and maximum, when known)."""
        mn, mx = ends if ends is not None else (x.detach().min(), x.detach().max())
        mn, mx = mn.to(torch.float32), mx.to(torch.float32)
        if self.momentum is None or not bool(self.initialized):
            self.min_val.copy_(mn)
            self.max_val.copy_(mx)
        else:
            m = torch.tensor(self.momentum, dtype=torch.float32)
            self.min_val.copy_((1 - m) * self.min_val + m * mn)
            self.max_val.copy_((1 - m) * self.max_val + m * mx)

    def scaled_range(self) -> tuple[np.float32, np.float32]:
        """``(alpha * min, alpha * max)`` in float32 (``alpha = 1`` without one), after the
        subclass's range adjustment (:meth:`_adjust_range`; BT's exact zero)."""
        self._check_ready()
        lo, hi = self._scaled_range_t()
        return np.float32(lo.detach().cpu()), np.float32(hi.detach().cpu())

    def _scaled_range_t(self) -> tuple[torch.Tensor, torch.Tensor]:
        mn, mx = self.min_val.to(torch.float32), self.max_val.to(torch.float32)
        a = self._alpha()
        if a is None:
            return self._adjust_range(mn, mx)
        a = a.to(torch.float32)
        return self._adjust_range(a * mn, a * mx)

    def _adjust_range(self, lo_s: torch.Tensor, hi_s: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hook: the range the codes are computed from, given the scaled range (identity)."""
        return lo_s, hi_s

    def _scale_zero_t(self, lo_s: torch.Tensor, hi_s: torch.Tensor, spec: QuantSpec
                      ) -> tuple[torch.Tensor, int]:
        """Differentiable twin of :func:`quant.reference.qparams_from_range` (float32)."""
        lo = torch.clamp(lo_s, max=0.0)
        hi = torch.clamp(hi_s, min=0.0)
        if spec.signed:
            amax = torch.maximum(-lo, hi)
            if float(amax.detach()) == 0.0:
                return torch.ones((), dtype=torch.float32, device=lo.device), 0
            return torch.clamp(amax / torch.tensor(float(spec.qmax)), min=_EPS32), 0
        if float(hi.detach()) == float(lo.detach()):
            return torch.ones((), dtype=torch.float32, device=lo.device), 0
        s = torch.clamp((hi - lo) / torch.tensor(float(spec.levels - 1)), min=_EPS32)
        z = torch_ops.round_float((-lo / s).detach(), spec.rounding)
        z = int(min(max(float(z), spec.qmin), spec.qmax))
        return s, z

    def scale_zero(self) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        """``(s, z, lo_s, hi_s)`` of the stored range and alpha: the scale (0-d float32,
        differentiable in alpha), the zero point and the scaled range
        (:meth:`_scaled_range_t`, :meth:`_scale_zero_t`).

        An unsigned spec with a finite float32 range and alpha on the CPU takes the scalar
        path: the scaled range (:meth:`_adjust_scalar` included), ``s`` and ``z`` by
        :func:`quant.reference.qparams_from_range` (which :meth:`qparams` then returns
        without recomputing them), and one :class:`_RangeScale` node for the gradient (the
        same values and gradient as the tensor ops); everything else the tensor ops.
        """
        a = self._alpha()
        fast = self._scalar_range(a)
        if fast is not None:
            key, mn, mx, lo_s, hi_s = fast
            lo_s, hi_s, adj = self._adjust_scalar(lo_s, hi_s)
        if fast is None or not (math.isfinite(lo_s) and math.isfinite(hi_s)):
            lo_s, hi_s = self._scaled_range_t()
            s, z = self._scale_zero_t(lo_s, hi_s, self.code_spec)
            return s, z, lo_s, hi_s
        spec = self.code_spec
        sv, z = qparams_from_range(lo_s, hi_s, spec)
        self._keep_qparams(key, (sv, z, spec))
        lo_t, hi_t = _scalar(lo_s), _scalar(hi_s)
        zero = np.float32(0.0)
        lo, hi = np.minimum(lo_s, zero), np.maximum(hi_s, zero)
        if float(hi) == float(lo):                # a degenerate range: s = 1, no gradient
            return torch.ones((), dtype=torch.float32), z, lo_t, hi_t
        if a is None or not torch.is_grad_enabled() or not a.requires_grad:
            return _scalar(sv), z, lo_t, hi_t
        levels_m1 = np.float32(spec.levels - 1)
        v = (hi - lo) / levels_m1                 # before the eps clamp: the backward's mask
        s = _RangeScale.apply(a, (sv, v, levels_m1, lo_s, hi_s, mn, mx, a.shape, adj))
        return s, z, lo_t, hi_t

    def _scalar_range(self, a: torch.Tensor | None) -> tuple | None:
        """``(qparams key, min, max, a min, a max)`` as float32 scalars (one float32 product
        each, as the tensor ops; the range before :meth:`_adjust_scalar`) when the spec is
        unsigned and the range and alpha are float32 on the CPU, else ``None``."""
        if (self.code_spec.signed
                or self.min_val.device.type != "cpu" or self.min_val.dtype != torch.float32
                or self.max_val.dtype != torch.float32
                or (a is not None and (a.device.type != "cpu" or a.dtype != torch.float32))):
            return None
        mn, mx = np.float32(self.min_val.item()), np.float32(self.max_val.item())
        if a is None:
            key, lo_s, hi_s = (float(mn), float(mx), None), mn, mx
        else:
            av = np.float32(a.item())
            key, lo_s, hi_s = (float(mn), float(mx), float(av)), av * mn, av * mx
        return key, mn, mx, lo_s, hi_s

    def _keep_qparams(self, key: tuple, result: tuple) -> None:
        """Keep ``result`` as :meth:`qparams` of the stored values ``key`` (a plain instance
        attribute, set past ``Module.__setattr__``'s checks)."""
        self.__dict__["_qparams_cache"] = (key, result)

    def _adjust_scalar(self, lo_s: np.float32, hi_s: np.float32) -> tuple:
        """:meth:`_adjust_range` on float32 scalars: ``(lo, hi, adj)`` (here the identity,
        ``adj = None``)."""
        return lo_s, hi_s, None

    def _check_ready(self) -> None:
        if not self.enabled:
            raise invalid("enabled", self.enabled, "True for qparams()/to_int() (bits="
                          f"{self.bits})")
        if not bool(self.initialized):
            raise invalid("initialized", False, "True: call forward(x) at least once first")

    # -- public API -----------------------------------------------------------------------
    def qparams(self) -> tuple[np.float32, int, QuantSpec]:
        """``(scale, zero_point, spec)`` of the codes, from the stored range and alpha.

        A pure function of the stored minimum, maximum and alpha (the rest of the
        quantizer's configuration is fixed at construction), so the last result is kept
        with those three values and returned while they are unchanged.
        """
        self._check_ready()
        key = (self.min_val.item(), self.max_val.item(), self._alpha_value())
        cached = getattr(self, "_qparams_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        fast = self._scalar_range(self._alpha())
        if fast is None:
            lo, hi = self.scaled_range()
        else:
            lo, hi, _ = self._adjust_scalar(fast[3], fast[4])
        s, z = qparams_from_range(lo, hi, self.code_spec)
        result = (np.float32(s), int(z), self.code_spec)
        self._keep_qparams(key, result)
        return result

    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes of ``x`` (int32, same shape) with the current :meth:`qparams`."""
        s, z, spec = self.qparams()
        return self._truncate_int(torch_ops.quantize(x, s, z, spec))

    def _truncate_int(self, q: torch.Tensor) -> torch.Tensor:
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fake quantization ``(q - z) * s`` (float32, same shape as ``x``)."""
        if not self.enabled:
            return x
        first = not bool(self.initialized)
        ends = None
        if (first or self.training) and x.numel():
            # one scan for the range and the finiteness check: NaN and infinities reach the
            # minimum or the maximum (the whole tensor is scanned, for the error, only then)
            ends = torch.aminmax(x.detach())
            if not (math.isfinite(ends[0].item()) and math.isfinite(ends[1].item())):
                torch_ops.check_finite(x.detach())
        else:
            torch_ops.check_finite(x.detach())
        if first:
            self._update_range(x, ends)
            self._on_first_call(x.detach().to(torch.float32))
            self.initialized.fill_(True)
        if self.training:
            self.calls.add_(1)            # in place: no Module.__setattr__
            if not first:
                self._on_training_call(x.detach().to(torch.float32))
                self._update_range(x, ends)
        s, z, lo_s, hi_s = self.scale_zero()
        return self._fake(x.to(torch.float32), s, z, lo_s, hi_s)

    def _fake(self, x: torch.Tensor, s: torch.Tensor, z: int, lo_s: torch.Tensor,
              hi_s: torch.Tensor) -> torch.Tensor:
        """LSQ-style fake quantization ``(round(clamp(x / s + z)) - z) * s``.

        The clamp comes before the rounding (same values as clamp after rounding, since the
        bounds are integers) so that its gradient mask is the real clip range: inputs with
        ``x / s + z`` outside ``[qmin, qmax]`` get no input gradient, and there
        ``d x_hat / d s = q - z`` (the clip level); inside, with a straight-through rounding,
        ``d x_hat / d s = q - z - x / s``.  ``z`` is treated as a constant.
        """
        return _LearnedStepFake.apply(x, s, z, self.code_spec, self._truncate,
                                      self._truncation_skew())

    def extra_repr(self) -> str:
        if not self.enabled:
            return f"bits={self.bits}, enabled=False"
        sp = self.code_spec
        return (f"bits={self.bits}, signed={sp.signed}, narrow_range={sp.narrow_range}, "
                f"rounding={sp.rounding.value}, momentum={self.momentum}")


class _LearnableRange(FakeQuantizer):
    """A fake quantizer with a learnable range multiplier alpha (grid-search initialised)."""

    def __init__(self, bits: int | None, *, alpha: nn.Parameter | None = None,
                 reinit_every: int | None = None, **kw) -> None:
        super().__init__(bits, **kw)
        if alpha is None:
            alpha = nn.Parameter(torch.ones((), dtype=torch.float32))
        elif not isinstance(alpha, nn.Parameter) or alpha.numel() != 1:
            raise invalid("alpha", type(alpha).__name__, "an nn.Parameter with one element")
        self.alpha = alpha
        if reinit_every is not None and (isinstance(reinit_every, bool)
                                         or not isinstance(reinit_every, int) or reinit_every < 1):
            raise invalid("reinit_every", reinit_every, "a positive int or None")
        self.reinit_every = reinit_every

    def _alpha(self) -> torch.Tensor:
        return self.alpha.reshape(())

    def _alpha_value(self) -> float:
        return self.alpha.item()

    def _grid_bits(self) -> int:
        return self.bits

    def _fake_error(self, x: torch.Tensor, a: float) -> float:
        """Mean |x_hat - x| of ``x`` quantized with range multiplier ``a`` (no grad)."""
        a32 = torch.tensor(a, dtype=torch.float32)
        lo_s, hi_s = self._adjust_range(a32 * x.min(), a32 * x.max())
        s, z = self._scale_zero_t(lo_s, hi_s, self.code_spec)
        q = self._truncate(torch_ops.scaled_codes_float(x, s, z, self.code_spec))
        x_hat = (q - torch.tensor(float(z), dtype=torch.float32)) * s
        return float(torch.mean(torch.abs(x_hat - x)))

    def _extra_init_rule(self, best: float) -> float:
        return best + 0.1 if best < 0.1 else best

    def init_alpha(self, x: torch.Tensor) -> float:
        """Grid-search alpha on ``x`` (minimum mean |x_hat - x|, first minimum on ties).

        Then ``+0.1`` if the best is below 0.1 (below 0.5 in BT* mode).  Sets and returns
        alpha (float32 value as a Python float).
        """
        x = x.detach().to(torch.float32)
        best, best_err = 1.0, float("inf")
        with torch.no_grad():
            for a in alpha_grid(self._grid_bits()):
                err = self._fake_error(x, float(a))
                if err < best_err:
                    best, best_err = float(a), err
            best = float(np.float32(self._extra_init_rule(best)))
            self.alpha.data.fill_(best)
        log.debug("alpha initialised to %s (mean |err| %.4g)", best, best_err)
        return best

    def _on_first_call(self, x: torch.Tensor) -> None:
        self.init_alpha(x)

    def _on_training_call(self, x: torch.Tensor) -> None:
        if self.reinit_every is not None and (int(self.calls) - 1) % self.reinit_every == 0:
            self.init_alpha(x)


class QLRQuantizer(_LearnableRange):
    """The paper's QLR quantizer: asymmetric unsigned, per tensor, learnable range alpha.

    Range ``[min(0, a * min x), max(0, a * max x)]``, ``s = (hi - lo) / (2**b - 1)``,
    ``z = clamp(round(-lo / s))``, ``q = clamp(round(x / s + z), 0, 2**b - 1)``.

    Parameters
    ----------
    bits : int or None
        1..8; ``None`` / 32: passthrough.  BT modes need ``bits=2``.
    bt_mode : {None, "BT", "BT*"}
        INT2 bitwise truncation: codes on the 8-bit grid limited to {0, 85, 170, 255};
        ``"BT*"`` shifts the thresholds by the rounded skewness of the first input.
    bt_zero : bool
        BT modes only: put zero on the four-level grid.  The range ``[lo, hi]`` (after
        ``min(0, .)`` / ``max(0, .)``) is shifted, width kept, so that the 8-bit zero point
        is a multiple of 85: ``s8 = (hi - lo) / 255``, ``k = round(-lo / (85 s8))`` in 0..3,
        range ``[-85 k s8, (255 - 85 k) s8]``, hence ``z8 = 85 k`` and an exact 0 maps to the
        BT code ``85 k`` (to itself in BT* too, as ``|skew| < 43``).  This is the usual
        zero-point rounding of an asymmetric quantizer done at the resolution of the codes BT
        keeps (85 steps of the 8-bit grid) instead of one step.  Without it (the published
        code) ``z8`` is ``round(-lo / s8)``, fixed by the ratio ``min / max`` whatever alpha,
        and 0 dequantizes to ``(85 round(z8 / 85) - z8) s8``: up to half a level off.
        The codes are still ``85 round((q8 + skew) / 85)`` of the 8-bit codes of this range.
    paper_code : bool
        Compatibility mode reproducing the published code's backward pass: gradients are
        computed on the dequantized output instead of the input, so the alpha gradient is
        near zero and the input STE is (almost) unmasked.  The forward pass is the same.
    momentum : float or None
        EMA of min / max (``None``: the paper's current-tensor range).
    alpha : nn.Parameter, optional
        An alpha shared with other quantizers (the published code's shared alpha); every
        quantizer still re-initialises it at its own first call, as that code does.
    reinit_every : int, optional
        Re-run the alpha grid search every ``reinit_every`` training calls (the published
        code does this with 100 on CiteSeer).
    rounding, narrow_range
        Spec of the codes (default: half-even, full range).
    """

    def __init__(self, bits: int | None, *, bt_mode: str | None = None,
                 bt_zero: bool = False,
                 paper_code: bool = False, momentum: float | None = None,
                 alpha: nn.Parameter | None = None, reinit_every: int | None = None,
                 rounding: Rounding | str = Rounding.HALF_EVEN,
                 narrow_range: bool = False) -> None:
        if bt_mode not in BT_MODES:
            raise invalid("bt_mode", bt_mode, f"one of {list(BT_MODES)}")
        super().__init__(bits, alpha=alpha, reinit_every=reinit_every, signed=False,
                         narrow_range=narrow_range, rounding=rounding, momentum=momentum)
        if bt_mode is not None and self.bits is not None and self.bits != 2:
            raise invalid("bits", self.bits, f"2 when bt_mode={bt_mode!r}")
        if bt_mode is not None and (narrow_range or Rounding.parse(rounding) != Rounding.HALF_EVEN):
            raise invalid("bt_mode", bt_mode, "used with the default 8-bit spec only")
        if not isinstance(bt_zero, (bool, np.bool_)):
            raise invalid("bt_zero", bt_zero, "a bool")
        self.bt_mode = bt_mode
        self.bt_zero = bool(bt_zero)
        self.paper_code = bool(paper_code)
        self.register_buffer("skew", torch.zeros((), dtype=torch.int64))

    @property
    def code_spec(self) -> QuantSpec:
        if self.enabled and self.bt_mode is not None:
            return BT_SPEC
        return super().code_spec

    @property
    def storage_spec(self) -> QuantSpec:
        """Spec of the stored codes: 2-bit for BT modes (``c = q // 85``), else ``code_spec``."""
        return QuantSpec(2) if self.bt_mode is not None else self.code_spec

    def _skew(self) -> int:
        return int(self.skew) if self.bt_mode == "BT*" else 0

    def _range_adjusted(self) -> bool:
        return self.bt_mode is not None and getattr(self, "bt_zero", False) and self.enabled

    def _adjust_scalar(self, lo_s: np.float32, hi_s: np.float32) -> tuple:
        """:meth:`_adjust_range` in float32 scalar arithmetic, one IEEE operation per tensor
        op: ``(lo, hi, adj)``, ``adj = (lo_s, hi_s, -z8, 255 - z8, 255)`` for the scale
        node's backward (``None`` when the range is not adjusted or is degenerate)."""
        if not self._range_adjusted():
            return lo_s, hi_s, None
        zero = np.float32(0.0)
        lo, hi = np.minimum(lo_s, zero), np.maximum(hi_s, zero)
        if float(hi) == float(lo):
            return lo, hi, None
        c255 = np.float32(255.0)
        s8 = (hi - lo) / c255
        k = float(np.rint(-lo / (s8 * np.float32(BT_STEP))))
        z8 = np.float32(BT_STEP * min(max(k, 0.0), 3.0))
        neg_z8, top = -z8, c255 - z8
        return neg_z8 * s8, top * s8, (lo_s, hi_s, neg_z8, top, c255)

    def _adjust_range(self, lo_s: torch.Tensor, hi_s: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """With ``bt_zero`` (BT modes): the range shifted so that ``z8`` is ``85 k``."""
        if not self._range_adjusted():
            return lo_s, hi_s
        lo = torch.clamp(lo_s, max=0.0)
        hi = torch.clamp(hi_s, min=0.0)
        if float(hi.detach()) == float(lo.detach()):
            return lo, hi
        s8 = (hi - lo) / torch.tensor(255.0)
        k = float(torch.round((-lo / (s8 * BT_STEP)).detach()))
        z8 = torch.tensor(float(BT_STEP * min(max(k, 0.0), 3.0)), dtype=torch.float32)
        return -z8 * s8, (torch.tensor(255.0) - z8) * s8

    def _truncate(self, q: torch.Tensor) -> torch.Tensor:
        if self.bt_mode is None:
            return q
        return _TruncateSTE.apply(q, self._skew())

    def _truncation_skew(self) -> int | None:
        return None if self.bt_mode is None else self._skew()

    def _truncate_int(self, q: torch.Tensor) -> torch.Tensor:
        if self.bt_mode is None:
            return q
        return _truncate_float(q.to(torch.float32), self._skew()).to(torch.int32)

    def _extra_init_rule(self, best: float) -> float:
        if self.bt_mode == "BT*":
            return best + 0.1 if best < 0.5 else best
        return super()._extra_init_rule(best)

    def init_alpha(self, x: torch.Tensor) -> float:
        if self.bt_mode == "BT*":
            self.skew.fill_(check_skew(rounded_skew(x.detach().cpu().numpy())))
        return super().init_alpha(x)

    def to_storage(self, x: torch.Tensor) -> torch.Tensor:
        """Codes as stored: ``to_int(x)``, or for BT modes the 2-bit ``to_int(x) // 85``."""
        q = self.to_int(x)
        return q // BT_STEP if self.bt_mode is not None else q

    def bt_description(self) -> dict:
        """How a BT tensor's codes are represented (see ``docs/numerics.md``).

        Codes ``q = 85 * c`` on the 8-bit grid with ``scale`` and ``zero_point`` of the
        8-bit spec; stored as 2-bit ``c``; value ``(85 * c - zero_point) * scale``.
        """
        if self.bt_mode is None:
            raise invalid("bt_mode", None, "'BT' or 'BT*' for bt_description()")
        s, z, spec = self.qparams()
        return {"mode": self.bt_mode, "scale": float(s), "zero_point": z, "spec": spec.to_dict(),
                "code_step": BT_STEP, "storage_bits": 2, "skew": self._skew(),
                "zero_exact": self.bt_zero,
                "levels": [0, BT_STEP, 2 * BT_STEP, 3 * BT_STEP]}

    def _fake(self, x, s, z, lo_s, hi_s):
        if not self.paper_code:
            return super()._fake(x, s, z, lo_s, hi_s)
        return _PaperCodeQLR.apply(x, self.alpha, s.detach(), z, lo_s.detach(),
                                   hi_s.detach(), self.code_spec, self.bt_mode, self._skew())

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", bt_mode={self.bt_mode!r}, bt_zero={self.bt_zero}, "
                f"paper_code={self.paper_code}")


class _PaperCodeQLR(torch.autograd.Function):
    """Forward as the contract; backward as the published code (gradients on x_hat).

    The published backward tests the range on the saved *output* ``x_hat`` against
    ``[a * min, a * max]``, masks the upstream gradient with that test, and returns for
    alpha ``sum(in_range * (q - (x_hat / s + z)) * g)``: ``x_hat / s + z`` equals ``q`` up to
    float error, so the alpha gradient is near zero.  (Its clip terms ``a*min*g`` and
    ``a*max*g`` are multiplied by the already-masked gradient and vanish.)
    """

    @staticmethod
    def forward(ctx, x, alpha, s, z, lo_s, hi_s, spec, bt_mode, skew):  # noqa: D102
        zt = torch.tensor(float(z), dtype=torch.float32)
        q = torch_ops.scaled_codes_float(x, s, z, spec)
        if bt_mode is not None:
            q = _truncate_float(q, skew)
        x_hat = (q - zt) * s
        ctx.save_for_backward(x_hat, q, s, lo_s, hi_s)
        ctx.z = z
        ctx.alpha_shape = alpha.shape
        ctx.bt = (bt_mode, skew)
        return x_hat

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        x_hat, q, s, lo_s, hi_s = ctx.saved_tensors
        in_range = ((x_hat >= lo_s) & (x_hat <= hi_s)).to(g.dtype)
        g_in = g * in_range
        q_tilde = x_hat / s + torch.tensor(float(ctx.z), dtype=torch.float32)
        bt_mode, skew = ctx.bt
        if bt_mode is not None:
            q_tilde = torch.round((q_tilde + skew) / BT_STEP) * BT_STEP
        g_alpha = (in_range * (torch.round(q) - q_tilde) * g_in).sum().reshape(ctx.alpha_shape)
        return g_in, g_alpha, None, None, None, None, None, None, None


class SymmetricQuantizer(_LearnableRange):
    """Signed symmetric codes, zero point 0, learnable range multiplier alpha.

    ``s = a * max(|min x|, |max x|) / qmax``, ``q = clamp(round(x / s), qmin, qmax)``.
    ``narrow_range=True`` (default) drops ``-2**(b-1)`` for a range symmetric about 0.
    Alpha is grid-search initialised like :class:`QLRQuantizer` (``+0.1`` below 0.1).
    Needs ``bits >= 2``.
    """

    def __init__(self, bits: int | None, *, narrow_range: bool = True,
                 momentum: float | None = None, alpha: nn.Parameter | None = None,
                 reinit_every: int | None = None,
                 rounding: Rounding | str = Rounding.HALF_EVEN) -> None:
        if bits == 1:
            raise invalid("bits", bits, ">= 2 for signed symmetric codes")
        super().__init__(bits, alpha=alpha, reinit_every=reinit_every, signed=True,
                         narrow_range=narrow_range, rounding=rounding, momentum=momentum)


class MinMaxObserverQuantizer(FakeQuantizer):
    """Range from a moving average of min / max (default momentum 0.1); nothing learnable.

    ``signed=False``: asymmetric unsigned like QLR with alpha fixed at 1;
    ``signed=True``: symmetric, zero point 0.
    """

    def __init__(self, bits: int | None, *, signed: bool = False, narrow_range: bool = False,
                 momentum: float | None = 0.1,
                 rounding: Rounding | str = Rounding.HALF_EVEN) -> None:
        super().__init__(bits, signed=signed, narrow_range=narrow_range, rounding=rounding,
                         momentum=momentum)


def make_quantizer(kind: str, bits: int | None, **kw) -> FakeQuantizer:
    """Build a quantizer by name: ``qlr``, ``qlr_paper``, ``bt``, ``bt*``, ``symmetric``,
    ``observer``.  Extra keyword arguments go to the constructor.

    >>> make_quantizer("bt*", 2).bt_mode
    'BT*'
    """
    k = str(kind).lower()
    if k == "qlr":
        return QLRQuantizer(bits, **kw)
    if k == "qlr_paper":
        return QLRQuantizer(bits, paper_code=True, **kw)
    if k in ("bt", "bt*", "sbt"):
        return QLRQuantizer(bits, bt_mode="BT" if k == "bt" else "BT*", **kw)
    if k == "symmetric":
        return SymmetricQuantizer(bits, **kw)
    if k == "observer":
        return MinMaxObserverQuantizer(bits, **kw)
    raise QuantError(f"kind must be one of ['qlr', 'qlr_paper', 'bt', 'bt*', 'symmetric', "
                     f"'observer'], not {kind!r}")
