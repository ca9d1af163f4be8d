"""Preload of the Dask worker processes of ``quagga sweep`` (``LocalCluster(preload=[...])``).

Ctrl-C in a terminal reaches every process of the foreground group, the workers included.
The workers ignore it: the ``quagga`` process handles it, cancels the sweep and shuts the
cluster down (a worker that took the interrupt itself would die printing a traceback).
When a sweep is cancelled so, each worker logs, at WARNING, that a task "ended with
CancelledError"; that expected message is dropped here too.  Every other worker log passes.
"""

from __future__ import annotations

import logging
import signal
import threading

#: The worker logger that reports cancelled tasks.
STATE_MACHINE_LOGGER = "distributed.worker.state_machine"


class CancelledTaskFilter(logging.Filter):
    """Drop the record a worker logs for a task cancelled by its client."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return "ended with CancelledError" not in record.getMessage()


def dask_setup(worker) -> None:
    """Dask's preload hook: ignore SIGINT in this worker process, filter cancelled-task records."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger(STATE_MACHINE_LOGGER).addFilter(CancelledTaskFilter())
