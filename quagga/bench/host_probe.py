"""Measure the host for the CPU model: the ``host`` design point.

:func:`probe` returns a :class:`sim.design.host.HostPoint` from

* **the OS**: caches from ``<sysfs>/devices/system/cpu/cpu0/cache/index*/{level,type,size,
  shared_cpu_list}`` (fallback ``os.sysconf``), CPU model, SIMD flags and reported clock from
  ``/proc/cpuinfo`` (:func:`read_caches`, :func:`read_cpuinfo`; both take the path, so tests
  feed them a fake tree);
* **a clock probe**: a dependent chain of shift, xor and add (3 cycles per iteration on any
  out-of-order x86 or Arm core, one thread), :func:`measure_clock`;
* **STREAM-like streams** (:func:`measure_streams`): read-only integer sum (the rate the
  model uses), copy and triad (recorded)
  over arrays of several working-set sizes (in L1, L2, L3 and DRAM), all threads;
* **random-row gathers** (:func:`measure_gathers`): rows of 16, 32, 64 and 256 bytes at
  uniformly random uint32 row indices (a streamed index array) from tables of the same sizes,
  one load per 64-byte line of a row (the line traffic, not the arithmetic);
* **first touch** (:func:`measure_first_touch`): writing a freshly allocated array of 64 KiB
  to 256 MiB, as the kernels allocate and write their outputs on every call;
* **kernel costs** (:func:`calibrate_kernels`): each aggregation kernel the benchmark times
  (our FP32 row kernel and the packed INT2/INT4/INT8 kernel, F = 64) run on micro-graphs
  whose source table is 64 rows (16 KiB in FP32: in L1) with 64 to 16,384 destination rows
  of 1 to 64 uniformly random edges (at most 64k edges: every stream stays in L2), fitted
  ``t = call + row N + edge E`` (less the output's first touch) by non-negative least
  squares; then **per-row and per-edge costs by table size** (:func:`table_costs`): the
  kernel on two uniform graphs of 2**21 edges (:data:`TABLE_GRAPHS`, degrees 4 and 32) whose
  source table is each probe size,
  less the call and output terms.  These are not the benchmark graphs, and nothing is
  fitted to a benchmark result; the constants are measured once per probe and saved with it.
  The table-size graph is uniform, like the synthetic benchmark graph (which has 500k rows of
  11 edges on average), so that graph checks the model less than a real, skewed graph does.

Every rate is measured with the threads the benchmark will use (``threads``) and reported as
the median wall time (``statistic="median"``, compared with the benchmark's medians), the
fastest (``"best"``, compared with its fastest rounds) or the median busy time (``"busy"``:
process CPU seconds / threads, compared with the benchmark's ``busy_s``; on a machine shared
with other jobs it leaves out the time the scheduler gave to them, on both sides) of
``repeats`` calls after one warm-up.  Run ``python -m quagga.bench.host_probe
--threads 2 --out host.json`` (or ``quagga bench --probe --host-probe host.json``) and pass
the file to ``quagga bench --host-probe``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numba import njit, prange

from quagga.bench import machine
from sim.accel.host_model import touch_bandwidth
from sim.design.host import CacheLevel, GatherRate, HostPoint, KernelCost, StreamRate, TouchRate

log = logging.getLogger(__name__)

__all__ = ["GATHER_ROW_BYTES", "PROBE_SIZES", "TABLE_GRAPHS", "TOUCH_SIZES", "calibrate_kernels",
           "kernel_out_bytes", "kernel_row_bytes", "measure_clock", "measure_first_touch", "measure_gathers",
           "measure_streams", "parse_size", "probe", "read_caches", "read_cpuinfo", "simd_bytes",
           "table_costs"]

#: working-set sizes of the stream and gather probes, bytes (L1, L2, L3-sized, DRAM)
PROBE_SIZES = (16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20)
#: gathered row widths, bytes (INT2, INT4, INT8 and FP32 rows at F = 64)
GATHER_ROW_BYTES = (16, 32, 64, 256)
#: fresh-array sizes of the first-touch probe, bytes
TOUCH_SIZES = (64 << 10, 1 << 20, 16 << 20, 256 << 20)


# --------------------------------------------------------------------------- the OS
def parse_size(text: str) -> int:
    """A sysfs cache size (``32K``, ``1024K``, ``32M``, ``512``) in bytes.

    Raises
    ------
    ValueError
        For text that is not a size.
    """
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in "KMG" and t[-1:] else t
    if not digits.isdigit():
        raise ValueError(f"cache size must look like 32K, 1M or 512, not {text!r}")
    return int(digits) * mult


def _cpu_count_in_list(text: str) -> int:
    """Number of CPUs in a sysfs list such as ``0-1,4``."""
    n = 0
    for part in text.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        n += (int(b) - int(a) + 1) if b else 1
    return max(n, 1)


def read_caches(sysfs_root: str | Path = "/sys") -> list[CacheLevel]:
    """The caches of CPU 0 from ``<sysfs_root>/devices/system/cpu/cpu0/cache/index*``.

    Falls back to ``os.sysconf`` (``SC_LEVEL{1,2,3}_*CACHE_SIZE``) when the tree is missing;
    returns ``[]`` when neither says anything.
    """
    base = Path(sysfs_root) / "devices" / "system" / "cpu" / "cpu0" / "cache"
    out = []
    for d in sorted(base.glob("index*")):
        try:
            level = int((d / "level").read_text())
            kind = (d / "type").read_text().strip()
            size = parse_size((d / "size").read_text())
            shared_file = d / "shared_cpu_list"
            shared = _cpu_count_in_list(shared_file.read_text()) if shared_file.is_file() else 1
        except (OSError, ValueError) as exc:
            log.warning("skipping cache entry %s: %s", d, exc)
            continue
        out.append(CacheLevel(level, kind, size, shared))
    if out:
        return out
    for level, kind, key in ((1, "Data", "SC_LEVEL1_DCACHE_SIZE"), (2, "Unified", "SC_LEVEL2_CACHE_SIZE"),
                             (3, "Unified", "SC_LEVEL3_CACHE_SIZE")):
        try:
            v = os.sysconf(key)
        except (ValueError, OSError, AttributeError):
            continue
        if v and v > 0:
            out.append(CacheLevel(level, kind, int(v), 1))
    return out


def simd_bytes(flags: set[str]) -> int:
    """Widest SIMD register the flags announce: 64 (avx512f), 32 (avx2/avx), 16 (sse2/neon),
    else 8."""
    if "avx512f" in flags:
        return 64
    if "avx2" in flags or "avx" in flags:
        return 32
    if "sse2" in flags or "asimd" in flags or "neon" in flags:
        return 16
    return 8


def read_cpuinfo(path: str | Path = "/proc/cpuinfo") -> dict:
    """Model name, flags, SIMD width and reported clock of the first CPU in ``path``.

    Returns
    -------
    dict
        ``cpu`` (str), ``flags`` (set of str), ``simd_bytes`` (int), ``mhz`` (float, 0 if
        absent).
    """
    cpu, flags, mhz = "unknown", set(), 0.0
    try:
        text = Path(path).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key == "model name" and cpu == "unknown":
            cpu = val.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(val.split())
        elif key == "cpu MHz" and not mhz:
            try:
                mhz = float(val)
            except ValueError:
                pass
    return {"cpu": cpu, "flags": flags, "simd_bytes": simd_bytes(flags), "mhz": mhz}


# --------------------------------------------------------------------------- probe kernels
@njit(cache=True)
def _chain(n, x):
    for i in range(n):
        x = (x ^ (x >> np.uint64(7))) + np.uint64(i)
    return x


@njit(cache=True)
def _sum_all(v, reps):
    # ``range(v.shape[0])``: an index numba knows is non-negative, so the loop vectorises
    # (a ``range(lo, hi)`` index gets negative-index fix-ups and stays scalar)
    s = np.uint64(0)
    for _ in range(reps):
        for i in range(v.shape[0]):
            s += v[i]
    return s


@njit(cache=True)
def _copy_all(a, c, reps):
    for _ in range(reps):
        for i in range(a.shape[0]):
            c[i] = a[i]


@njit(cache=True)
def _triad_all(a, b, c, s, reps):
    for _ in range(reps):
        for i in range(a.shape[0]):
            a[i] = b[i] + s * c[i]


@njit(cache=True, parallel=True)
def _read_sum(a, blocks, reps):
    per = (a.shape[0] + blocks - 1) // blocks
    out = np.empty(blocks, dtype=np.uint64)  # set for every block: one parallel region
    for b in prange(blocks):
        out[b] = _sum_all(a[b * per:(b + 1) * per], reps)
    return out


@njit(cache=True, parallel=True)
def _copy(a, c, blocks, reps):
    per = (a.shape[0] + blocks - 1) // blocks
    for b in prange(blocks):
        _copy_all(a[b * per:(b + 1) * per], c[b * per:(b + 1) * per], reps)
    return c


@njit(cache=True, parallel=True)
def _triad(a, b_, c, s, blocks, reps):
    per = (a.shape[0] + blocks - 1) // blocks
    for b in prange(blocks):
        lo = b * per
        _triad_all(a[lo:lo + per], b_[lo:lo + per], c[lo:lo + per], s, reps)
    return a


_GATHERS: dict[int, Callable] = {}


def _gather_kernel(words: int) -> Callable:
    """A gather kernel for rows of ``words`` uint64 words that loads one word of every 64-byte
    line of a row (the row width a compile-time constant): it measures the line traffic of
    random rows, not the arithmetic on them, which the kernel costs hold."""
    lines = max(1, words // 8)
    if words not in _GATHERS:
        @njit(parallel=True)
        def gather(table, idx, blocks):
            per = (idx.shape[0] + blocks - 1) // blocks
            out = np.empty(blocks, dtype=np.uint64)  # set for every block
            for b in prange(blocks):
                s = np.uint64(0)
                for j in range(b * per, min(idx.shape[0], (b + 1) * per)):
                    base = np.int64(idx[j]) * words
                    for k in range(lines):
                        s += table[base + 8 * k]
                out[b] = s
            return out

        _GATHERS[words] = gather
    return _GATHERS[words]


@njit(cache=True, parallel=True)
def _touch(n, blocks):
    a = np.empty(n, dtype=np.uint8)
    per = (n + blocks - 1) // blocks
    for b in prange(blocks):
        a[b * per:min(n, (b + 1) * per)] = 1
    return a[n - 1]


def measure_first_touch(threads: int, sizes: tuple[int, ...] = TOUCH_SIZES, repeats: int = 15,
                        statistic: str = "median", streams: tuple[StreamRate, ...] = ()
                        ) -> list[TouchRate]:
    """Write rate of a freshly allocated array at each size (bytes/s, all threads): a numba
    call that allocates ``size`` bytes and writes every byte, as a kernel allocates and writes
    its output, the page faults included, less the same call on 64 bytes (the call term).
    Whether an array gets fresh pages follows the allocator (glibc maps large arrays anew each
    time and reuses smaller ones), as it does for the kernels' outputs.

    The two calls of a size alternate round by round.  A small array's write can take less
    time than the spread of the call term, so the difference is bounded below by the write at
    the stream copy rate of the nearest measured working set (``streams``; without them, by
    1 ns): no rate above what the caches stream is recorded."""
    blocks = max(1, threads)
    out = []
    for size in sizes:
        # the parallel call itself (a 64-byte array) is the kernels' call term, not the output's
        t0, t = _time_alternating([lambda: _touch(64, blocks),
                                   lambda size=size: _touch(size, blocks)],
                                  repeats, statistic, threads)
        floor = size / _stream_copy_bps(streams, size) if streams else 1e-9
        out.append(TouchRate(int(size), size / max(t - t0, floor)))
        log.info("first touch of %d KiB: %.1f GB/s", size >> 10, out[-1].bps / 1e9)
    return out


def _stream_copy_bps(streams: tuple[StreamRate, ...], size: int) -> float:
    """The copy rate (bytes/s) of the stream working set nearest ``size`` in log2."""
    near = min(streams, key=lambda s: abs(np.log2(s.size_bytes) - np.log2(size)))
    return near.copy_bps


STATISTICS = ("median", "best", "busy")


def _time(fn: Callable[[], object], repeats: int, statistic: str = "median", threads: int = 1
          ) -> float:
    """Seconds of one call of ``fn`` after a warm-up: the median (``median``) or the fastest
    (``best``) wall time of ``repeats`` calls, or the median busy time (``busy``: process CPU
    seconds / ``threads``, which leaves out the time the scheduler gave other processes)."""
    return _time_alternating([fn], repeats, statistic, threads)[0]


def _time_alternating(fns: list[Callable[[], object]], repeats: int, statistic: str = "median",
                      threads: int = 1) -> list[float]:
    """:func:`_time` of each of ``fns``, their calls alternating: one warm-up each, then
    ``repeats`` rounds in which every callable runs once."""
    for fn in fns:
        fn()
    ts: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            ts[k].append((time.process_time() - c0) / threads if statistic == "busy"
                         else time.perf_counter() - t0)
    return [min(t) if statistic == "best" else float(statistics.median(t)) for t in ts]


def measure_clock(repeats: int = 51, iterations: int = 2_000_000) -> float:
    """Core clock, Hz, from a dependent shift-xor-add chain (3 single-cycle ops in series per
    iteration), on one thread.  A clock is a peak rate, so the fastest of ``repeats`` short
    runs (a few ms each, shorter than a scheduler slice on a loaded machine) counts."""
    _chain(iterations, np.uint64(12345))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        _chain(iterations, np.uint64(12345))
        best = min(best, time.perf_counter() - t0)
    return 3.0 * iterations / best


class _Windows:
    """Consecutive windows of ``win`` elements of arrays of ``n`` (wrapping), one per call: a
    call touches ``win`` elements while the working set stays the whole array."""

    def __init__(self, n: int, win: int):
        self.n, self.win, self.k = n, min(win, n), 0

    def next(self) -> slice:
        starts = max(1, self.n // self.win)
        lo = (self.k % starts) * self.win
        self.k += 1
        return slice(lo, lo + self.win)


def measure_streams(threads: int, sizes: tuple[int, ...] = PROBE_SIZES, repeats: int = 15,
                    call_bytes: int = 8 << 20, statistic: str = "median") -> list[StreamRate]:
    """STREAM-like read, copy and triad bandwidth at each working-set size (bytes/s).

    The working set of read is one array of ``size`` bytes, of copy two arrays and of triad
    three, each ``size / k`` bytes.  Each call moves about ``call_bytes`` (a few ms, shorter
    than a scheduler slice on a loaded machine): arrays smaller than that are swept repeatedly,
    larger ones a window at a time, the next window on the next call.
    """
    blocks = max(1, threads)
    out = []
    for size in sizes:
        reps = max(1, call_bytes // size)
        rates = []
        for k, kern in ((1, "read"), (2, "copy"), (3, "triad")):
            n = max(blocks * 64, size // (8 * k))
            arrs = [np.arange(n, dtype=np.uint64) if kern == "read" else np.ones(n) for _ in range(k)]
            w = _Windows(n, max(blocks * 64, call_bytes // (8 * k)))

            def call(kern=kern, arrs=arrs, w=w):
                sl = w.next()
                if kern == "read":
                    _read_sum(arrs[0][sl], blocks, reps)
                elif kern == "copy":
                    _copy(arrs[0][sl], arrs[1][sl], blocks, reps)
                else:
                    _triad(arrs[0][sl], arrs[1][sl], arrs[2][sl], 3.0, blocks, reps)

            t = _time(call, repeats, statistic, threads)
            moved = {"read": 8, "copy": 16, "triad": 24}[kern] * w.win * reps
            rates.append(moved / t)
        out.append(StreamRate(int(size), *rates))
        log.info("stream %d KiB: read %.1f GB/s, copy %.1f, triad %.1f", size >> 10,
                 out[-1].read_bps / 1e9, out[-1].copy_bps / 1e9, out[-1].triad_bps / 1e9)
    return out


def measure_gathers(threads: int, sizes: tuple[int, ...] = PROBE_SIZES,
                    row_bytes: tuple[int, ...] = GATHER_ROW_BYTES, repeats: int = 15,
                    gathers: int = 1 << 16, seed: int = 0, statistic: str = "median"
                    ) -> list[GatherRate]:
    """Random-row gather rates (rows/s, all threads) for every row width and table size.

    Each call gathers ``gathers`` rows (short calls, as in :func:`measure_streams`) at fresh
    random indices (a different slice of a long index array each call), after the table was
    swept once so that it sits wherever it fits.
    """
    rng = np.random.default_rng(seed)
    blocks = max(1, threads) * 16
    out = []
    for size in sizes:
        table = rng.integers(0, 1 << 62, size // 8, dtype=np.uint64)
        for rb in row_bytes:
            words = rb // 8
            n_rows = max(1, table.size // words)
            idx = rng.integers(0, n_rows, gathers * 16, dtype=np.uint32)
            kern = _gather_kernel(words)
            w = _Windows(idx.size, gathers)
            kern(table, np.arange(n_rows, dtype=np.uint32), blocks)  # sweep the table once
            t = _time(lambda: kern(table, idx[w.next()], blocks), repeats, statistic, threads)
            out.append(GatherRate(int(rb), int(size), gathers / t))
            log.info("gather %d B rows from %d KiB: %.1f M rows/s", rb, size >> 10, gathers / t / 1e6)
    return out


# --------------------------------------------------------------------------- kernel costs
#: micro-graphs of the kernel calibration: (destination rows, edges per row); at most 64k
#: edges, so that indices, weights and output stay in L2 and the times are the kernels' own
CALIBRATION_GRAPHS = ((64, 1), (2048, 1), (16384, 1), (4096, 8), (8192, 8), (2048, 32), (512, 64),
                      (1024, 64))
CALIBRATION_SRC_ROWS = 64
#: the two uniform micro-graphs of each table size of a kernel's ``table_costs``: (destination
#: rows, edges per row), the same 2**21 edges at two degrees, so that the per-row and per-edge
#: seconds separate; their index, weight and output streams (several MB) leave the L2 and
#: compete with the table for the L3, as on a large real graph
TABLE_GRAPHS = ((1 << 19, 4), (1 << 16, 32))
#: rows of distinct random codes in a calibration table; larger tables repeat them (the
#: kernels' time does not depend on the values, and this keeps a 256 MiB table cheap to make)
_DISTINCT_ROWS = 1 << 14


def _micro_graph(n_dst: int, degree: int, n_src: int, rng: np.random.Generator):
    indptr = np.arange(0, (n_dst + 1) * degree, degree, dtype=np.int64)
    indices = rng.integers(0, n_src, n_dst * degree).astype(np.int64)
    return indptr, indices


def kernel_callable(kernel: str, indptr: np.ndarray, indices: np.ndarray, n_src: int,
                    num_features: int, rng: np.random.Generator) -> Callable[[], object]:
    """The timed call of ``kernel`` exactly as :func:`quagga.bench.aggregation.measure` makes
    it (same entry points, index dtype, weight dtype and flags), on the given CSR."""
    from quagga.bench.aggregation import bench_params
    from quagga.bench.fp32_spmm import spmm_f32
    from sim.packed import propagate

    ixc = propagate.compact_indices(indices, n_src)
    e = indices.size
    distinct = min(n_src, _DISTINCT_ROWS)
    if kernel == "own_fp32":
        wf = rng.random(e, dtype=np.float32)
        x = np.resize(rng.standard_normal((distinct, num_features)).astype(np.float32), (n_src, num_features))
        return lambda: spmm_f32(indptr, ixc, wf, x, 64)
    bits = int(kernel.removeprefix("int"))
    deg = np.diff(indptr)
    # small codes keep every row of the INT2/INT4 kernels on its fast path (the weight-sum
    # budget), as on the benchmark graphs (gcn_norm weights)
    w = rng.integers(0, 64, e).astype(np.int64)
    row_w = float(w.sum()) / max(1, deg.size)
    p = bench_params(bits, int(deg.max(initial=1)), row_w, rng)
    x = rng.integers(p.x_spec.qmin, p.x_spec.qmax + 1, (distinct, num_features))
    xb = propagate.pack_operand(x, p.x_spec)
    xb = np.resize(xb, (n_src, xb.shape[1]))
    w8 = w.astype(np.uint8)
    return lambda: propagate.aggregate_packed(indptr, ixc, w8, xb, num_features, p, block=64,
                                              validate=False, packed_out=True)


def kernel_row_bytes(kernel: str, num_features: int) -> int:
    """Bytes of one source row the kernel gathers: ``4 F`` in FP32, ``F b / 8`` packed."""
    if kernel == "own_fp32":
        return 4 * num_features
    return -(-num_features * int(kernel.removeprefix("int")) // 8)


def kernel_out_bytes(kernel: str, num_features: int, out_bits: int | None = None) -> int:
    """Bytes per destination row a call allocates and writes: FP32 rows, or the packed output
    codes (``out_bits`` per lane, default the kernel's width) and the int64 saturation count
    of the packed kernels."""
    if kernel == "own_fp32":
        return 4 * num_features
    bits = int(kernel.removeprefix("int")) if out_bits is None else out_bits
    return -(-num_features * bits // 8) + 8


def _out_s(kernel: str, n_rows: int, num_features: int, touch: tuple[TouchRate, ...]) -> float:
    """Seconds of the first touch of a call's output (0 without first-touch rates)."""
    size = n_rows * kernel_out_bytes(kernel, num_features)
    return size / touch_bandwidth(touch, size) if touch and size else 0.0


def table_costs(kernel: str, call_s: float, threads: int, sizes: tuple[int, ...], repeats: int,
                num_features: int, rng: np.random.Generator, statistic: str,
                touch: tuple[TouchRate, ...] = ()) -> tuple[tuple[int, float, float], ...]:
    """The kernel's seconds per destination row and per edge at each source-table size
    (``KernelCost.table_costs``): both :data:`TABLE_GRAPHS` with a uniform table of ``size``
    bytes, timed, less the call and output terms (``t'``); ``row = (t'_a - t'_b) / (N_a -
    N_b)`` (the same edge count ``E``), ``edge = (t'_b - row N_b) / E``, each clipped at 0."""
    rb = kernel_row_bytes(kernel, num_features)
    (na, _), (nb, _) = TABLE_GRAPHS
    out = []
    for size in sizes:
        n_src = max(CALIBRATION_SRC_ROWS, size // rb)
        fns = []
        for n_dst, degree in TABLE_GRAPHS:
            indptr, indices = _micro_graph(n_dst, degree, n_src, rng)
            fns.append(kernel_callable(kernel, indptr, indices, n_src, num_features, rng))
        # the two graphs alternate, so a slow spell of the machine reaches both of them
        # rather than one, which would skew the row / edge split
        ts = [t - call_s - _out_s(kernel, n_dst, num_features, touch)
              for t, (n_dst, _) in zip(_time_alternating(fns, repeats, statistic, threads),
                                       TABLE_GRAPHS)]
        del fns
        row = max(0.0, (ts[0] - ts[1]) / (na - nb))
        edge = max(0.0, (ts[1] - row * nb) / indices.size)
        out.append((int(n_src * rb), row, edge))
        log.info("kernel %s from a %d KiB table: %.2f ns per row, %.2f ns per edge", kernel,
                 n_src * rb >> 10, row * 1e9, edge * 1e9)
    return tuple(out)


def calibrate_kernels(threads: int, kernels: tuple[str, ...] = ("own_fp32", "int2", "int4", "int8"),
                      repeats: int = 9, num_features: int = 64, seed: int = 0,
                      statistic: str = "median", sizes: tuple[int, ...] = PROBE_SIZES,
                      table_repeats: int = 7, touch: tuple[TouchRate, ...] = ()) -> list[KernelCost]:
    """Fit ``t = call + row N + edge E`` for each kernel on :data:`CALIBRATION_GRAPHS`
    (source table of :data:`CALIBRATION_SRC_ROWS` rows), by non-negative least squares on the
    median times (``threads`` threads), less the output's first touch at the ``touch`` rates;
    then its :func:`table_costs` at each of ``sizes`` (``table_repeats`` calls each; none
    when ``sizes`` is empty)."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(seed)
    graphs = [_micro_graph(n, d, CALIBRATION_SRC_ROWS, rng) for n, d in CALIBRATION_GRAPHS]
    out = []
    for k in kernels:
        rows, ts = [], []
        for indptr, indices in graphs:
            fn = kernel_callable(k, indptr, indices, CALIBRATION_SRC_ROWS, num_features, rng)
            # the output's first touch is the model's own term: take it out of the fit
            t = _time(fn, repeats, statistic, threads) - _out_s(k, indptr.size - 1, num_features, touch)
            rows.append([1.0, indptr.size - 1, indices.size])
            ts.append(max(t, 1e-9))
        a = np.array(rows)
        tv = np.array(ts)
        # relative weighting: every calibration point counts alike
        coef, _ = nnls(a / tv[:, None], np.ones_like(tv))
        resid = float(np.max(np.abs(a @ coef - tv) / tv))
        desc = (f"nnls over {len(graphs)} micro-graphs (N_dst, degree) = {list(CALIBRATION_GRAPHS)}, "
                f"{CALIBRATION_SRC_ROWS} source rows, F={num_features}, {threads} threads, "
                f"{statistic} of {repeats}; times {[round(t * 1e3, 4) for t in ts]} ms")
        tc = table_costs(k, float(coef[0]), threads, tuple(sizes), table_repeats, num_features, rng,
                         statistic, touch) if sizes else ()
        if tc:
            desc += (f"; table costs on uniform graphs (N_dst, degree) = {list(TABLE_GRAPHS)} with tables "
                     f"{[c[0] for c in tc]} bytes, {statistic} of {table_repeats}")
        out.append(KernelCost(k, float(coef[0]), float(coef[1]), float(coef[2]), desc, resid, tc,
                              TABLE_GRAPHS[0][0] * TABLE_GRAPHS[0][1] if tc else 0))
        log.info("kernel %s: call %.1f us, row %.2f ns, edge %.3f ns (fit residual %.0f%%)", k,
                 coef[0] * 1e6, coef[1] * 1e9, coef[2] * 1e9, 100 * resid)
    return out


# --------------------------------------------------------------------------- the probe
def probe(threads: int = 2, sysfs_root: str | Path = "/sys", cpuinfo: str | Path = "/proc/cpuinfo",
          repeats: int = 5, sizes: tuple[int, ...] = PROBE_SIZES,
          kernels: tuple[str, ...] = ("own_fp32", "int2", "int4", "int8"),
          statistic: str = "median", say: Callable[[str], None] | None = None) -> HostPoint:
    """Measure this machine (module docstring) with ``threads`` threads.

    Raises
    ------
    QuantError
        For fewer than one thread or repeat.
    """
    import numba

    from quant.errors import QuantError

    if threads < 1 or repeats < 1:
        raise QuantError(f"threads and repeats must be >= 1, not {threads!r}, {repeats!r}")
    if statistic not in STATISTICS:
        raise QuantError(f"statistic must be one of {STATISTICS}, not {statistic!r}")
    say = say or log.info
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    load = machine.load_average()
    info = read_cpuinfo(cpuinfo)
    caches = read_caches(sysfs_root)
    say("clock")
    clock = measure_clock()
    say("streams")
    streams = measure_streams(threads, sizes, 3 * repeats, statistic=statistic)
    say("gathers")
    gathers = measure_gathers(threads, sizes, repeats=3 * repeats, statistic=statistic)
    say("first touch")
    touch = tuple(measure_first_touch(threads, repeats=3 * repeats, statistic=statistic,
                                      streams=tuple(streams)))
    say("kernel costs")
    costs = calibrate_kernels(threads, kernels, repeats=max(8 * repeats, 21),
                              statistic=statistic, sizes=sizes, table_repeats=max(2 * repeats + 1, 3),
                              touch=touch)
    return HostPoint(name="host", cpu=info["cpu"], logical_cpus=os.cpu_count() or 1,
                     threads=threads, simd_bytes=info["simd_bytes"], clock_hz=clock,
                     clock_hz_reported=info["mhz"] * 1e6, caches=tuple(caches),
                     stream=tuple(streams), gather=tuple(gathers), first_touch=touch,
                     kernel_costs=tuple(costs),
                     load_average=tuple(load), statistic=statistic,
                     measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def describe_host(h: HostPoint) -> str:
    """A few lines summarising a probe."""
    caches = ", ".join(f"L{c.level}{c.kind[0]} {c.size_bytes >> 10} KiB"
                       for c in h.caches if c.kind != "Instruction")
    lines = [f"host: {h.cpu}, {h.logical_cpus} logical CPUs, probe threads {h.threads}, SIMD "
             f"{h.simd_bytes} B, clock {h.clock_hz / 1e9:.2f} GHz measured "
             f"({h.clock_hz_reported / 1e9:.2f} reported), caches {caches}; load {list(h.load_average)} "
             f"at {h.measured_at}; {h.statistic} of the repeats",
             "  stream read GB/s: " + ", ".join(f"{s.size_bytes >> 10} KiB {s.read_bps / 1e9:.1f}"
                                                for s in h.stream)]
    for rb in sorted({g.row_bytes for g in h.gather}):
        lines.append(f"  gather {rb:>3} B rows, M rows/s: " + ", ".join(
            f"{g.table_bytes >> 10} KiB {g.rows_per_s / 1e6:.0f}" for g in h.gather if g.row_bytes == rb))
    if h.first_touch:
        lines.append("  first touch GB/s: " + ", ".join(f"{t.size_bytes >> 10} KiB {t.bps / 1e9:.1f}"
                                                        for t in h.first_touch))
    for c in h.kernel_costs:
        lines.append(f"  kernel {c.kernel:<9} call {c.call_s * 1e6:7.1f} us  row {c.row_s * 1e9:6.2f} ns  "
                     f"edge {c.edge_s * 1e9:6.3f} ns  (fit residual {100 * c.fit_residual:.0f}%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m quagga.bench.host_probe",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--statistic", choices=STATISTICS, default="median",
                    help="median wall time of the repeats (compared with the benchmark's medians), "
                         "the fastest (compared with its fastest rounds) or the median busy time, "
                         "CPU seconds / threads (compared with the benchmark's busy time)")
    ap.add_argument("--out", required=True, help="probe file to write (JSON)")
    a = ap.parse_args(argv)
    machine.prefer_passive_omp()
    h = probe(a.threads, repeats=a.repeats, statistic=a.statistic,
              say=lambda m: print(f"... {m}", flush=True))
    h.save(a.out)
    print(describe_host(h))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
