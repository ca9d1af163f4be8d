"""Building blocks of the hand-written LLVM IR in numba intrinsics: integer conversion,
broadcast, a counted loop with SSA loop-carried values, array arguments, and one
specialisation per supported width behind a run-time switch.

Used by the packed row kernel (:mod:`sim.packed.row_vector_ir`) and the FP32 SpMM baseline
(:mod:`quagga.bench.fp32_spmm`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

__all__ = ["I8", "I16", "I32", "I64", "RowEdges", "array_args", "counted_loop", "fit_int",
           "splat", "store_row", "switch_widths"]

I64, I32, I16, I8 = ir.IntType(64), ir.IntType(32), ir.IntType(16), ir.IntType(8)


def fit_int(builder: ir.IRBuilder, val: ir.Value, ty: ir.IntType, signed: bool) -> ir.Value:
    """Integer ``val`` converted to ``ty`` (truncated, or sign/zero extended)."""
    if val.type.width == ty.width:
        return val
    if val.type.width > ty.width:
        return builder.trunc(val, ty)
    return builder.sext(val, ty) if signed else builder.zext(val, ty)


def splat(builder: ir.IRBuilder, val: ir.Value, vty: ir.VectorType) -> ir.Value:
    """``val`` broadcast to every element of ``vty``."""
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, vty.count), [0] * vty.count)
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), mask)


def counted_loop(builder: ir.IRBuilder, name: str, lo: ir.Value, hi: ir.Value,
                 init: list[ir.Value], step_fn) -> list[ir.Value]:
    """``for i in range(lo, hi): vals = step_fn(i, vals)`` as IR; returns the final ``vals``."""
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
    i.add_incoming(builder.add(i, ir.Constant(lo.type, 1)), end)
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
