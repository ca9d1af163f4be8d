"""Design points and configuration values the unit cannot take are refused with clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quant.aggregate import Requantizer
from quant.errors import QuantError
from quant.spec import QuantSpec
from rtl.aggregator import Aggregator
from rtl.build import check_design, to_verilog
from sim.verify import golden
from sim.design.point import DesignError, DesignPoint
from sim.design.stream import check_params, config_values


@pytest.mark.parametrize("changes,field", [
    (dict(bits=3), "bits"),
    (dict(bits=4, word_bits=18), "word_bits"),
    (dict(bits=2, acc_bits=8), "acc_bits"),
    (dict(bits=8, word_bits=4096), "word_bits"),
])
def test_design_point_refused(changes, field):
    with pytest.raises(DesignError, match=field):
        DesignPoint(**changes)


def _forged(**changes) -> DesignPoint:
    dp = DesignPoint(bits=4, word_bits=16)
    for k, v in changes.items():
        object.__setattr__(dp, k, v)
    return dp


@pytest.mark.parametrize("changes,field", [
    (dict(bits=3), "bits"),
    (dict(word_bits=18), "word_bits"),
    (dict(acc_bits=10), "acc_bits"),
    (dict(bits=1, word_bits=512), "lanes"),
])
def test_forged_design_refused_before_elaboration(changes, field):
    dp = _forged(**changes)
    with pytest.raises(DesignError, match=field):
        check_design(dp)
    with pytest.raises(DesignError, match=field):
        Aggregator(dp)
    with pytest.raises(DesignError, match=field):
        to_verilog(dp)


def test_not_a_design():
    with pytest.raises(DesignError, match="DesignPoint"):
        check_design({"bits": 4})


def _params(dp):
    return golden.params_for_design(dp, np.random.default_rng(0))


def test_negative_shift_refused():
    dp = DesignPoint(bits=4, word_bits=16)
    p = _params(dp)
    bad = dataclasses.replace(p, out=Requantizer(p.out.multiplier, -2, p.out.zero_point, p.out.spec))
    with pytest.raises(QuantError, match=r"params.out.shift must be >= 0.*-2"):
        config_values(dp, bad)


@pytest.mark.parametrize("what,field", [
    ("mult", "params.out.multiplier"), ("spec", "params.out.spec"), ("acc", "params.acc_bits"),
    ("msg", "params.msg"), ("x", "params.x_spec"),
])
def test_params_mismatch_refused(what, field):
    dp = DesignPoint(bits=4, word_bits=16, mult_bits=8)
    p = _params(dp)
    if what == "mult":
        p = dataclasses.replace(p, out=Requantizer(256, 3, 0, p.out.spec))
    elif what == "spec":
        p = dataclasses.replace(p, out=Requantizer(3, 3, 0, QuantSpec(4, signed=True)))
    elif what == "acc":
        p = dataclasses.replace(p, acc_bits=p.acc_bits + 1)
    elif what == "msg":
        p = dataclasses.replace(p, msg=p.out)
    else:
        p = dataclasses.replace(p, x_spec=QuantSpec(8), x_zero=0)
    with pytest.raises(QuantError, match=field):
        check_params(dp, p)


def test_missing_requantizer_refused():
    dp = DesignPoint(bits=4, word_bits=16, upd_requant=True)
    p = golden.params_for_design(dp.replace(upd_requant=False), np.random.default_rng(0))
    with pytest.raises(QuantError, match="params.upd must be set"):
        check_params(dp, p)
