"""Fused per-edge message quantization: gather, weight, fake-quantize and sum in one op.

The paper quantizes every message ``m_e = w_e * x[src_e]`` of a propagation step before the
row sum.  Written as PyG ``message`` / ``aggregate`` hooks, autograd keeps about six
(E, C) float tensors per step (gathered features, message, ``m / s + z``, clamp mask, codes,
dequantized message), each a fresh allocation, and its backward pass gathers and scatters
(E, C) tensors again; on a graph with a million edges that dominates a training epoch.

:class:`FusedQuantMessage` computes the same forward values, operation for operation, in
reused workspace buffers, and keeps for the backward pass only what the gradients need:

* the positions of the messages whose gradient is cut (clipped by the quantizer), usually few;
* ``R`` (N, C), the row sums of the per-message coefficient of the scale (or alpha) gradient.

Forward (rounding and clamp in the order of ``FakeQuantizer._fake``; ``u = m / s``)::

    m   = w[:, None] * x[src]                  (E, C)
    v   = u + z
    q   = T(R(clamp(v, qmin, qmax)))           R: the spec's rounding; T: BT truncation or identity
    out = segment_sum((q - z) * s, dst)        (N, C), PyG's sum aggregation over the CSR rows

Backward (straight-through rounding and truncation; ``g`` the (N, C) upstream gradient;
``k = [qmin <= v <= qmax]``)::

    dL/dx = A^T g - sum over clipped (e, c) of w_e g[dst_e, c] at (src_e, c)
    dL/ds = sum_(i, c) g[i, c] * R[i, c],   R = segment_sum((q - z) - k * u, dst)
    dL/dw = sum_c k g[dst] * x[src]          (only when the edge weights need a gradient)

``A^T g`` is one CSR product with the graph's transposed structure.  Mathematically these
are the gradients autograd computes on the unfused path (``dL/dm = g[dst] k``,
``dL/ds = sum g[dst] (q - z) - sum g[dst] k (m / s)``); the sums are taken in another order,
so they agree to float32 rounding, not bit for bit.

Published-code mode (``paper_code``, :class:`quant.quantizers._PaperCodeQLR`): rounding
before the clamp, the mask is ``lo_s <= x_hat <= hi_s`` on the dequantized message, ``s``
gets no gradient and alpha gets ``sum g[dst] k (q - q~)`` with ``q~ = x_hat / s + z``
(snapped to the BT grid in BT modes).

The forward values are bit-identical to the unfused path: the same float32 operations on the
same values, and the row sums add each row's messages in edge order starting from zero, as
PyG's ``scatter`` (``scatter_add_``) does; ``tests/training/test_fused_message.py`` checks
both with ``torch.equal``.

On the CPU, for a corrected-mode quantizer with half-even rounding and no truncation, the
forward runs as one numba pass over the edges (:func:`training.exact_kernels.quantized_message_sum`,
the same float32 operations in the same order, rows summed in edge order from zero), and the
(E, C) messages are built only when the quantizer reads them (its first call, its alpha grid
searches).  In the integer-exact forward that pass also computes the integer op
(:mod:`training.exact_pass`).

Memory: per thread, three (E, C) float32 workspaces (reused by every step) and caches of
the last few tensors derived from a graph or an edge-weight tensor (the weights expanded to
(E, C), the transposed CSR values, int32 source indices, per-node weight extremes).  They
stay allocated until :func:`clear_caches` or the end of the thread; for Tolokers (about 1M
edges, C = 2) that is about 50 MiB.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from quant import torch_ops
from quant.quantizers import (FakeQuantizer, MinMaxObserverQuantizer, QLRQuantizer,
                              SymmetricQuantizer)
from quant.spec import QuantSpec, Rounding
from quant.truncation import BT_STEP
from training.sparse_warnings import quiet_sparse

__all__ = ["FUSABLE", "FusedQuantMessage", "clear_caches", "fusable", "quantized_message_sum",
           "transposed_csr"]

#: Quantizer classes whose forward this module reproduces (others take the unfused path).
FUSABLE = (QLRQuantizer, SymmetricQuantizer, MinMaxObserverQuantizer)

#: Above this fraction of clipped messages the input gradient is summed edge by edge
#: instead of ``A^T g`` minus the clipped terms (less cancellation).
_DIRECT_FRACTION = 0.25

_local = threading.local()


def clear_caches() -> None:
    """Drop this thread's workspaces and cached graph / edge-weight tensors."""
    for name in ("pool", "cache"):
        if hasattr(_local, name):
            delattr(_local, name)


def fusable(q: FakeQuantizer | None) -> bool:
    """Whether :func:`quantized_message_sum` reproduces quantizer ``q`` exactly."""
    return q is not None and type(q) in FUSABLE


def _workspace(slot: int, like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A reused scratch tensor of ``shape`` (per thread; reallocated when the shape changes).

    A fresh (E, C) allocation is page-faulted in on every use; a few reused buffers remove
    that cost.  Contents are undefined on return; nothing returned to a caller aliases one.
    """
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    key = (slot, like.dtype, like.device)
    buf = pool.get(key)
    if buf is None or tuple(buf.shape) != tuple(shape):
        buf = pool[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf


#: entries kept per cache name (a few graphs / edge-weight tensors alive at once)
_CACHE_ENTRIES = 4


def _cached(name: str, t: torch.Tensor, extra: tuple, build: Callable[[], torch.Tensor]
            ) -> torch.Tensor:
    """``build()``, remembered (per thread, the last few per ``name``) for tensor ``t``.

    The key is ``t``'s memory address, shape, strides and version counter plus ``extra``;
    an entry holds a reference to ``t``, so the address cannot be reused by another tensor
    while the entry lives, and an in-place change of ``t`` bumps its version.
    """
    key = (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device, t._version) + extra
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    entries = cache.setdefault(name, [])
    for i, (k, _, value) in enumerate(entries):
        if k == key:
            entries.insert(0, entries.pop(i))
            return value
    value = build()
    entries.insert(0, (key, t, value))
    del entries[_CACHE_ENTRIES:]
    return value


def transposed_csr(w: torch.Tensor, t_indptr: torch.Tensor, t_indices: torch.Tensor,
                   t_perm: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``A^T`` as a torch CSR tensor (rows = sources) with values ``w[t_perm]``, cached.

    ``w`` (E,) holds the edge values in canonical (destination-sorted) order and
    ``(t_indptr, t_indices, t_perm)`` is the source-sorted structure of the same edges
    (:class:`training.graph.PropGraph`).  Every propagation step of one model forward gets
    the same edge-weight tensor, so the permuted values are gathered once per forward, not
    once per step and backward pass.
    """
    def build():
        with quiet_sparse():
            return torch.sparse_csr_tensor(t_indptr, t_indices, w.index_select(0, t_perm),
                                           tuple(shape))
    return _cached("transposed", w, (t_perm.data_ptr(), t_perm._version, tuple(shape)), build)


def _flat_index(src: torch.Tensor, c: int, n: int) -> torch.Tensor:
    """``src * c + arange(c)`` flattened (E * c,): the positions of ``x[src]`` in
    ``x.view(-1)`` for ``x`` of shape (n, c).  A 1-D gather with these is several times
    faster than ``index_select`` of (E, c) rows for small ``c``; int32 when ``n * c`` fits
    (half the index bytes to read)."""
    dtype = torch.int32 if n * c < 2 ** 31 else torch.int64
    return _cached("flat", src, (c, dtype), lambda: (
        src.unsqueeze(-1) * c + torch.arange(c, device=src.device)).view(-1).to(dtype))


def _expanded(w: torch.Tensor, c: int) -> torch.Tensor:
    """``w[:, None]`` as a contiguous (E, c) tensor (a broadcast multiply over a trailing
    dimension of 2 is several times slower than a contiguous one)."""
    return _cached("wide", w, (c,), lambda: w.unsqueeze(-1).expand(w.shape[0], c).contiguous())


@dataclass
class _Plan:
    """What the autograd function needs besides its tensor inputs."""

    src: torch.Tensor                  # (E,) int64 sources, canonical (destination-sorted) order
    dst: torch.Tensor                  # (E,) int64 destinations
    ptr: torch.Tensor                  # (N + 1,) int64 CSR row pointers over dst
    num_nodes: int
    aggregate: Callable                # (vals (E, C), dst, ptr, N) -> (N, C) row sums
    transposed: tuple | None = None    # (t_indptr, t_indices, t_perm) or None
    spec: QuantSpec | None = None      # None: quantizer disabled, messages summed as they are
    z: int = 0
    truncate: Callable | None = None   # BT / BT* truncation of float codes, or None
    bt: tuple = (None, 0)              # (bt_mode, skew) for the published-code alpha gradient
    paper: bool = False
    lo_s: torch.Tensor | None = None
    hi_s: torch.Tensor | None = None
    grad: bool = True                  # autograd is recording (else skip backward bookkeeping)
    kernel: tuple | None = None        # (indptr, src) numpy int64: the one-pass CPU kernel
    ends: tuple | None = None          # (min, max) of the messages, 0-d tensors
    message: torch.Tensor | None = None  # the forward's (E, C) messages, consumed in place
    exact: object | None = None        # a training.exact_pass.PendingPass that computes the
                                       # kernel's results (the inputs are dequantized codes)


#: a dtype as wide as a whole feature row, by feature count (rows gathered as one element)
_ROW_DTYPES = {1: torch.float32, 2: torch.int64, 4: torch.complex128}


def _gather_rows(x: torch.Tensor, src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = x[src]`` (E, C) float32, bit for bit.

    With C = 1, 2 or 4 each row is reinterpreted as one 4-, 8- or 16-byte element and
    gathered with a 1-D ``index_select`` (int32 indices); otherwise through flat element
    positions.  Both only copy bits, and both are several times faster than ``index_select``
    of (E, C) rows.
    """
    n, c = x.shape
    row = _ROW_DTYPES.get(c)
    if row is not None and x.storage_offset() % c == 0 and n < 2 ** 31:
        idx = _cached("src32", src, (), lambda: src.to(torch.int32))
        torch.index_select(x.view(row).view(-1), 0, idx, out=out.view(row).view(-1))
    else:
        torch.index_select(x.view(-1), 0, _flat_index(src, c, n), out=out.view(-1))
    return out


def _gather_message(x: torch.Tensor, w: torch.Tensor, src: torch.Tensor,
                    out: torch.Tensor) -> torch.Tensor:
    """``out = w[:, None] * x[src]`` (E, C), written into ``out`` (same float32 products)."""
    return _gather_rows(x.contiguous(), src, out).mul_(_expanded(w, x.shape[1]))


def _round_(v: torch.Tensor, rounding: Rounding) -> torch.Tensor:
    """:func:`quant.torch_ops.round_float` in place (same values)."""
    if rounding is Rounding.HALF_EVEN:
        return v.round_()
    return v.copy_(torch_ops.round_float(v, rounding))


def _nonzero_flat(t: torch.Tensor) -> torch.Tensor:
    """Flat positions of the non-zero entries of ``t`` (int64, 1-D, ascending).

    For float32 the tensor is first read as int64 pairs (a pair is non-zero when either
    bit pattern is), which halves the elements ``nonzero`` scans; the few candidate pairs
    are then checked value by value (so ``-0.0`` counts as zero).  Other dtypes go
    through a bool copy.
    """
    flat = t.reshape(-1)
    if (t.dtype == torch.float32 and flat.numel() % 2 == 0 and flat.storage_offset() % 2 == 0
            and flat.data_ptr() % 8 == 0):
        pairs = torch.nonzero(flat.view(torch.int64)).view(-1)
        cand = (pairs.unsqueeze(1) * 2 + torch.arange(2, device=t.device)).view(-1)
        return cand[flat.index_select(0, cand) != 0]
    return torch.nonzero(flat.to(torch.bool)).view(-1)


def _numpy_ready(gx: torch.Tensor, g: torch.Tensor, w: torch.Tensor, src: torch.Tensor,
                 dst: torch.Tensor, cut: torch.Tensor) -> bool:
    """Whether the backward's clipped-message correction can run in numba
    (:func:`training.exact_kernels.subtract_clipped`): CPU, contiguous, float32 values and
    int64 indices."""
    return (all(t.device.type == "cpu" and t.is_contiguous() for t in (gx, g, w, src, dst, cut))
            and gx.dtype == g.dtype == w.dtype == torch.float32
            and src.dtype == dst.dtype == cut.dtype == torch.int64)


class FusedQuantMessage(torch.autograd.Function):
    """``segment_sum(Q(w[:, None] * x[src]), dst)`` with a compact backward (module doc).

    Inputs: ``x`` (N, C) float32; ``w`` (E,) float32; ``s`` 0-d float32 scale (may require
    grad); ``alpha`` 0-d parameter (published-code mode, else ``None``); ``plan``.
    Returns (N, C) float32.
    """

    @staticmethod
    def forward(ctx, x, w, s, alpha, plan: _Plan):  # noqa: D102
        e, c = plan.src.numel(), x.shape[1]
        need_x = plan.grad and (x.requires_grad or w.requires_grad)
        need_p = plan.grad and (s.requires_grad or (alpha is not None and alpha.requires_grad))
        cut = coef = None
        if plan.kernel is not None:
            out, cut, coef = _forward_kernel(x, w, s, plan, need_x, need_p)
            plan.message = None
            a = None
        else:
            a = plan.message if plan.message is not None else _gather_message(
                x, w, plan.src, _workspace(0, x, (e, c)))
            plan.message = None
        if a is None:
            pass
        elif plan.spec is None:
            out = plan.aggregate(a, plan.dst, plan.ptr, plan.num_nodes)
        elif plan.paper:
            out, cut, coef = _forward_paper(a, s, plan, need_x, need_p)
        else:
            out, cut, coef = _forward_clip(a, s, plan, need_x, need_p)
        ctx.save_for_backward(x, w, x.new_empty(0, dtype=torch.int64) if cut is None else cut,
                              x.new_empty(0) if coef is None else coef)
        ctx.plan = plan
        ctx.alpha_shape = None if alpha is None else alpha.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # noqa: D102
        x, w, cut, coef = ctx.saved_tensors
        plan: _Plan = ctx.plan
        need_x, need_w, need_s, need_a = ctx.needs_input_grad[:4]
        g = g.contiguous()
        gx = gw = gs = ga = None
        if need_s or need_a:
            gp = torch.dot(g.view(-1), coef.view(-1))
            if need_s:
                gs = gp.reshape(())
            else:
                ga = gp.reshape(ctx.alpha_shape)
        c = x.shape[1]
        if need_w:
            gm = g.index_select(0, plan.dst)
            gm.view(-1).index_fill_(0, cut, 0.0)
            gw = (gm * x.index_select(0, plan.src)).sum(dim=1)
        if need_x:
            direct = (plan.transposed is None
                      or cut.numel() > _DIRECT_FRACTION * plan.src.numel() * c)
            if direct and _numpy_ready(x, g, w, plan.src, plan.dst, cut):
                from training.exact_kernels import scatter_unclipped

                gx = torch.from_numpy(scatter_unclipped(
                    g.view(-1).numpy(), w.detach().numpy(), plan.src.numpy(), plan.dst.numpy(),
                    cut.numpy(), x.shape[0], c)).view(x.shape)
            elif direct:
                gm = g.index_select(0, plan.dst)
                gm.view(-1).index_fill_(0, cut, 0.0)
                gx = torch.zeros_like(x).index_add_(0, plan.src, gm.mul_(w.unsqueeze(-1)))
            else:
                at = transposed_csr(w, *plan.transposed, (x.shape[0], plan.num_nodes))
                with quiet_sparse():
                    gx = torch.sparse.mm(at, g)
                if cut.numel() and _numpy_ready(gx, g, w, plan.src, plan.dst, cut):
                    from training.exact_kernels import subtract_clipped

                    subtract_clipped(gx.view(-1).numpy(), g.view(-1).numpy(), w.detach().numpy(),
                                     plan.src.numpy(), plan.dst.numpy(), cut.numpy(), c)
                elif cut.numel():   # flat 1-D index ops: cheaper than 2-D advanced indexing
                    ed = torch.div(cut, c, rounding_mode="floor")
                    ch = cut - ed * c
                    corr = g.view(-1).index_select(0, plan.dst.index_select(0, ed).mul_(c).add_(ch))
                    corr.mul_(w.index_select(0, ed)).neg_()
                    gx.view(-1).index_add_(0, plan.src.index_select(0, ed).mul_(c).add_(ch), corr)
        return gx, gw, gs, ga, None


def _inside(ends: tuple[torch.Tensor, torch.Tensor], s: torch.Tensor, zt: torch.Tensor,
            spec: QuantSpec) -> bool:
    """Whether no message is clipped: ``m / s + z`` is monotone in ``m`` (``s > 0``, each
    float32 operation rounds monotonically), so the smallest and largest message bound every
    ``v``."""
    lo, hi = ends
    return bool(lo / s + zt >= spec.qmin) and bool(hi / s + zt <= spec.qmax)


def _forward_clip(a: torch.Tensor, s: torch.Tensor, plan: _Plan, need_x: bool,
                  need_p: bool):
    """Forward of ``FakeQuantizer._fake`` (clamp, round, truncate) on messages ``a`` (E, C).

    Returns ``(out (N, C), clipped flat positions or None, R (N, C) or None)``; ``a`` is
    overwritten with ``m / s``.
    """
    spec, zt = plan.spec, torch.tensor(float(plan.z), dtype=torch.float32)
    v = _workspace(1, a, a.shape)
    q = _workspace(2, a, a.shape)
    u = a.div_(s)
    torch.add(u, zt, out=v)
    torch.clamp(v, spec.qmin, spec.qmax, out=q)
    cut = None
    if need_x or need_p:
        if plan.ends is not None and _inside(plan.ends, s, zt, spec):
            cut = torch.empty(0, dtype=torch.int64, device=a.device)
        else:
            cut = _nonzero_flat(v.sub_(q))             # v != clamp(v): outside [qmin, qmax]
    _round_(q, spec.rounding)
    if plan.truncate is not None:
        q.copy_(plan.truncate(q))
    q.sub_(zt)                                         # q - z
    coef = None
    if need_p:
        u.view(-1).index_fill_(0, cut, 0.0)            # k * u
        r = torch.sub(q, u, out=u)                     # (q - z) - k * u, in place of u
        coef = plan.aggregate(r, plan.dst, plan.ptr, plan.num_nodes)
    out = plan.aggregate(q.mul_(s), plan.dst, plan.ptr, plan.num_nodes)
    return out, cut, coef


def _forward_kernel(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, plan: _Plan, need_x: bool,
                    need_p: bool):
    """:func:`_forward_clip`'s values in one pass over the edges
    (:func:`training.exact_kernels.quantized_message_sum`: the same float32 operations in
    the same order, rows summed in edge order from zero; half-even rounding, no truncation),
    or, when ``plan.exact`` is set, :meth:`training.exact_pass.PendingPass.run` (the same
    results, with the integer op's accumulators).  Same return values as
    :func:`_forward_clip`."""
    from training.exact_kernels import quantized_message_sum as kernel

    spec = plan.spec
    indptr, src = plan.kernel
    want_cut = need_x or need_p
    if want_cut and plan.ends is not None and _inside(
            plan.ends, s, torch.tensor(float(plan.z), dtype=torch.float32), spec):
        want_cut = False                                # no message can be clipped
    args = (float(s.detach()), float(plan.z), float(spec.qmin), float(spec.qmax), want_cut, need_p)
    res = plan.exact.run(*args) if plan.exact is not None else None   # the integer op's pass
    out, cut, coef = res if res is not None else kernel(
        indptr, src, w.detach().numpy(), x.detach().numpy(), *args)
    out = torch.from_numpy(out)
    cut = (torch.from_numpy(cut) if want_cut else torch.empty(0, dtype=torch.int64)) \
        if (need_x or need_p) else None
    return out, cut, (torch.from_numpy(coef) if need_p else None)


def _kernel_plan(q: FakeQuantizer, x: torch.Tensor, w: torch.Tensor, ptr: torch.Tensor,
                 src: torch.Tensor) -> tuple | None:
    """``(indptr, src)`` as numpy int64 when :func:`_forward_kernel` reproduces ``q`` on these
    tensors (CPU, float32, half-even rounding, no truncation, not the published-code
    backward), else ``None``."""
    if not (q.enabled and x.device.type == "cpu" and w.device.type == "cpu"
            and x.dtype == torch.float32 and w.dtype == torch.float32
            and getattr(q, "bt_mode", None) is None and not getattr(q, "paper_code", False)
            and q.code_spec.rounding is Rounding.HALF_EVEN):
        return None
    return (_cached("ptr64", ptr, (), lambda: ptr.to(torch.int64)).numpy(),
            _cached("src32", src, (), lambda: src.to(torch.int32)).numpy())


def _needs_messages(q: FakeQuantizer) -> bool:
    """Whether ``q``'s forward bookkeeping reads the whole message tensor at this call: its
    first call (range and alpha initialisation) or a training call on which its alpha grid
    search is repeated (``reinit_every``), as ``FakeQuantizer.forward`` and
    ``_LearnableRange._on_training_call`` decide them."""
    if not bool(q.initialized):
        return True
    every = getattr(q, "reinit_every", None)
    return bool(q.training and every is not None and int(q.calls) % every == 0)


def _forward_paper(a: torch.Tensor, s: torch.Tensor, plan: _Plan, need_x: bool,
                   need_p: bool):
    """Forward of :class:`quant.quantizers._PaperCodeQLR` on messages ``a`` (E, C).

    Same return values as :func:`_forward_clip`; the cut positions are the messages whose
    dequantized value lies outside ``[lo_s, hi_s]``.
    """
    spec, zt = plan.spec, torch.tensor(float(plan.z), dtype=torch.float32)
    q = _workspace(1, a, a.shape)
    xh = _workspace(2, a, a.shape)
    torch.add(a.div_(s), zt, out=q)                    # scaled_codes_float: x / s + z,
    _round_(q, spec.rounding).clamp_(spec.qmin, spec.qmax)   # round, then clamp
    if plan.truncate is not None:
        q.copy_(plan.truncate(q))
    torch.sub(q, zt, out=xh).mul_(s)                   # x_hat = (q - z) * s
    cut = coef = None
    if need_x or need_p:
        keep = (xh >= plan.lo_s).logical_and_(xh <= plan.hi_s)
        cut = _nonzero_flat(keep.logical_not_())
    if need_p:
        qt = torch.div(xh, s, out=a).add_(zt)          # q~ = x_hat / s + z
        bt_mode, skew = plan.bt
        if bt_mode is not None:
            qt.add_(skew).div_(BT_STEP).round_().mul_(BT_STEP)
        r = torch.sub(q.round(), qt, out=a)            # round(q) - q~
        r.view(-1).index_fill_(0, cut, 0.0)
        coef = plan.aggregate(r, plan.dst, plan.ptr, plan.num_nodes)
    out = plan.aggregate(xh, plan.dst, plan.ptr, plan.num_nodes)
    return out, cut, coef


def _message_ends(x: torch.Tensor, w: torch.Tensor, transposed: tuple
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum and maximum of the messages ``w_e * x[src_e]`` from per-node values only.

    For a fixed ``x[j, c]`` the float32 product ``w * x[j, c]`` is monotone in ``w``
    (non-decreasing for ``x >= 0``, non-increasing for ``x < 0``: rounding is monotone), so
    the extreme messages of node ``j`` are its products with the smallest and largest weight
    on its out-edges, which are messages themselves.  Exact, and (N, C) work instead of a
    scan of the (E, C) messages.  NaN in ``x`` reaches the result.
    """
    t_indptr, _, t_perm = transposed

    def build():
        wt = w.index_select(0, t_perm)
        has = torch.nonzero(t_indptr[1:] > t_indptr[:-1]).view(-1)   # nodes with out-edges
        wmin = torch.segment_reduce(wt, "min", offsets=t_indptr).index_select(0, has)
        wmax = torch.segment_reduce(wt, "max", offsets=t_indptr).index_select(0, has)
        # every node has an out-edge (a self loop) in a PropGraph: no row selection then
        return torch.stack([wmin, wmax]).unsqueeze(-1), None if has.numel() == x.shape[0] else has
    (wmin, wmax), has = _cached("weight_range", w, (t_perm.data_ptr(), t_perm._version,
                                                     x.shape[0]), build)
    xs = x if has is None else x.index_select(0, has)
    # per (node, channel) the extremes are wmin * x and wmax * x (which is which depends on
    # the sign of x), so the extremes of both products are the extremes of all messages
    lo_a, hi_a = torch.aminmax(wmin * xs)
    lo_b, hi_b = torch.aminmax(wmax * xs)
    return torch.minimum(lo_a, lo_b), torch.maximum(hi_a, hi_b)


def _prepare(q: FakeQuantizer, m: torch.Tensor, ends: tuple | None = None
             ) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, tuple]:
    """The bookkeeping of ``FakeQuantizer.forward`` on the messages ``m`` (E, C).

    Finiteness check, range tracking, first-call alpha initialisation, call counter, in the
    same order; returns ``(s, z, lo_s, hi_s, (min m, max m))`` with ``s`` differentiable
    in alpha.  ``ends``: the minimum and maximum of ``m`` when already known (else one
    ``aminmax`` scan).  The range update is given the two-element tensor ``[min, max]``: it
    reads only those, so the stored range is the same without two more scans of ``m``.
    The finiteness check looks at the minimum and maximum first (NaN and infinities reach
    them) and scans the whole tensor, for the error message, only when one is not finite.
    """
    lo, hi = torch.aminmax(m) if ends is None else ends
    if not (math.isfinite(lo.item()) and math.isfinite(hi.item())):
        torch_ops.check_finite(m)
    ends = torch.stack([lo, hi])
    first = not bool(q.initialized)
    if first:
        q._update_range(ends)
        q._on_first_call(m)
        q.initialized.fill_(True)
    if q.training:
        q.calls.add_(1)
        if not first:
            q._on_training_call(m)
            q._update_range(ends)
    s, z, lo_s, hi_s = q.scale_zero()
    return s, z, lo_s, hi_s, (lo, hi)


def quantized_message_sum(q: FakeQuantizer, x: torch.Tensor, w: torch.Tensor,
                          src: torch.Tensor, dst: torch.Tensor, ptr: torch.Tensor,
                          num_nodes: int, aggregate: Callable,
                          transposed: tuple | None = None) -> torch.Tensor:
    """``sum_{e: dst_e = i} Q(w_e x[src_e])`` for every node ``i`` (fused; module doc).

    Parameters
    ----------
    q : FakeQuantizer
        The message quantizer (``fusable(q)``); its state (range, alpha initialisation,
        call counter) is updated exactly as its own ``forward`` would update it.
    x : (N, C) float32 node features
    w : (E,) float32 edge weights
    src, dst : (E,) int64 edge endpoints, sorted by ``dst``
    ptr : (N + 1,) int64 CSR row pointers of ``dst``
    num_nodes : int
    aggregate : callable
        ``aggregate(vals (E, C), dst, ptr, num_nodes) -> (N, C)``: the row sums (PyG's sum
        aggregation); must add each row's values in edge order.
    transposed : (t_indptr, t_indices, t_perm), optional
        The source-sorted CSR structure of the same edges (``PropGraph``), for the input
        gradient as one sparse product; without it the gradient is summed edge by edge.

    Returns
    -------
    (N, C) float32, bit-identical to ``aggregate(q(w[:, None] * x[src]), ...)``.
    """
    x = x.to(torch.float32)
    w = w.to(torch.float32)
    kern = _kernel_plan(q, x, w, ptr, src) if transposed is not None else None
    ends = None
    if kern is not None:
        ends = _message_ends(x.detach(), w.detach(), transposed)
        if math.isfinite(ends[0].item()) and math.isfinite(ends[1].item()) and not _needs_messages(q):
            m = None                     # the kernel computes the messages on the fly
        else:
            m = _gather_message(x.detach(), w.detach(), src,
                                _workspace(0, x, (src.numel(), x.shape[1])))
    else:
        m = _gather_message(x.detach(), w.detach(), src,
                            _workspace(0, x, (src.numel(), x.shape[1])))
    plan = _Plan(src=src, dst=dst, ptr=ptr, num_nodes=num_nodes, aggregate=aggregate,
                 transposed=transposed, grad=torch.is_grad_enabled(), message=m, kernel=kern)
    if not q.enabled:
        return FusedQuantMessage.apply(x, w, x.new_ones(()), None, plan)
    if ends is None and transposed is not None:
        ends = _message_ends(x.detach(), w.detach(), transposed)
    s, z, lo_s, hi_s, plan.ends = _prepare(q, m, ends)
    plan.spec, plan.z = q.code_spec, z
    if kern is not None and m is None:
        from training.exact_pass import current

        one_pass = current()
        if one_pass is not None and one_pass.applies(x, w):
            plan.exact = one_pass
    bt_mode = getattr(q, "bt_mode", None)
    if bt_mode is not None:
        plan.truncate = q._truncate
        plan.bt = (bt_mode, q._skew())
    if getattr(q, "paper_code", False):
        plan.paper, plan.lo_s, plan.hi_s = True, lo_s.detach(), hi_s.detach()
        return FusedQuantMessage.apply(x, w, s.detach(), q.alpha, plan)
    return FusedQuantMessage.apply(x, w, s, None, plan)
