"""An independent model of the dense unit: SCALE-Sim's closed-form systolic-array runtime.

Samajdar et al., "SCALE-Sim: Systolic CNN Accelerator Simulator", arXiv:1811.02883 (2018), and
ISPASS 2020: one fold that maps ``S_R`` rows and ``S_C`` columns of the array and streams ``T``
operand vectors takes ``2 S_R + S_C + T - 2`` cycles (fill, stream, drain), and folds run one
after the other.  For the weight-stationary dataflow of a GEMM ``(M x K) @ (K x N)``,
``S_R`` covers ``K``, ``S_C`` covers ``N`` and ``T = M``.  Used only to cross-check
:func:`sim.accel.cycle.dense_compute_cycles` (which overlaps consecutive folds).
"""

from __future__ import annotations


def scalesim_ws_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Closed-form SCALE-Sim runtime of a weight-stationary GEMM, cycles (partial folds exact)."""
    total = 0
    for k0 in range(0, k, rows):
        s_r = min(rows, k - k0)
        for n0 in range(0, n, cols):
            s_c = min(cols, n - n0)
            total += 2 * s_r + s_c + m - 2
    return total
