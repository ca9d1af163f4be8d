"""Test vectors for the aggregation unit: cases, seeded fuzzing, batch files, checking.

A case is one propagation step (CSR graph, edge-weight codes, feature codes, parameters)
with its expected output from :func:`quant.aggregate.aggregate_reference`.  Golden cases
written by ``sim.golden`` (``quagga golden``) convert with :func:`from_golden`.
numpy + ``quant`` + ``sim`` only (the cocotb bench imports it inside the simulator).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.errors import QuantError, invalid
from sim.design import DesignPoint
from sim.unit_stream import MAX_UNIT_SHIFT, check_params, chunks, expected_words, unpack_out

__all__ = ["FUZZ_KINDS", "RtlCase", "compare_words", "fuzz_case", "fuzz_cases", "from_golden",
           "load_batch", "save_batch"]

#: Kinds of fuzz case, cycled through by :func:`fuzz_cases`.
FUZZ_KINDS = ("random", "hub", "empty", "saturate", "wide", "extreme")


@dataclass(frozen=True)
class RtlCase:
    """One propagation step with its expected result.

    Shapes: ``indptr`` (N+1,), ``indices`` (E,), ``w`` (E,), ``x`` (N_src, F), ``y`` (N, F).
    """

    name: str
    params: AggregationParams
    indptr: np.ndarray
    indices: np.ndarray
    w: np.ndarray
    x: np.ndarray
    y: np.ndarray
    saturations: int

    @property
    def n_rows(self) -> int:
        return int(len(self.indptr) - 1)

    @property
    def n_feat(self) -> int:
        return int(self.x.shape[1])

    @classmethod
    def build(cls, name: str, params: AggregationParams, indptr, indices, w, x) -> "RtlCase":
        """Make a case, computing ``y`` and ``saturations`` with the reference."""
        indptr = np.asarray(indptr, np.int64)
        indices = np.asarray(indices, np.int64)
        w = np.asarray(w, np.int64)
        x = np.asarray(x, np.int64)
        res = aggregate_reference(indptr, indices, w, x, params)
        return cls(name, params, indptr, indices, w, x, res.y.astype(np.int64), int(res.saturations))


def from_golden(case) -> RtlCase:
    """Convert a ``sim.golden.GoldenCase`` (duck-typed) into an :class:`RtlCase`."""
    return RtlCase(str(case.name), case.params, np.asarray(case.indptr, np.int64),
                   np.asarray(case.indices, np.int64), np.asarray(case.w, np.int64),
                   np.asarray(case.x, np.int64), np.asarray(case.y, np.int64), int(case.saturations))


# ---------------------------------------------------------------------------------------
# fuzzing
# ---------------------------------------------------------------------------------------

def _shift_for(rng: np.random.Generator, dp: DesignPoint, magnitude: float, out_levels: int) -> int:
    """A shift that maps values of about ``magnitude`` onto about the output range."""
    # v * M * 2**-n ~ out_levels / 2 with M ~ 2**(mult_bits-1)
    n = dp.mult_bits - 1 + math.log2(max(magnitude, 1.0)) - math.log2(max(out_levels / 2, 1))
    n = int(round(n)) + int(rng.integers(-2, 3))
    return int(np.clip(n, 0, MAX_UNIT_SHIFT))


def _requant(rng, dp: DesignPoint, magnitude: float, extreme: bool) -> Requantizer:
    spec = dp.feat_spec
    z = int(rng.integers(spec.qmin, spec.qmax + 1))
    if extreme and rng.random() < 0.5:
        m = int(rng.choice([0, 1, (1 << dp.mult_bits) - 1]))
        n = int(rng.choice([0, 1, MAX_UNIT_SHIFT, int(rng.integers(0, MAX_UNIT_SHIFT + 1))]))
    else:
        m = int(rng.integers(1 << (dp.mult_bits - 1), 1 << dp.mult_bits))
        n = _shift_for(rng, dp, magnitude, spec.levels)
    return Requantizer(m, n, z, spec)


def random_params(dp: DesignPoint, rng: np.random.Generator, max_deg: int,
                  extreme: bool = False) -> AggregationParams:
    """Random configuration values the unit built from ``dp`` accepts."""
    xs, ws = dp.feat_spec, dp.weight_spec
    x_zero = int(rng.integers(xs.qmin, xs.qmax + 1))
    w_zero = int(rng.integers(ws.qmin, ws.qmax + 1))
    prod = float((1 << dp.bits) * (1 << dp.weight_bits)) / 4
    msg = _requant(rng, dp, prod, extreme) if dp.msg_requant else None
    per_edge = (1 << dp.bits) / 2 if msg is not None else prod
    out = _requant(rng, dp, per_edge * max(1.0, math.sqrt(max_deg)), extreme)
    upd = _requant(rng, dp, (1 << dp.bits) / 2, extreme) if dp.upd_requant else None
    return AggregationParams(xs, x_zero, ws, w_zero, dp.acc_width, out, msg, upd)


def _graph(rng, kind: str, dp: DesignPoint) -> tuple[np.ndarray, np.ndarray, int]:
    if kind == "hub":
        n = int(rng.integers(2, 8))
        deg = rng.integers(0, 4, size=n)
        deg[rng.integers(0, n)] = int(rng.integers(20, 80))
    elif kind == "empty":
        n = int(rng.integers(1, 12))
        deg = np.where(rng.random(n) < 0.6, 0, rng.integers(1, 4, size=n))
    elif kind == "saturate":
        n = int(rng.integers(1, 5))
        deg = rng.integers(1, 4 * dp.max_degree + 2, size=n)
        deg = np.minimum(deg, 200)
    else:
        n = int(rng.integers(1, 10))
        deg = rng.integers(0, 6, size=n)
    n_src = int(rng.integers(1, 12))
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    indices = rng.integers(0, n_src, size=int(indptr[-1])).astype(np.int64)
    return indptr, indices, n_src


def fuzz_case(dp: DesignPoint, seed: int, kind: str = "random") -> RtlCase:
    """One seeded random case of the given kind (see :data:`FUZZ_KINDS`).

    ``hub``: one row of degree 20..79; ``empty``: mostly zero-degree rows; ``saturate``:
    extreme codes and degrees up to ``4 * max_degree`` (the accumulator clamps when
    ``max_degree`` is small); ``wide``: several chunk passes with padded lanes;
    ``extreme``: multipliers and shifts at their limits (``M`` = 0, 1, max; ``n`` = 0, 1, 62).
    """
    if kind not in FUZZ_KINDS:
        raise invalid("kind", kind, f"one of {FUZZ_KINDS}")
    rng = np.random.default_rng([int(seed), FUZZ_KINDS.index(kind), dp.bits, dp.lanes])
    indptr, indices, n_src = _graph(rng, kind, dp)
    if kind == "wide":
        F = int(rng.integers(dp.lanes + 1, 3 * dp.lanes + 1))
    else:
        F = int(rng.integers(1, dp.lanes + 1)) if rng.random() < 0.5 else dp.lanes
    max_deg = int(np.diff(indptr).max(initial=1))
    params = random_params(dp, rng, max_deg, extreme=(kind == "extreme"))
    xs, ws = params.x_spec, params.w_spec
    if kind == "saturate":
        x_hi = rng.random() < 0.5
        params = AggregationParams(xs, xs.qmin if x_hi else xs.qmax, ws, ws.qmin, params.acc_bits,
                                   params.out, params.msg, params.upd)
        x = np.full((n_src, F), xs.qmax if x_hi else xs.qmin, np.int64)
        w = np.full(indices.shape, ws.qmax, np.int64)
    else:
        x = rng.integers(xs.qmin, xs.qmax + 1, size=(n_src, F)).astype(np.int64)
        w = rng.integers(ws.qmin, ws.qmax + 1, size=indices.shape).astype(np.int64)
    return RtlCase.build(f"{kind}-{seed}", params, indptr, indices, w, x)


def fuzz_cases(dp: DesignPoint, n: int, seed: int = 0) -> list[RtlCase]:
    """``n`` seeded cases cycling through :data:`FUZZ_KINDS`."""
    return [fuzz_case(dp, seed * 100003 + k, FUZZ_KINDS[k % len(FUZZ_KINDS)]) for k in range(n)]


# ---------------------------------------------------------------------------------------
# batch files (what the cocotb bench reads)
# ---------------------------------------------------------------------------------------

_ARRAYS = ("indptr", "indices", "w", "x", "y")


def save_batch(path: str | os.PathLike, cases: Sequence[RtlCase]) -> Path:
    """Write cases to one ``.npz`` (no pickles), atomically."""
    path = Path(path)
    meta = [{"name": c.name, "params": c.params.to_dict(), "saturations": c.saturations} for c in cases]
    arrays = {"meta": np.array(json.dumps(meta))}
    for k, c in enumerate(cases):
        for a in _ARRAYS:
            arrays[f"c{k}_{a}"] = np.asarray(getattr(c, a), np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_batch(path: str | os.PathLike) -> list[RtlCase]:
    """Read a file written by :func:`save_batch`."""
    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return [RtlCase(m["name"], AggregationParams.from_dict(m["params"]),
                        *(z[f"c{k}_{a}"] for a in _ARRAYS), int(m["saturations"]))
                for k, m in enumerate(meta)]


# ---------------------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------------------

def compare_words(case: RtlCase, words: Sequence[int], dp: DesignPoint, limit: int = 10) -> list[dict]:
    """Compare the unit's output words (all passes, rows in order) with ``case.y``.

    Returns up to ``limit`` mismatch records ``{pass, row, lane, got, expected}`` (an empty
    list means bit-exact); a wrong number of words is one record with ``row = -1``.
    """
    exp = expected_words(case.y, dp)
    n_expected = sum(len(p) for p in exp)
    out: list[dict] = []
    if len(words) != n_expected:
        out.append({"pass": -1, "row": -1, "lane": -1, "got": len(words), "expected": n_expected})
    k = 0
    for c, rows in enumerate(exp):
        for i, codes in enumerate(rows):
            if k >= len(words):
                return out
            got = unpack_out(words[k], dp)[:len(codes)]
            k += 1
            for lane, (g, e) in enumerate(zip(got, codes)):
                if g != e and len(out) < limit:
                    out.append({"pass": c, "row": i, "lane": lane, "got": int(g), "expected": int(e)})
    return out


def check_case(case: RtlCase, dp: DesignPoint) -> None:
    """Raise :class:`QuantError` if the unit built from ``dp`` cannot run ``case``."""
    try:
        check_params(dp, case.params)
        chunks(case.n_feat, dp)
    except QuantError as exc:
        raise QuantError(f"case {case.name!r}: {exc}") from None


def iter_checked(cases: Iterable[RtlCase], dp: DesignPoint) -> Iterable[RtlCase]:
    for c in cases:
        check_case(c, dp)
        yield c
