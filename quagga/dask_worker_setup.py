"""Preload of the Dask worker processes of ``quagga sweep`` (``LocalCluster(preload=[...])``).

Ctrl-C in a terminal reaches every process of the foreground group, the workers included.
The workers ignore it: the ``quagga`` process handles it, cancels the sweep and shuts the
cluster down (a worker that took the interrupt itself would die printing a traceback).
When a sweep is cancelled so, each worker logs, at WARNING, that a task "ended with
CancelledError"; that expected message is dropped here too.  So is the one a worker logs
when its heartbeat finds the scheduler's connection closed (``CommClosedError``), which
happens when the cluster shuts down at the end of a sweep while a heartbeat is in flight.
Every other worker log passes.
"""

from __future__ import annotations

import logging
import signal
import threading

#: The worker logger that reports cancelled tasks.
STATE_MACHINE_LOGGER = "distributed.worker.state_machine"
#: The worker logger that reports a failed heartbeat.
WORKER_LOGGER = "distributed.worker"


class CancelledTaskFilter(logging.Filter):
    """Drop the record a worker logs for a task cancelled by its client."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return "ended with CancelledError" not in record.getMessage()


class ClosedSchedulerHeartbeatFilter(logging.Filter):
    """Drop the record (with its traceback) a worker logs when a heartbeat finds the
    scheduler's connection closed; keep every other heartbeat failure."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        if "during heartbeat" not in record.getMessage() or not record.exc_info:
            return True
        from distributed.comm.core import CommClosedError

        return not isinstance(record.exc_info[1], CommClosedError)


def dask_setup(worker) -> None:
    """Dask's preload hook: ignore SIGINT in this worker process, filter the records of
    cancelled tasks and of heartbeats to a closed scheduler."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger(STATE_MACHINE_LOGGER).addFilter(CancelledTaskFilter())
    logging.getLogger(WORKER_LOGGER).addFilter(ClosedSchedulerHeartbeatFilter())
