"""sim.design.stream: beats, chunks, timing formulas."""

from __future__ import annotations

import numpy as np
import pytest

from quant.errors import QuantError
from rtl.vectors import fuzz_case
from sim.design.point import DesignPoint
from sim.design.stream import (beats, chunks, ideal_cycles, latency, pack_beat, total_beats,
                             unpack_beat)


def test_beats_match_pack_beat():
    dp = DesignPoint(bits=4, word_bits=16, signed=True)
    case = fuzz_case(dp, 3, "empty")
    F = case.n_feat
    passes = beats(case.indptr, case.indices, case.w, case.x, dp, case.params)
    assert len(passes) == chunks(F, dp)
    assert sum(len(p) for p in passes) == total_beats(case.indptr, F, dp)
    xpad = np.full((case.x.shape[0], len(passes) * dp.lanes), case.params.x_zero)
    xpad[:, :F] = case.x
    for c, words in enumerate(passes):
        k = 0
        for i in range(case.n_rows):
            lo, hi = case.indptr[i], case.indptr[i + 1]
            if lo == hi:
                assert unpack_beat(words[k], dp)[2:] == (True, True)
                k += 1
                continue
            for e in range(lo, hi):
                feat = xpad[case.indices[e], c * dp.lanes:(c + 1) * dp.lanes].tolist()
                assert words[k] == pack_beat(feat, case.w[e], e == hi - 1, False, dp)
                k += 1
        assert k == len(words)


def test_timing_formulas():
    dp = DesignPoint(bits=2, word_bits=16)  # 8 lanes
    indptr = np.array([0, 3, 3, 4, 9])      # degrees 3, 0, 1, 5 -> 10 beats per pass
    assert chunks(8, dp) == 1 and chunks(9, dp) == 2 and chunks(1, dp) == 1
    assert total_beats(indptr, 17, dp) == 30
    assert latency(dp) == 4
    assert latency(dp.replace(msg_requant=True)) == 6
    assert latency(dp.replace(msg_requant=True, upd_requant=True)) == 8
    assert ideal_cycles(indptr, 17, dp) == 34
    with pytest.raises(QuantError, match="F must be"):
        chunks(0, dp)
