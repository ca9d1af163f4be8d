"""Hypothesis fuzzing: random models on random graphs (hub rows at the maximum degree,
isolated rows, self loops, duplicate edges, accumulators narrow enough to saturate), the
simulator against the model IR's numpy executor, every stage, zero mismatches.

The default run checks a seeded share (``QUAGGA_FUZZ_EXAMPLES``, default 40 models and 60
single propagation steps); the full acceptance run is
``pytest --runslow tests/sim -k fuzz`` (1000 models + 1000 propagation steps).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.spec import QuantSpec
from sim.exact.functional import aggregate
from sim.exact.model_sim import compare_stages
from sim.verify.random_models import ARCHS, GraphSpec, random_graph_edges, random_model

N_MODELS = int(os.environ.get("QUAGGA_FUZZ_EXAMPLES", "40"))
N_STEPS = int(os.environ.get("QUAGGA_FUZZ_EXAMPLES", "60"))
FULL = 1000


@st.composite
def graph_specs(draw):
    n = draw(st.integers(1, 24))
    return GraphSpec(num_nodes=n, avg_degree=draw(st.sampled_from([0.0, 0.5, 2.0, 4.0])),
                     hub_degree=draw(st.sampled_from([0, 1, 16, 64, 200])),
                     isolated=draw(st.sampled_from([0.0, 0.3, 0.8])),
                     self_loops=draw(st.booleans()), duplicates=draw(st.booleans()))


@st.composite
def model_args(draw):
    return dict(seed=draw(st.integers(0, 2**31 - 1)), arch=draw(st.sampled_from(ARCHS)),
                bits=draw(st.sampled_from([1, 2, 3, 4, 8])), graph=draw(graph_specs()),
                num_features=draw(st.integers(1, 8)), hidden=draw(st.integers(1, 8)),
                num_classes=draw(st.integers(2, 5)), steps=draw(st.integers(1, 3)),
                narrow_acc=draw(st.booleans()), msg=draw(st.booleans()), upd=draw(st.booleans()),
                mult_bits=draw(st.sampled_from([8, 16, 24])))


def fuzz_settings(examples: int):
    """Hypothesis settings of every fuzz test: ``examples`` cases, reproducible, no deadline."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _check_model(kw):
    model, x = random_model(**kw)
    rep = compare_stages(model, x)
    assert rep.bit_exact, (kw, [s.to_dict() for s in rep.stages if s.mismatches])


@fuzz_settings(N_MODELS)
@given(model_args())
def test_fuzz_models(kw):
    _check_model(kw)


@pytest.mark.slow
@fuzz_settings(FULL)
@given(model_args())
def test_fuzz_models_full(kw):
    _check_model(kw)


@st.composite
def steps(draw):
    """One propagation step with extreme parameters (any width 1..8, signed or not)."""
    gs = draw(graph_specs())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    ei = random_graph_edges(gs, rng)
    from quant.csr import csr_from_edge_index
    indptr, indices, _ = csr_from_edge_index(ei, gs.num_nodes)

    def spec():
        return QuantSpec(draw(st.integers(1, 8)), signed=draw(st.booleans()))

    def zero(s):
        return draw(st.integers(s.qmin, s.qmax))

    def rq():
        s = spec()
        return Requantizer(draw(st.integers(0, 2**16 - 1)), draw(st.integers(-4, 40)), zero(s), s)

    xs, ws = spec(), QuantSpec(draw(st.integers(1, 8)))
    params = AggregationParams(xs, zero(xs), ws, zero(ws), draw(st.integers(2, 24)), rq(),
                               rq() if draw(st.booleans()) else None,
                               rq() if draw(st.booleans()) else None)
    f = draw(st.integers(1, 9))
    x = rng.integers(xs.qmin, xs.qmax + 1, (gs.num_nodes, f))
    if draw(st.booleans()):  # all codes at one extreme: drives the accumulator to its bound
        x[:] = draw(st.sampled_from([xs.qmin, xs.qmax]))
    w = rng.integers(ws.qmin, ws.qmax + 1, indices.size)
    return indptr, indices, w, x, params


def _check_step(args):
    indptr, indices, w, x, params = args
    ref = aggregate_reference(indptr, indices, w, x, params)
    got = aggregate(indptr, indices, w, x, params)
    assert np.array_equal(ref.y, got.y) and ref.saturations == got.saturations


@fuzz_settings(N_STEPS)
@given(steps())
def test_fuzz_propagation_steps(args):
    _check_step(args)


@pytest.mark.slow
@fuzz_settings(FULL)
@given(steps())
def test_fuzz_propagation_steps_full(args):
    _check_step(args)
