"""The ``host`` design point: the CPU the benchmarks run on, as measured by a probe.

:class:`HostPoint` is a frozen, validated record of what :mod:`quagga.bench.host_probe`
measured on one machine: cache sizes (from the OS), SIMD width, clock, STREAM-like stream
bandwidth, random-row gather rates and first-touch write rates at several working-set sizes,
and each aggregation kernel's costs: per call, row and edge on cache-resident micro-graphs,
and per row and edge from uniform tables of each probe size.  The CPU model
(:mod:`sim.accel.host_model`) reads only this record.  Nothing here probes the
machine (and nothing imports torch): a probe file is written by ``quagga.bench`` and read
here with every field checked, errors naming the field and the value.

Stdlib + ``quant`` only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sim.design.point import DesignError, DesignPoint

__all__ = ["HOST_FORMAT", "HOST_KERNELS", "CacheLevel", "GatherRate", "HostPoint", "KernelCost",
           "StreamRate", "TouchRate", "load_host"]

#: ``format`` tag and version of a probe file
HOST_FORMAT = "quagga-host-probe"
HOST_VERSION = 1
#: aggregation kernels whose compute cost a probe calibrates (``own_fp32`` is the FP32 row
#: kernel of ``quagga.bench.fp32_spmm``; ``int<b>`` the packed kernel at ``b`` bits)
HOST_KERNELS = ("own_fp32", "int2", "int4", "int8")


def _num(owner: str, field: str, v: Any, lo: float = 0.0, strict: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or (v <= lo if strict else v < lo):
        rel = ">" if strict else ">="
        raise DesignError(f"{owner}.{field} must be a finite number {rel} {lo:g}, not {v!r}")
    return float(v)


def _int(owner: str, field: str, v: Any, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise DesignError(f"{owner}.{field} must be an int >= {lo}, not {v!r}")
    return v


@dataclass(frozen=True)
class CacheLevel:
    """One cache of the host, as the OS reports it.

    Parameters
    ----------
    level : int
        1, 2, 3, ...
    kind : str
        ``Data``, ``Instruction`` or ``Unified``.
    size_bytes : int
        Capacity of one instance, bytes.
    shared_cpus : int
        Logical CPUs sharing one instance.
    """

    level: int
    kind: str
    size_bytes: int
    shared_cpus: int = 1

    def __post_init__(self) -> None:
        _int("cache", "level", self.level)
        if self.kind not in ("Data", "Instruction", "Unified"):
            raise DesignError(f"cache.kind must be Data, Instruction or Unified, not {self.kind!r}")
        _int("cache", "size_bytes", self.size_bytes)
        _int("cache", "shared_cpus", self.shared_cpus)


@dataclass(frozen=True)
class StreamRate:
    """Sequential bandwidth at one working-set size.

    Parameters
    ----------
    size_bytes : int
        Bytes of the arrays the probe streamed over (the working set).
    read_bps, copy_bps, triad_bps : float
        bytes/s: a read-only integer sum, ``b = a`` (16 B per element counted) and
        ``a = b + s c`` (24 B per element counted), all threads together.
    """

    size_bytes: int
    read_bps: float
    copy_bps: float
    triad_bps: float

    def __post_init__(self) -> None:
        _int("stream", "size_bytes", self.size_bytes)
        for f in ("read_bps", "copy_bps", "triad_bps"):
            _num("stream", f, getattr(self, f))


@dataclass(frozen=True)
class GatherRate:
    """Random-row gather rate: rows of ``row_bytes`` read at uniformly random row indices
    (uint32, streamed) from a table of ``table_bytes``.

    Parameters
    ----------
    row_bytes : int
        Bytes of one gathered row.
    table_bytes : int
        Bytes of the table (the gather's working set).
    rows_per_s : float
        Rows gathered per second, all threads together.
    """

    row_bytes: int
    table_bytes: int
    rows_per_s: float

    def __post_init__(self) -> None:
        _int("gather", "row_bytes", self.row_bytes)
        _int("gather", "table_bytes", self.table_bytes)
        _num("gather", "rows_per_s", self.rows_per_s)


@dataclass(frozen=True)
class TouchRate:
    """First-touch write rate: bytes/s of writing every byte of a freshly allocated array of
    ``size_bytes`` (the page faults included), all threads together.  A kernel that allocates
    its output per call pays it on every call.

    Parameters
    ----------
    size_bytes : int
        Bytes of the fresh array.
    bps : float
        Bytes written per second.
    """

    size_bytes: int
    bps: float

    def __post_init__(self) -> None:
        _int("first_touch", "size_bytes", self.size_bytes)
        _num("first_touch", "bps", self.bps)


@dataclass(frozen=True)
class KernelCost:
    """Compute cost of one aggregation kernel, ``t = call_s + row_s N + edge_s E`` (seconds
    with the probe's threads), fitted by non-negative least squares on cache-resident
    micro-graphs (tables of at most ``calibration_table_bytes``), never on a benchmark graph.

    Parameters
    ----------
    kernel : str
        One of :data:`HOST_KERNELS`.
    call_s, row_s, edge_s : float
        Seconds per call, per destination row and per edge (>= 0).
    calibration : str
        How the constants were measured (graphs, repeats).
    fit_residual : float
        Largest relative residual of the fit over the calibration points.
    table_costs : tuple of (int, float, float)
        ``(table_bytes, row_s, edge_s)`` at increasing source-table sizes: the kernel's
        seconds per destination row and per edge when every gather reads a uniformly random
        row of a ``table_bytes`` table, measured on two large uniform micro-graphs per size
        (the same edges at two degrees) with the call and output terms taken out.  They hold
        the kernel's own gathers, its index and weight streams and however many of its misses
        overlap, within a row and across row boundaries.  Empty for a probe without them (the
        model then uses the probe's gather and stream rates).
    table_edges : int
        Edges of the uniform micro-graphs ``table_costs`` was measured on (0 without them):
        with the table's rows it gives those graphs' own access skew.
    """

    kernel: str
    call_s: float
    row_s: float
    edge_s: float
    calibration: str = ""
    fit_residual: float = 0.0
    table_costs: tuple[tuple[int, float, float], ...] = ()
    table_edges: int = 0

    def __post_init__(self) -> None:
        if self.kernel not in HOST_KERNELS:
            raise DesignError(f"kernel_costs.kernel must be one of {HOST_KERNELS}, not {self.kernel!r}")
        for f in ("call_s", "row_s", "edge_s", "fit_residual"):
            _num(f"kernel_costs[{self.kernel}]", f, getattr(self, f), strict=False)
        _int(f"kernel_costs[{self.kernel}]", "table_edges", self.table_edges, lo=0)
        owner = f"kernel_costs[{self.kernel}].table_costs"
        rows = self.table_costs
        if not isinstance(rows, (tuple, list)):
            raise DesignError(f"{owner} must be a list of [table_bytes, row_s, edge_s], not {rows!r}")
        out = []
        for i, e in enumerate(rows):
            if not isinstance(e, (tuple, list)) or len(e) != 3:
                raise DesignError(f"{owner}[{i}] must be a [table_bytes, row_s, edge_s] triple, not {e!r}")
            out.append((_int(f"{owner}[{i}]", "table_bytes", e[0]),
                        _num(f"{owner}[{i}]", "row_s", e[1], strict=False),
                        _num(f"{owner}[{i}]", "edge_s", e[2], strict=False)))
        if any(b[0] <= a[0] for a, b in zip(out, out[1:])):
            raise DesignError(f"{owner} must list increasing table sizes, not {[r[0] for r in out]}")
        object.__setattr__(self, "table_costs", tuple(out))


@dataclass(frozen=True, kw_only=True)
class HostPoint:
    """The measured host: the design point of the CPU model (:mod:`sim.accel.host_model`).

    Parameters
    ----------
    name : str
        Label (``host``).
    cpu : str
        CPU model name.
    logical_cpus : int
        Logical CPUs the OS shows.
    threads : int
        Threads every rate and cost below was measured with.
    simd_bytes : int
        Widest SIMD register the CPU flags announce (64 for AVX-512, 32 AVX2, 16 SSE2).
    clock_hz : float
        Core clock measured by a dependent integer chain, Hz.
    clock_hz_reported : float
        The clock ``/proc/cpuinfo`` reports (0 when unknown), Hz.
    caches : tuple of CacheLevel
    stream : tuple of StreamRate
        Increasing ``size_bytes``.
    gather : tuple of GatherRate
    first_touch : tuple of TouchRate
        Increasing ``size_bytes``; empty in older probes (no output term then).
    kernel_costs : tuple of KernelCost
    load_average : tuple of float
        1/5/15-minute load averages when the probe ran.
    measured_at : str
        UTC time of the probe (ISO 8601).
    statistic : str
        ``median``: every time is the median wall time of the probe's repeats, and predictions
        are compared with the benchmark's medians; ``best``: the fastest repeat, compared with
        the benchmark's fastest rounds; ``busy``: the median busy time (process CPU seconds /
        threads), compared with the benchmark's busy time.
    """

    name: str = "host"
    cpu: str = "unknown"
    logical_cpus: int = 1
    threads: int = 1
    simd_bytes: int = 16
    clock_hz: float = 1e9
    clock_hz_reported: float = 0.0
    caches: tuple[CacheLevel, ...] = ()
    stream: tuple[StreamRate, ...] = ()
    gather: tuple[GatherRate, ...] = ()
    first_touch: tuple[TouchRate, ...] = ()
    kernel_costs: tuple[KernelCost, ...] = ()
    load_average: tuple[float, ...] = ()
    measured_at: str = ""
    statistic: str = "median"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DesignError(f"name must be a non-empty string, not {self.name!r}")
        _int("host", "logical_cpus", self.logical_cpus)
        _int("host", "threads", self.threads)
        _int("host", "simd_bytes", self.simd_bytes)
        _num("host", "clock_hz", self.clock_hz)
        _num("host", "clock_hz_reported", self.clock_hz_reported, strict=False)
        if self.statistic not in ("median", "best", "busy"):
            raise DesignError(f"statistic must be 'median', 'best' or 'busy', not {self.statistic!r}")
        for f, typ in (("caches", CacheLevel), ("stream", StreamRate), ("gather", GatherRate),
                       ("first_touch", TouchRate), ("kernel_costs", KernelCost)):
            v = getattr(self, f)
            if not isinstance(v, tuple) or not all(isinstance(x, typ) for x in v):
                raise DesignError(f"{f} must be a tuple of {typ.__name__}, not {v!r}")
        if not self.stream:
            raise DesignError("stream must hold at least one measured size, not ()")
        if not self.gather:
            raise DesignError("gather must hold at least one measured size, not ()")

    # ----------------------------------------------------------------- lookups
    def cache_bytes(self, level: int) -> int:
        """Capacity of the data/unified cache at ``level`` (0 when the OS reports none)."""
        sizes = [c.size_bytes for c in self.caches if c.level == level and c.kind != "Instruction"]
        return max(sizes, default=0)

    def cost(self, kernel: str) -> KernelCost:
        """The calibrated :class:`KernelCost` of ``kernel``.

        Raises
        ------
        DesignError
            When the probe did not calibrate ``kernel``.
        """
        for c in self.kernel_costs:
            if c.kernel == kernel:
                return c
        raise DesignError(f"kernel {kernel!r} has no calibrated cost in this host probe; "
                          f"calibrated: {[c.kernel for c in self.kernel_costs]}")

    def cache_level_of(self, size_bytes: float) -> str:
        """The smallest cache level holding ``size_bytes`` (L2 per core, L3 shared), or ``DRAM``."""
        for level in (1, 2, 3, 4):
            cap = self.cache_bytes(level)
            if cap and size_bytes <= cap:
                return f"L{level}"
        return "DRAM"

    def design_point(self, bits: int = 4) -> DesignPoint:
        """The host in the accelerator template's terms: one aggregation unit per thread with
        a SIMD-wide datapath at the measured clock, the L2 as feature buffer and the largest
        measured streaming read rate as DRAM bandwidth."""
        return DesignPoint(name=self.name, bits=bits, word_bits=8 * self.simd_bytes,
                           clock_hz=self.clock_hz, dram="DDR4",
                           dram_bandwidth_gbs=self.stream[-1].read_bps / 1e9,
                           agg_units=self.threads,
                           feature_buffer_kib=max(1, self.cache_bytes(2) // 1024))

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["load_average"] = list(self.load_average)
        return {"format": HOST_FORMAT, "version": HOST_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> "HostPoint":
        """Rebuild a probe from :meth:`to_dict` output, checking every field.

        Raises
        ------
        DesignError
            Wrong format tag or version, an unknown or missing key, or a bad value (the
            message names the field and the value).
        """
        if not isinstance(d, dict):
            raise DesignError(f"host probe must be a JSON object, not {type(d).__name__}")
        d = dict(d)
        if d.pop("format", None) != HOST_FORMAT:
            raise DesignError(f"host probe format must be {HOST_FORMAT!r}, not {d.get('format')!r}")
        if d.pop("version", None) != HOST_VERSION:
            raise DesignError(f"host probe version must be {HOST_VERSION}, not {d.get('version')!r}")
        known = set(cls.__dataclass_fields__)
        for k in d:
            if k not in known:
                raise DesignError(f"host probe key {k!r} is unknown; known keys: {sorted(known)}")
        subs = {"caches": CacheLevel, "stream": StreamRate, "gather": GatherRate,
                "first_touch": TouchRate, "kernel_costs": KernelCost}
        for k, typ in subs.items():
            if k in d:
                rows = d[k]
                if not isinstance(rows, list):
                    raise DesignError(f"{k} must be a list of tables, not {rows!r}")
                built = []
                for i, r in enumerate(rows):
                    if not isinstance(r, dict):
                        raise DesignError(f"{k}[{i}] must be a table, not {r!r}")
                    try:
                        built.append(typ(**r))
                    except TypeError as exc:
                        raise DesignError(f"{k}[{i}] has bad keys {sorted(r)}: {exc}") from None
                d[k] = tuple(built)
        if "load_average" in d:
            la = d["load_average"]
            if not isinstance(la, list) or not all(isinstance(x, (int, float)) for x in la):
                raise DesignError(f"load_average must be a list of numbers, not {la!r}")
            d["load_average"] = tuple(float(x) for x in la)
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        """Write the probe as JSON atomically (no partial file on failure)."""
        from quant.fileio import write_text_atomic

        return write_text_atomic(path, self.to_json())


def load_host(path: str | Path) -> HostPoint:
    """Read a probe file written by :meth:`HostPoint.save`.

    Raises
    ------
    DesignError
        A missing or unreadable file (the message says how to make one), bad JSON, or any
        invalid field.
    """
    p = Path(path)
    if not p.is_file():
        raise DesignError(f"host probe file {str(p)!r} does not exist; measure one with "
                          f"'python -m quagga.bench.host_probe --out {p}' or 'quagga bench --probe "
                          f"--host-probe {p}'")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DesignError(f"host probe file {str(p)!r} is not valid JSON: {exc}") from None
    return HostPoint.from_dict(data)
