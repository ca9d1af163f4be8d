"""The memory allocator of a training process: jemalloc where the system has it.

Why
---
Quantization-aware training allocates and frees thousands of tensors per step, of many
sizes (``(N, C)`` float and integer stages, ``(N, hidden)`` layers, per-edge arrays).
Under glibc's allocator the heap of such a process fragments, and glibc returns the top of
the heap to the system and takes it back again, so the pages are faulted in anew.  On the
20,000-node power-law graph (SMP K = 10, INT4; the 2-vCPU guest of ``docs/training.md``) a
training process kept 530 MiB of heap for 350 MiB of live tensors at its peak, and took
about 1.4 million page faults in six epochs.  jemalloc, with its unused pages kept (no
decay), holds the peak resident size about 140 MiB lower at the same epoch time, with
about 160 thousand page faults.  The numbers a run computes do not depend on the
allocator.

How
---
``quagga train`` calls :func:`reexec_with_jemalloc` before it loads torch: when the
choice is ``auto`` (the default) or ``jemalloc``, jemalloc is installed and not yet loaded,
the process replaces itself (``os.execve``, same interpreter and arguments) with
``LD_PRELOAD`` naming the library and ``MALLOC_CONF`` set to :data:`JEMALLOC_CONF`.  The
choice comes from the environment variable :data:`ENV`:

``auto``
    jemalloc if the system has it, else the system allocator;
``jemalloc``
    jemalloc, an error if the system does not have it;
``system``
    the C library's allocator.

:func:`child_env` gives the same setting to a subprocess (the training-cost measurement
of ``training.experiments`` runs each model under it and records :func:`active`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from quant.errors import QuantError

__all__ = ["CHOICES", "ENV", "JEMALLOC_CONF", "active", "child_env", "choice", "jemalloc_path",
           "reexec_with_jemalloc"]

log = logging.getLogger(__name__)

#: environment variable naming the allocator choice
ENV = "QUAGGA_ALLOCATOR"
#: the values :data:`ENV` may take
CHOICES = ("auto", "jemalloc", "system")
#: jemalloc's options: keep freed pages for reuse instead of returning them to the system
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
#: set in the re-executed process, so that it never re-executes again
_CHILD = "QUAGGA_ALLOCATOR_CHILD"
_SONAME = "libjemalloc.so.2"
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
             "/usr/local/lib", "/lib/x86_64-linux-gnu", "/lib64", "/lib")


def choice(environ: dict | None = None) -> str:
    """The allocator choice in :data:`ENV` (``auto`` when unset).

    Raises
    ------
    QuantError
        For a value outside :data:`CHOICES`.
    """
    env = os.environ if environ is None else environ
    value = env.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise QuantError(f"{ENV} must be one of {list(CHOICES)}, not {env.get(ENV)!r}")
    return value


def jemalloc_path() -> str | None:
    """Path of the system's jemalloc shared library, or ``None``."""
    for d in _LIB_DIRS:
        p = Path(d) / _SONAME
        if p.is_file():
            return str(p)
    return None


def active() -> str:
    """``"jemalloc"`` if jemalloc is loaded in this process, else ``"system"``."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "jemalloc" if "libjemalloc" in maps else "system"


def child_env(environ: dict | None = None) -> dict:
    """A copy of ``environ`` (default ``os.environ``) with which a new Python process runs
    under the allocator :func:`choice` selects (``LD_PRELOAD`` and ``MALLOC_CONF`` added for
    jemalloc; unchanged for the system allocator).

    Raises
    ------
    QuantError
        For a bad :data:`ENV`, or ``jemalloc`` chosen where it is not installed.
    """
    env = dict(os.environ if environ is None else environ)
    want = choice(env)
    if want == "system":
        return env
    path = jemalloc_path()
    if path is None:
        if want == "jemalloc":
            raise QuantError(f"{ENV}=jemalloc, but {_SONAME} is not installed (Debian/Ubuntu: "
                             f"apt-get install libjemalloc2)")
        return env
    preload = env.get("LD_PRELOAD", "")
    if "libjemalloc" not in preload:
        env["LD_PRELOAD"] = f"{path} {preload}".strip()
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    return env


def reexec_with_jemalloc() -> None:
    """Replace this process with itself under jemalloc, when :func:`choice` asks for it and
    it is not loaded yet (module docstring).  Call it first thing in a command's entry
    point, before torch loads: nothing done before it survives.  Returns when there is
    nothing to do (system allocator, jemalloc absent under ``auto``, already loaded, or
    already re-executed once).
    """
    env = child_env()  # validates the choice first
    if active() == "jemalloc" or os.environ.get(_CHILD) \
            or env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD"):
        return  # nothing to load, or loaded already
    env[_CHILD] = "1"
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    log.debug("re-executing under jemalloc (%s)", env["LD_PRELOAD"])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
