"""Building blocks of the hand-written LLVM IR in numba intrinsics: integer conversion,
broadcast, a counted loop with SSA loop-carried values, array arguments, one
specialisation per supported width behind a run-time switch, and a row's edges sixteen per
vector with gathers of their source rows (:class:`EdgeVectors`).

Used by the packed row kernel (:mod:`sim.packed.row_vector_ir`), the narrow-row gather
kernels (:mod:`sim.packed.msg_gather`) and the FP32 baselines
(:mod:`quagga.bench.fp32_spmm`, :mod:`quagga.bench.fp32_gather`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir
from numba.core import cgutils

__all__ = ["HOST_AVX512", "I1", "I8", "I16", "I32", "I64", "VECTOR_EDGES", "EdgeVectors",
           "RowEdges", "array_args", "counted_loop", "fit_int", "masked_load", "splat",
           "store_lane_sums", "store_row", "switch_widths"]

I64, I32, I16, I8, I1 = (ir.IntType(64), ir.IntType(32), ir.IntType(16), ir.IntType(8),
                         ir.IntType(1))
#: edges per vector of :class:`EdgeVectors`
VECTOR_EDGES = 16


def _host_avx512() -> bool:
    """Whether numba compiles for a CPU with AVX-512F (then the gathers use 32-bit offsets,
    ``vpgatherdd`` / ``vgatherdps``, sixteen rows per instruction)."""
    try:
        from llvmlite import binding

        return bool(binding.get_host_cpu_features().get("avx512f", False))
    except Exception:  # pragma: no cover - feature probe unavailable
        return False


#: the host CPU has AVX-512F (:class:`EdgeVectors` then gathers with 32-bit offsets)
HOST_AVX512 = _host_avx512()


def _width(ty: ir.Type) -> int:
    return ty.element.width if isinstance(ty, ir.VectorType) else ty.width


def fit_int(builder: ir.IRBuilder, val: ir.Value, ty: ir.Type, signed: bool) -> ir.Value:
    """Integer (or integer vector) ``val`` converted to ``ty`` (truncated, or sign/zero
    extended)."""
    w, tw = _width(val.type), _width(ty)
    if w == tw:
        return val
    if w > tw:
        return builder.trunc(val, ty)
    return builder.sext(val, ty) if signed else builder.zext(val, ty)


def splat(builder: ir.IRBuilder, val: ir.Value, vty: ir.VectorType) -> ir.Value:
    """``val`` broadcast to every element of ``vty``."""
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, vty.count), [0] * vty.count)
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), mask)


def counted_loop(builder: ir.IRBuilder, name: str, lo: ir.Value, hi: ir.Value,
                 init: list[ir.Value], step_fn, step: int = 1) -> list[ir.Value]:
    """``for i in range(lo, hi, step): vals = step_fn(i, vals)`` as IR; returns the final
    ``vals``."""
    pre = builder.block
    head = builder.append_basic_block(f"{name}.head")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(head)
    builder.position_at_end(head)
    i = builder.phi(lo.type)
    i.add_incoming(lo, pre)
    vals = []
    for v in init:
        ph = builder.phi(v.type)
        ph.add_incoming(v, pre)
        vals.append(ph)
    builder.cbranch(builder.icmp_signed("<", i, hi), body, done)
    builder.position_at_end(body)
    new = step_fn(i, vals)
    end = builder.block
    i.add_incoming(builder.add(i, ir.Constant(lo.type, step)), end)
    for ph, v in zip(vals, new):
        ph.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return vals


def array_args(context, builder: ir.IRBuilder, signature, args, positions: Sequence[int]) -> list:
    """The array structures (``.data``, ``.strides``, ...) of the arguments at ``positions``."""
    return [context.make_array(signature.args[k])(context, builder, args[k]) for k in positions]


def store_row(builder: ir.IRBuilder, arr, row: ir.Value, byte_offset: ir.Value, value: ir.Value,
              align: int) -> None:
    """Store vector ``value`` at byte ``byte_offset`` of row ``row`` of the 2-d array ``arr``."""
    at = builder.add(builder.mul(fit_int(builder, row, I64, True),
                                 builder.extract_value(arr.strides, 0)), byte_offset)
    ptr = builder.gep(builder.bitcast(arr.data, I8.as_pointer()), [at])
    builder.store(value, builder.bitcast(ptr, value.type.as_pointer()), align=align)


class RowEdges:
    """The edges of one destination row, from an intrinsic's first five arguments:
    ``indices`` (any integer dtype), ``w`` (edge weights), ``x`` (2-d source rows with
    contiguous rows), ``start``, ``end``."""

    def __init__(self, context, builder: ir.IRBuilder, signature, args):
        self.builder = builder
        self.indices, self.w, self.x = array_args(context, builder, signature, args, (0, 1, 2))
        self.signed = signature.args[0].dtype.signed
        self.stride = builder.extract_value(self.x.strides, 0)
        self.start = fit_int(builder, args[3], I64, True)
        self.end = fit_int(builder, args[4], I64, True)

    def weight(self, e: ir.Value) -> ir.Value:
        """The weight of edge ``e``, as stored."""
        return self.builder.load(self.builder.gep(self.w.data, [e]))

    def columns(self, byte_offset: ir.Value) -> ir.Value:
        """Byte pointer to column byte ``byte_offset`` of source row 0 (for :meth:`load_source`)."""
        return self.builder.gep(self.builder.bitcast(self.x.data, I8.as_pointer()), [byte_offset])

    def load_source(self, columns: ir.Value, e: ir.Value, vty: ir.VectorType,
                    align: int) -> ir.Value:
        """One unaligned vector load of ``vty`` from the source row of edge ``e`` at ``columns``."""
        b = self.builder
        src = fit_int(b, b.load(b.gep(self.indices.data, [e])), I64, self.signed)
        ptr = b.bitcast(b.gep(columns, [b.mul(src, self.stride)]), vty.as_pointer())
        return b.load(ptr, align=align)

    def loop(self, init: list[ir.Value], step_fn) -> list[ir.Value]:
        """:func:`counted_loop` over the row's edges."""
        return counted_loop(self.builder, "edges", self.start, self.end, init, step_fn)


def switch_widths(builder: ir.IRBuilder, value: ir.Value, widths: Sequence[int],
                  emit: Callable[[int], None], name: str = "width") -> None:
    """``emit(w)`` for the ``w`` of ``widths`` equal to the run-time integer ``value``.

    Each width gets its own block with the code ``emit`` builds for it (constant vector
    types, shifts and trip counts), behind one ``switch``; a value outside ``widths`` does
    nothing.  The builder is left after the switch.
    """
    done = builder.append_basic_block(f"{name}.done")
    sw = builder.switch(value, done)
    for w in widths:
        block = builder.append_basic_block(f"{name}.{w}")
        sw.add_case(ir.Constant(value.type, w), block)
        builder.position_at_end(block)
        emit(w)
        builder.branch(done)
    builder.position_at_end(done)


def masked_load(builder: ir.IRBuilder, ptr: ir.Value, elt: ir.IntType, mask: ir.Value,
                n: int) -> ir.Value:
    """``<n x elt>`` loaded from ``ptr`` where ``mask`` is set, zero elsewhere."""
    vty = ir.VectorType(elt, n)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [I8.as_pointer(), I32, mask.type, vty]),
        f"llvm.masked.load.v{n}i{elt.width}.p0")
    return builder.call(fn, [builder.bitcast(ptr, I8.as_pointer()),
                             ir.Constant(I32, elt.width // 8), mask, ir.Constant(vty, [0] * n)])


class EdgeVectors:
    """The edges of one destination row, :data:`VECTOR_EDGES` per vector, with gathers of
    their source rows.

    Each iteration of :meth:`loop` covers edges ``e .. e + 15`` of ``[start, end)``; the
    lanes past ``end`` are masked off (their loads give 0, their gathers read nothing).
    Source row ``r`` starts ``r * stride`` units of ``scale`` bytes after ``data``; with
    :data:`HOST_AVX512` and indices of at most 32 bits the gathers take 32-bit offsets
    (``llvm.x86.avx512.mask.gather.dpi/dps.512``), otherwise 64-bit pointers
    (``llvm.masked.gather``).

    Parameters
    ----------
    builder : ir.IRBuilder
    indices : array structure
        The row's source indices (``.data``), of numba integer dtype ``index_dtype``.
    data : ir.Value
        Pointer to the source rows.
    start, end : ir.Value
        The row's edge range.
    elt : ir.Type
        Gathered element, ``i32`` or ``float``.
    scale : int
        Bytes per offset unit (also the gathers' alignment).
    stride : int or ir.Value
        Offset units per source row (an int gives constant vectors).
    """

    def __init__(self, builder: ir.IRBuilder, indices, index_dtype, data: ir.Value,
                 start: ir.Value, end: ir.Value, elt: ir.Type, scale: int, stride):
        V = VECTOR_EDGES  # noqa: N806
        self.builder, self.indices, self.scale = builder, indices, scale
        self.start, self.end = fit_int(builder, start, I64, True), fit_int(builder, end, I64, True)
        self.index_type = ir.IntType(index_dtype.bitwidth)
        self.signed = index_dtype.signed
        self.dpi = HOST_AVX512 and index_dtype.bitwidth <= 32
        self.v32, self.vm = ir.VectorType(I32, V), ir.VectorType(I1, V)
        self.velt = ir.VectorType(elt, V)
        self.zero = ir.Constant(self.velt, [0 if isinstance(elt, ir.IntType) else 0.0] * V)
        self.iota = ir.Constant(self.v32, list(range(V)))
        pty = I8.as_pointer()
        self.xbase = builder.bitcast(data, pty)
        if self.dpi:
            self.vo = self.v32
            name = "dpi" if isinstance(elt, ir.IntType) else "dps"
            self.gather_fn = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(self.velt, [self.velt, pty, self.v32, self.vm, I32]),
                f"llvm.x86.avx512.mask.gather.{name}.512")
        else:
            self.vo = ir.VectorType(I64, V)
            tname = f"i{elt.width}" if isinstance(elt, ir.IntType) else "f32"
            self.gather_fn = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(self.velt, [ir.VectorType(pty, V), I32, self.vm, self.velt]),
                f"llvm.masked.gather.v{V}{tname}.v{V}p0")
            self.base = splat(builder, builder.ptrtoint(data, I64), self.vo)
        unit = 1 if self.dpi else scale
        if isinstance(stride, int):
            self.stride = ir.Constant(self.vo, [stride * unit] * V)
        else:
            s = fit_int(builder, stride, self.vo.element, True)
            self.stride = splat(builder, s if unit == 1 else builder.mul(
                s, ir.Constant(s.type, unit)), self.vo)

    def loop(self, init: list[ir.Value], body) -> list[ir.Value]:
        """``for e in range(start, end, 16): vals = body(e, mask, vals)`` (``mask``: the
        edges of the vector inside the row); returns the final ``vals``."""
        b = self.builder

        def step(e, vals):
            rem = b.trunc(b.sub(self.end, e), I32)
            mask = b.icmp_signed("<", self.iota, splat(b, rem, self.v32))
            return body(e, mask, vals)

        return counted_loop(b, "vedges", self.start, self.end, init, step, VECTOR_EDGES)

    def load(self, data: ir.Value, e: ir.Value, elt: ir.IntType, mask: ir.Value) -> ir.Value:
        """The per-edge values ``data[e .. e + 15]`` (``elt`` each), 0 where masked off."""
        return masked_load(self.builder, self.builder.gep(data, [e]), elt, mask, VECTOR_EDGES)

    def rows(self, e: ir.Value, mask: ir.Value) -> ir.Value:
        """Offsets of the sixteen source rows (pass to :meth:`gather`)."""
        b = self.builder
        idx = self.load(self.indices.data, e, self.index_type, mask)
        return b.mul(fit_int(b, idx, self.vo, self.signed), self.stride)

    def gather(self, rows: ir.Value, column: int, mask: ir.Value) -> ir.Value:
        """Element ``column`` (in offset units) of the sixteen source rows, 0 where masked
        off."""
        b = self.builder
        col = column if self.dpi else column * self.scale
        off = b.add(rows, ir.Constant(self.vo, [col] * VECTOR_EDGES)) if col else rows
        if self.dpi:
            return b.call(self.gather_fn, [self.zero, self.xbase, off, mask,
                                           ir.Constant(I32, self.scale)])
        ptrs = b.inttoptr(b.add(self.base, off), ir.VectorType(I8.as_pointer(), VECTOR_EDGES))
        return b.call(self.gather_fn, [ptrs, ir.Constant(I32, self.scale), mask, self.zero])


def store_lane_sums(builder: ir.IRBuilder, out: ir.Value, accs: list[ir.Value]) -> None:
    """``out[l] =`` the sum of the elements of ``accs[l]`` (integer or float vectors)."""
    vty = accs[0].type
    elt = vty.element
    if isinstance(elt, ir.IntType):
        red = cgutils.get_or_insert_function(builder.module, ir.FunctionType(elt, [vty]),
                                             f"llvm.vector.reduce.add.v{vty.count}i{elt.width}")
        first = []
    else:
        red = cgutils.get_or_insert_function(builder.module, ir.FunctionType(elt, [elt, vty]),
                                             f"llvm.vector.reduce.fadd.v{vty.count}f32")
        first = [ir.Constant(elt, 0.0)]
    for l, acc in enumerate(accs):
        builder.store(builder.call(red, [*first, acc]), builder.gep(out, [ir.Constant(I64, l)]))
