"""Layout of a run directory (what ``quagga run`` writes and ``quagga report`` reads).

::

    RUN/run.json                       stages: status, seconds, error; dataset; machine
    RUN/train/<tag>/metrics.json       quagga train   (tag: fp32, int8, int4, int2, ...)
    RUN/train/<tag>/model.qim          exported integer model
    RUN/simulate/<tag>/simulate.json   quagga simulate (bit_exact, mismatches, accuracy, ...)
    RUN/golden/<tag>/                  golden vectors of one trained propagation step
    RUN/rtl/verify-<tag>.json          quagga rtl verify (cases, mismatches, cycles, simulator)
    RUN/estimate/estimate.json         quagga estimate (fp32/int8/int4/int2 cycles, energy)
    RUN/bench/bench.json               quagga bench (measured speed-ups)
    RUN/report/index.md + *.png        quagga report
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from quant.errors import QuantError

PRECISION_TAGS = ("fp32", "int8", "int4", "int2")


class RunDirError(QuantError):
    """A file of a run directory that cannot be read; the message names the file and why."""


def read_json(path: str | os.PathLike) -> Any | None:
    """The JSON at ``path``, or None when the file does not exist.

    Raises
    ------
    RunDirError
        When the file is not valid JSON (UTF-8).
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with p.open(encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"run file {str(p)!r} is not valid JSON: {exc}") from None
