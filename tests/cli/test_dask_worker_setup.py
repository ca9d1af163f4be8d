"""The Dask worker preload's log filters: the expected shutdown and cancellation records are
dropped, every other record passes."""

from __future__ import annotations

import logging
import sys

from distributed.comm.core import CommClosedError

from quagga.dask_worker_setup import CancelledTaskFilter, ClosedSchedulerHeartbeatFilter


def _record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except type(exc):
            exc_info = sys.exc_info()
    return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, msg, None, exc_info)


def test_heartbeat_to_a_closed_scheduler_is_dropped():
    f = ClosedSchedulerHeartbeatFilter()
    msg = "Failed to communicate with scheduler during heartbeat."
    assert not f.filter(_record(msg, CommClosedError("in <TCP (closed)>: Stream is closed")))
    assert f.filter(_record(msg, OSError("Connection refused")))  # another failure passes
    assert f.filter(_record("Unexpected exception during heartbeat. Closing worker.", ValueError("x")))
    assert f.filter(_record("Stream is closed", CommClosedError("elsewhere")))  # not a heartbeat
    assert f.filter(_record(msg))  # no exception attached


def test_cancelled_task_record_is_dropped():
    f = CancelledTaskFilter()
    assert not f.filter(_record("Compute Failed: task ended with CancelledError"))
    assert f.filter(_record("Compute Failed: task ended with ValueError"))
