"""The fields of one propagation step with its expected result, shared by the golden
vectors (:class:`sim.verify.golden.GoldenCase`) and the RTL test cases
(``rtl.vectors.RtlCase``).  numpy only, so that testbenches can import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant.aggregate import AggregationParams
from sim.graphs.csr import CSRShape

__all__ = ["StepCase"]


@dataclass(frozen=True, eq=False)
class StepCase(CSRShape):
    """One propagation step with its expected result: the fields every test vector of the
    aggregation unit carries (each described in :class:`sim.verify.golden.GoldenCase`, which
    adds the design point, checks and the file format; ``rtl.vectors.RtlCase`` adds an
    optional design point)."""

    name: str
    params: AggregationParams
    indptr: np.ndarray
    indices: np.ndarray
    w: np.ndarray
    x: np.ndarray
    y: np.ndarray
    saturations: int

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])
