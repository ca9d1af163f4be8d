"""Description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform


#: OpenBLAS's idle workers wait ``2**n`` cycles before they sleep (its default n is 28)
OPENBLAS_THREAD_TIMEOUT = "4"


def prefer_passive_omp() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` and ``OPENBLAS_THREAD_TIMEOUT=4`` unless the user has
    set them.

    torch (its own OpenMP runtime), numba (OpenMP) and numpy's OpenBLAS share one process
    here; workers of one runtime that spin after a parallel region take the cores from the
    next region of another (on this 2-vCPU guest: a 2-thread numba region at 10x its 1-thread
    time under load, the packed runner's linear layers 5x slower in ``quagga run``).  Passive
    waiting applies to torch and numba alike.  OpenBLAS's workers spin for ``2**28`` cycles
    (about 0.1 s) after each call by default, through the numba passes that follow a BLAS
    GEMM in our FP32 forward and through whatever form the benchmark times next; with
    ``2**4`` they sleep at once.  Call it before numpy loads OpenBLAS and before torch or
    numba loads libgomp (``quagga.cli.main`` does, for the commands that time kernels); the
    benchmark JSON records both settings (docs/benchmarks.md).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_THREAD_TIMEOUT)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD extensions that matter for the kernels (avx2, avx512*, vnni)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx2", "avx512f", "avx512bw",
                                                                   "avx512_vnni", "avx_vnni")))
    except OSError:
        pass
    return []


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where unsupported)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return os.environ.get("NUMBA_THREADING_LAYER", "default")


def describe(threads: int) -> dict:
    """CPU model, logical CPUs, SIMD flags, threads used, library versions, load average."""
    import numba
    import numpy as np

    d = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "simd": cpu_flags(),
         "threads": threads, "python": platform.python_version(), "numpy": np.__version__,
         "numba": numba.__version__, "numba_threading_layer": _threading_layer(),
         "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
         "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "(default)"),
         "load_average_start": load_average()}
    try:
        import torch
        import torch_geometric

        d["torch"] = torch.__version__
        d["torch_geometric"] = torch_geometric.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return d


def use_threads(threads: int, repeats: int) -> dict:
    """Check the benchmark's ``threads`` and ``repeats`` (>= 1), give numba and torch
    ``threads`` threads, and return :func:`describe` of the machine.

    Raises
    ------
    QuantError
        For fewer than one thread or repeat, naming the values.
    """
    import numba
    import torch

    from quant.errors import QuantError

    if threads < 1 or repeats < 1:
        raise QuantError(f"threads and repeats must be >= 1, not {threads!r}, {repeats!r}")
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    return describe(threads)
