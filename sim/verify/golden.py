"""Golden vectors for the aggregation unit: one propagation step with its inputs, its
configuration values and its expected output codes.

A :class:`GoldenCase` is produced here (random fuzz cases or cases taken from a real
layer), its expected output computed by the numba kernel (:func:`sim.exact.functional.aggregate`,
tested equal to :func:`quant.aggregate.aggregate_reference`), and stored as two files
``<name>.npz`` (arrays) + ``<name>.json`` (everything else, with a format version and a
checksum of the arrays).  The format is documented in ``docs/golden-vectors.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quant.fileio import write_bytes_atomic
import quant
from quant.aggregate import AggregationParams, Requantizer
from quant.errors import QuantError
from quant.reference import derive_multiplier
from quant.spec import QuantSpec
from sim.design.point import DesignPoint
from sim.exact.functional import accumulate, aggregate
from sim.verify.step_case import StepCase
from sim.graphs.csr import csr_from_edge_index, validate_csr

__all__ = ["FORMAT", "FORMAT_VERSION", "KINDS", "GoldenCase", "GoldenFormatError",
           "case_from_propagation", "load_case", "load_cases", "make_random_case",
           "make_suite", "params_for_design", "save_case", "save_cases"]

FORMAT = "quagga-golden"
#: Version of the two-file layout; bump on any incompatible change.
FORMAT_VERSION = 1
#: Kinds of random cases :func:`make_random_case` knows.
KINDS = ("random", "hub", "empty", "selfloop", "duplicate", "saturate")
#: Array name -> dtype in the ``.npz`` file.
ARRAYS = {"indptr": np.int64, "indices": np.int64, "w": np.int32, "x": np.int32, "y": np.int32}
MANIFEST = "index.json"


class GoldenFormatError(QuantError):
    """A golden-vector file that is malformed, from another version, or corrupted."""


@dataclass(frozen=True, eq=False)
class GoldenCase(StepCase):
    """One propagation step with its expected result.

    Attributes
    ----------
    name : str
        File stem; letters, digits, ``-``, ``_`` and ``.`` only.
    design : DesignPoint
        The design the unit is built for (lanes, accumulator, requantizer switches).
    params : AggregationParams
        Configuration values driven into the unit (zero points, ``(M, n, z)`` of each stage).
    indptr : int64 (N + 1,)
        Destination-sorted CSR row pointers.
    indices : int64 (E,)
        Source node of each edge, in stream order.
    w : int32 (E,)
        Edge-weight codes.
    x : int32 (N_src, F)
        Input feature codes.
    y : int32 (N, F)
        Expected output codes.
    saturations : int
        Expected number of accumulator saturation events (lane-edge adds that clamped).
    meta : dict
        ``seed``, ``generator``, ``source``, ``contract_version`` and free-form extras.
    """

    design: DesignPoint
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or \
                not all(c.isalnum() or c in "-_." for c in self.name) or self.name.startswith("."):
            raise GoldenFormatError(f"name must be a non-empty [A-Za-z0-9._-] string, not {self.name!r}")
        for k, dt in ARRAYS.items():
            a = np.asarray(getattr(self, k))
            if a.dtype.kind not in "iu":
                raise GoldenFormatError(f"{k}.dtype must be an integer dtype, not {a.dtype}")
            object.__setattr__(self, k, np.ascontiguousarray(a, dtype=dt))
        if self.x.ndim != 2 or self.y.ndim != 2:
            raise GoldenFormatError(f"x and y must be 2-D, not shapes {self.x.shape}, {self.y.shape}")
        validate_csr(self.indptr, self.indices, self.x.shape[0])
        if self.w.shape != self.indices.shape:
            raise GoldenFormatError(f"w.shape must be {self.indices.shape}, not {self.w.shape}")
        if self.y.shape != (self.indptr.size - 1, self.x.shape[1]):
            raise GoldenFormatError(
                f"y.shape must be {(self.indptr.size - 1, self.x.shape[1])}, not {self.y.shape}")
        object.__setattr__(self, "saturations", int(self.saturations))

    def checksum(self) -> str:
        """SHA-256 over every array's name, dtype, shape and little-endian bytes."""
        return _checksum({k: getattr(self, k) for k in ARRAYS})

    def header(self) -> dict:
        """The JSON side of the file pair."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "contract_version": quant.CONTRACT_VERSION, "name": self.name,
                "design": self.design.to_dict(), "design_key": self.design.key(),
                "params": self.params.to_dict(), "saturations": self.saturations,
                "num_nodes": self.num_nodes, "num_edges": self.num_edges,
                "num_features": self.num_features,
                "arrays": {k: {"dtype": np.dtype(dt).str, "shape": list(getattr(self, k).shape)}
                           for k, dt in ARRAYS.items()},
                "checksum": self.checksum(), "meta": self.meta}


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in ARRAYS:
        a = np.ascontiguousarray(arrays[k], dtype=np.dtype(ARRAYS[k]).newbyteorder("<"))
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# configuration values from a design point
# ---------------------------------------------------------------------------------------

def _rand_zero(rng: np.random.Generator, spec: QuantSpec) -> int:
    if spec.signed:
        return 0 if rng.random() < 0.5 else int(rng.integers(spec.qmin, spec.qmax + 1))
    return int(rng.integers(spec.qmin, spec.qmax + 1))


def params_for_design(dp: DesignPoint, rng: np.random.Generator, typical_degree: float = 4.0,
                      msg: bool | None = None, upd: bool | None = None) -> AggregationParams:
    """Random but sensible configuration values for ``dp``.

    Feature, message, output and update codes use ``dp.feat_spec`` (``dp.bits``, signedness);
    edge weights ``dp.weight_spec``; the accumulator is ``dp.acc_width`` bits.  Multipliers
    have ``dp.mult_bits`` bits and are derived (:func:`quant.reference.derive_multiplier`)
    from ratios that map a typical row sum onto the output code range, times a random factor
    in [1/4, 4] so that clamping at both ends is exercised.  ``msg``/``upd`` default to the
    design's ``msg_requant``/``upd_requant`` switches.
    """
    fs, ws = dp.feat_spec, dp.weight_spec
    x_zero, w_zero = _rand_zero(rng, fs), (0 if rng.random() < 0.5 else _rand_zero(rng, ws))
    xm = max(fs.qmax - x_zero, x_zero - fs.qmin, 1)
    wm = max(ws.qmax - w_zero, w_zero - ws.qmin, 1)

    def rq(ratio: float) -> Requantizer:
        r = ratio * float(2.0 ** rng.uniform(-2, 2))
        m, n = derive_multiplier(r, dp.mult_bits)
        spec = fs
        return Requantizer(m, n, _rand_zero(rng, spec), spec)

    msg_on = dp.msg_requant if msg is None else msg
    upd_on = dp.upd_requant if upd is None else upd
    m_rq = rq(fs.levels / (2.0 * xm * wm)) if msg_on else None
    p_max = max(m_rq.spec.qmax - m_rq.zero_point, m_rq.zero_point - m_rq.spec.qmin, 1) \
        if m_rq else xm * wm
    out = rq(fs.levels / (2.0 * p_max * math.sqrt(max(typical_degree, 1.0))))
    u_rq = rq(1.0) if upd_on else None
    return AggregationParams(x_spec=fs, x_zero=x_zero, w_spec=ws, w_zero=w_zero,
                             acc_bits=dp.acc_width, out=out, msg=m_rq, upd=u_rq)


# ---------------------------------------------------------------------------------------
# random cases
# ---------------------------------------------------------------------------------------

def _edges(kind: str, rng: np.random.Generator, n: int, dp: DesignPoint,
           sat_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) of a random edge list of the given kind."""
    if kind == "random":
        e = int(rng.integers(n, 4 * n + 1))
        return rng.integers(0, n, e), rng.integers(0, n, e)
    if kind == "hub":
        hubs = rng.choice(n, size=min(2, n), replace=False)
        src = [rng.integers(0, n, dp.max_degree) for _ in hubs]
        dst = [np.full(dp.max_degree, h) for h in hubs]
        rest = np.setdiff1d(np.arange(n), hubs)
        if rest.size:  # other rows stay well below the hubs' degree
            e = int(rng.integers(n, 2 * n + 1))
            src.append(rng.integers(0, n, e))
            dst.append(rng.choice(rest, e))
        return np.concatenate(src), np.concatenate(dst)
    if kind == "empty":
        live = rng.choice(n, size=max(1, n // 4), replace=False)  # 3/4 of rows have no edge
        e = int(rng.integers(n, 2 * n + 1))
        return rng.integers(0, n, e), rng.choice(live, e)
    if kind == "selfloop":
        e = int(rng.integers(n, 2 * n + 1))
        src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
        loops = np.arange(n)
        return np.concatenate([src, loops, loops[::2]]), np.concatenate([dst, loops, loops[::2]])
    if kind == "duplicate":
        e = int(rng.integers(n, 2 * n + 1))
        src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
        rep = rng.integers(1, 5, e)
        return np.repeat(src, rep), np.repeat(dst, rep)
    if kind == "saturate":
        hub = int(rng.integers(0, n))
        e = int(rng.integers(n, 2 * n + 1))
        src = np.concatenate([rng.integers(0, n, e), rng.integers(0, n, sat_degree)])
        dst = np.concatenate([rng.integers(0, n, e), np.full(sat_degree, hub)])
        return src, dst
    raise QuantError(f"kind must be one of {list(KINDS)}, not {kind!r}")


def make_random_case(dp: DesignPoint, seed: int, kind: str = "random", num_nodes: int = 16,
                     num_features: int | None = None, name: str | None = None,
                     msg: bool | None = None, upd: bool | None = None) -> GoldenCase:
    """A seeded random golden case.

    Parameters
    ----------
    dp : DesignPoint
    seed : int
        Seed of ``np.random.default_rng``; the same arguments give the same case.
    kind : str
        ``random`` (uniform graph), ``hub`` (two rows at exactly ``dp.max_degree``),
        ``empty`` (three quarters of the rows have no edge), ``selfloop`` (every node has a
        self loop, half of them two), ``duplicate`` (edges repeated 1-4 times),
        ``saturate`` (extreme codes and a hub row whose degree drives the accumulator into
        saturation; the case's design is ``dp`` with ``max_degree`` reduced to at most 8 and
        the derived accumulator width, the narrowest the design point allows, so the hub
        exceeds ``max_degree``).
    num_nodes : int
        ``N`` (= ``N_src``).
    num_features : int, optional
        ``F``; defaults to ``dp.lanes`` (one datapath word per edge).
    msg, upd : bool, optional
        Override the design's requantizer switches (the case's design is updated to match).

    Returns
    -------
    GoldenCase
    """
    if kind not in KINDS:
        raise QuantError(f"kind must be one of {list(KINDS)}, not {kind!r}")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise QuantError(f"num_nodes must be a positive int, not {num_nodes!r}")
    f = dp.lanes if num_features is None else num_features
    if isinstance(f, bool) or not isinstance(f, int) or f < 1:
        raise QuantError(f"num_features must be a positive int, not {f!r}")
    rng = np.random.default_rng(seed)
    design = dp
    if msg is not None or upd is not None:
        design = design.replace(msg_requant=dp.msg_requant if msg is None else msg,
                                upd_requant=dp.upd_requant if upd is None else upd)
    if kind == "saturate":
        design = design.replace(max_degree=min(design.max_degree, 8), acc_bits=None)
    params = params_for_design(design, rng, typical_degree=3.0)
    fs, ws = params.x_spec, params.w_spec
    x = None
    if kind == "saturate":
        # every code at the extreme furthest from its zero point (10 % of feature codes
        # reversed), and a hub row long enough for the sum to pass the accumulator's bound
        x_ext = fs.qmax if fs.qmax - params.x_zero >= params.x_zero - fs.qmin else fs.qmin
        w_ext = ws.qmax if ws.qmax - params.w_zero >= params.w_zero - ws.qmin else ws.qmin
        per_edge = abs((x_ext - params.x_zero) * (w_ext - params.w_zero))
        if params.msg is not None:  # a message stage that passes the extreme on at full range
            ms = params.msg.spec
            p_ext = (x_ext - params.x_zero) * (w_ext - params.w_zero)
            m, n = derive_multiplier((ms.levels - 1) / abs(p_ext), design.mult_bits)
            params = dataclasses.replace(params, msg=Requantizer(
                m, n, ms.qmin if p_ext > 0 else ms.qmax, ms))
            per_edge = abs(int(params.msg(np.array([p_ext]))[0]) - params.msg.zero_point)
        hi = (1 << (params.acc_bits - 1)) - 1
        sat_degree = int(hi / max(per_edge, 1) / 0.75) + int(rng.integers(2, 9))
        src, dst = _edges(kind, rng, num_nodes, design, sat_degree)
        g = csr_from_edge_index(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)]),
                                num_nodes)
        x = np.full((num_nodes, f), x_ext, dtype=np.int64)
        x[rng.random(x.shape) < 0.1] = fs.qmin if x_ext == fs.qmax else fs.qmax
        w = np.full(g.num_edges, w_ext, dtype=np.int64)
    else:
        src, dst = _edges(kind, rng, num_nodes, design, 0)
        g = csr_from_edge_index(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)]),
                                num_nodes)
        x = rng.integers(fs.qmin, fs.qmax + 1, size=(num_nodes, f))
        w = rng.integers(ws.qmin, ws.qmax + 1, size=g.num_edges)
    if kind != "saturate":
        params = _calibrate_out(params, design.mult_bits, g.indptr, g.indices, w, x, rng)
    name = name or f"{design.key()}-{kind}-s{seed}"
    return _finish(name, design, params, g.indptr, g.indices, w, x,
                   {"seed": int(seed), "generator": f"sim.verify.golden.make_random_case/{kind}",
                    "source": "random", "kind": kind})


def _calibrate_out(params: AggregationParams, mult_bits: int, indptr, indices, w, x,
                   rng: np.random.Generator) -> AggregationParams:
    """Re-derive the aggregate requantizer so the case's row sums spread over the output
    codes (a random factor in [1/2, 2] and a zero point near the low end make both ends clamp
    sometimes)."""
    acc, _ = accumulate(indptr, indices, w, x, params)
    lo, hi = (int(acc.min()), int(acc.max())) if acc.size else (0, 0)
    spec = params.out.spec
    if hi == lo:
        return params
    ratio = (spec.levels - 1) / (hi - lo) * float(2.0 ** rng.uniform(-1, 1))
    m, n = derive_multiplier(ratio, mult_bits)
    z = int(np.clip(spec.qmin - round(lo * m * 2.0 ** -n) + int(rng.integers(-1, 2)),
                    spec.qmin, spec.qmax))
    return dataclasses.replace(params, out=Requantizer(m, n, z, spec))


def _finish(name: str, design: DesignPoint, params: AggregationParams, indptr, indices, w, x,
            meta: dict) -> GoldenCase:
    res = aggregate(indptr, indices, w, x, params)
    meta = {"contract_version": quant.CONTRACT_VERSION, "numpy": np.__version__, **meta}
    return GoldenCase(name=name, design=design, params=params, indptr=indptr, indices=indices,
                      w=w, x=x, y=res.y, saturations=res.saturations, meta=meta)


def make_suite(dp: DesignPoint, count: int, seed: int, num_nodes: int = 16,
               num_features: int | None = None) -> list[GoldenCase]:
    """``count`` cases cycling through :data:`KINDS` (and msg/upd on/off when the design
    enables them), with seeds ``seed, seed + 1, ...``."""
    cases = []
    for k in range(count):
        kind = KINDS[k % len(KINDS)]
        cases.append(make_random_case(dp, seed + k, kind=kind, num_nodes=num_nodes,
                                      num_features=num_features,
                                      name=f"{dp.key()}-{k:03d}-{kind}-s{seed + k}"))
    return cases


def case_from_propagation(name: str, design: DesignPoint, params: AggregationParams,
                          indptr: np.ndarray, indices: np.ndarray, w: np.ndarray, x: np.ndarray,
                          source: str, seed: int | None = None, **meta) -> GoldenCase:
    """A golden case from a real layer's propagation step (arrays + its parameters).

    ``design`` must agree with ``params`` (feature bits and signedness, weight bits, and an
    accumulator at least ``params.acc_bits`` wide is the caller's business: the case records
    ``params.acc_bits`` as the value to drive).  ``source`` names where the layer came from
    (e.g. ``"model:runs/cora-int4/model.qgm#layer1.prop0"``).
    """
    if params.x_spec.bits != design.bits or params.x_spec.signed != design.signed:
        raise QuantError(f"params.x_spec must match the design's bits={design.bits}, "
                         f"signed={design.signed}, not {params.x_spec}")
    return _finish(name, design, params, indptr, indices, w, x,
                   {"seed": seed, "generator": "sim.verify.golden.case_from_propagation",
                    "source": source, **meta})


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------

def save_case(case: GoldenCase, directory: str | Path) -> tuple[Path, Path]:
    """Write ``<dir>/<name>.npz`` and ``<dir>/<name>.json`` atomically; returns both paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: getattr(case, k) for k in ARRAYS})
    npz, js = d / f"{case.name}.npz", d / f"{case.name}.json"
    write_bytes_atomic(npz, buf.getvalue())
    write_bytes_atomic(js, (json.dumps(case.header(), indent=1, sort_keys=True) + "\n").encode())
    return npz, js


def _fail(path: Path, what: str) -> GoldenFormatError:
    return GoldenFormatError(f"golden case {str(path)!r}: {what}")


def _read_json(path: Path, missing: str = "file does not exist"):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise _fail(path, missing) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"is not valid JSON ({exc})") from None


def load_case(path: str | Path) -> GoldenCase:
    """Load and validate a case from ``<name>.json`` (or its stem / ``.npz`` path).

    Raises
    ------
    GoldenFormatError
        Unknown format, another format or contract version, missing or extra arrays, wrong
        dtype or shape, or a checksum mismatch; the message names the file and the field.
    """
    p = Path(path)
    if p.suffix in (".json", ".npz"):
        p = p.with_suffix("")
    js, npz = p.with_name(p.name + ".json"), p.with_name(p.name + ".npz")
    head = _read_json(js)
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise _fail(js, f"format must be {FORMAT!r}, not {head.get('format') if isinstance(head, dict) else head!r}")
    if head.get("format_version") != FORMAT_VERSION:
        raise _fail(js, f"format_version must be {FORMAT_VERSION}, not {head.get('format_version')!r}")
    if head.get("contract_version") != quant.CONTRACT_VERSION:
        raise _fail(js, f"contract_version must be {quant.CONTRACT_VERSION} (this build's numerics "
                        f"contract), not {head.get('contract_version')!r}")
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise _fail(npz, "file does not exist") from None
    except (OSError, ValueError) as exc:
        raise _fail(npz, f"is not a readable .npz ({exc})") from None
    if set(arrays) != set(ARRAYS):
        raise _fail(npz, f"arrays must be {sorted(ARRAYS)}, not {sorted(arrays)}")
    for k, dt in ARRAYS.items():
        want = head.get("arrays", {}).get(k, {})
        if arrays[k].dtype != np.dtype(dt) or list(arrays[k].shape) != want.get("shape"):
            raise _fail(npz, f"array {k} must be {np.dtype(dt)} {want.get('shape')}, "
                             f"not {arrays[k].dtype} {list(arrays[k].shape)}")
    got = _checksum(arrays)
    if got != head.get("checksum"):
        raise _fail(npz, f"checksum must be {head.get('checksum')!r}, not {got!r} (corrupted or edited)")
    try:
        design = DesignPoint.from_dict(head["design"])
        params = AggregationParams.from_dict(head["params"])
        case = GoldenCase(name=head["name"], design=design, params=params,
                          saturations=int(head["saturations"]), meta=dict(head.get("meta", {})),
                          **arrays)
    except KeyError as exc:
        raise _fail(js, f"missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise _fail(js, str(exc)) from None
    if case.name != p.name:
        raise _fail(js, f"name must be {p.name!r} (the file stem), not {case.name!r}")
    if head.get("design_key") != design.key():
        raise _fail(js, f"design_key must be {design.key()!r}, not {head.get('design_key')!r}")
    return case


def save_cases(cases: list[GoldenCase], directory: str | Path) -> Path:
    """Write every case and a manifest ``index.json`` listing them; returns the manifest."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise GoldenFormatError(f"case names must be unique, not {sorted(names)}")
    for c in cases:
        save_case(c, d)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "contract_version": quant.CONTRACT_VERSION,
                "cases": [{"name": c.name, "checksum": c.checksum(), "kind": c.meta.get("kind"),
                           "design_key": c.design.key(), "num_nodes": c.num_nodes,
                           "num_edges": c.num_edges, "num_features": c.num_features,
                           "saturations": c.saturations} for c in cases]}
    path = d / MANIFEST
    write_bytes_atomic(path, (json.dumps(manifest, indent=1) + "\n").encode())
    return path


def load_cases(directory: str | Path) -> list[GoldenCase]:
    """Load every case listed in ``<dir>/index.json`` (in its order), validating each."""
    d = Path(directory)
    path = d / MANIFEST
    manifest = _read_json(path, "file does not exist (not a golden-vector directory)")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"format must be {FORMAT!r} version {FORMAT_VERSION}, not "
                          f"{manifest.get('format')!r} version {manifest.get('format_version')!r}")
    cases = []
    for entry in manifest.get("cases", []):
        c = load_case(d / entry["name"])
        if c.checksum() != entry.get("checksum"):
            raise _fail(path, f"checksum of case {c.name!r} must be {c.checksum()!r}, "
                              f"not {entry.get('checksum')!r}")
        cases.append(c)
    return cases
