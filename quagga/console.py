"""The command line's console: logging levels, the quiet default for libraries, one-line errors.

Without ``-v`` the console shows warnings and errors only: the loggers of the libraries the
flow drives (Dask/distributed, cocotb and its runner, numba, matplotlib, asyncio) are held at
WARNING, and so are Dask's worker processes (through ``DASK_LOGGING__*`` in the environment
they inherit).  ``-v`` shows INFO everywhere, ``-vv`` DEBUG.
"""

from __future__ import annotations

import errno
import logging
import os
import sys

#: Loggers of libraries that speak at INFO by default.
LIBRARY_LOGGERS = ("distributed", "dask", "cocotb", "cocotb_tools", "Icarus", "Verilator", "numba",
                   "matplotlib", "PIL", "asyncio", "fsspec", "torch_geometric", "tornado", "bokeh",
                   "find_libpython")

#: Dask reads these at import (also in worker processes, which inherit the environment).
DASK_LOGGING_ENV = ("DASK_LOGGING__DISTRIBUTED", "DASK_LOGGING__DISTRIBUTED_CLIENT",
                    "DASK_LOGGING__DISTRIBUTED_SCHEDULER", "DASK_LOGGING__DISTRIBUTED_NANNY",
                    "DASK_LOGGING__DISTRIBUTED_WORKER")


def configure_logging(verbose: int) -> None:
    """Set the console's log level: WARNING, INFO (``verbose == 1``) or DEBUG (``>= 2``).

    Parameters
    ----------
    verbose : int
        How many ``-v`` were given.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    root = logging.getLogger()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
    for handler in root.handlers:
        # libraries that set their own logger to INFO (cocotb's runner does, per simulator
        # class) are held back here too
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
            handler.setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    dask_level = logging.getLevelName(level).lower()
    for var in DASK_LOGGING_ENV:
        if verbose or var not in os.environ:
            os.environ[var] = dask_level


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: the path, the reason and the errno name."""
    name = errno.errorcode.get(exc.errno, "") if exc.errno else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    tag = f" [{name}]" if name else ""
    if exc.errno == errno.EEXIST and exc.filename is not None and os.path.isfile(exc.filename):
        reason = "File exists and is not a directory"
    if exc.filename is not None:
        target = repr(str(exc.filename))
        if exc.filename2 is not None:
            target += f" -> {str(exc.filename2)!r}"
        return f"{target}: {reason}{tag}"
    return f"{reason}{tag}"
