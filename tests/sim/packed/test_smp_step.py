"""The fused propagation + adds pass (sim.packed.smp_step) and its sixteen-edge message
kernel (sim.packed.msg_gather) equal the reference exactly: SMP-shaped models (prop, xt, g,
gap, d, y per step), random APPNP / SMP / GCN models with message requantizers (hubs,
isolated rows, duplicates, narrow accumulators that saturate), and the int32 bound of the
message arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quant import model_ir as mi
from quant.aggregate import AggregationParams, Requantizer, aggregate_reference
from quant.reference import derive_shared_multipliers
from quant.spec import QuantSpec
from sim.packed import msg_gather, smp_step
from sim.packed.runner import PackedRunner
from sim.verify.random_models import GraphSpec, random_model


def _assert_stages_equal(runner: PackedRunner, model: mi.IntModel, x: np.ndarray) -> dict:
    env, _ = runner.run(x, keep=True)
    ref = model.run(x)
    for k, v in ref.items():
        assert k in env, k
        assert np.array_equal(np.asarray(v).astype(np.int64), np.asarray(env[k]).astype(np.int64)), k
    out, _ = runner.run(x, keep=False)
    assert np.array_equal(out[model.output], env[model.output])
    return env


def smp_model(seed: int, bits: int, classes: int, steps: int = 3, narrow_acc: bool = False,
              hub: int = 0) -> tuple[mi.IntModel, np.ndarray]:
    """The exporter's SMP op sequence (``p = prop(x)``, ``xt = add(p, h0)``,
    ``g = add(xt, x)``, ``pg = gap(g)``, ``d = add(pg, g)``, ``y = add(xt, d)``) on a random
    model's MLP, graph and message-requantized propagation."""
    base, x = random_model(seed, "appnp", bits=bits, num_classes=classes, steps=1, msg=True,
                           upd=seed % 2 == 0, narrow_acc=narrow_acc,
                           graph=GraphSpec(num_nodes=60, avg_degree=6, hub_degree=hub,
                                           isolated=0.1, self_loops=True, duplicates=True))
    k0 = next(k for k, op in enumerate(base.ops) if isinstance(op, mi.PropagateOp))
    prop0 = base.ops[k0]
    ops = list(base.ops[:k0])
    h0 = prop0.inp
    p = prop0.params
    rng = np.random.default_rng(seed)
    xs, xz = p.x_spec, p.x_zero
    wide = QuantSpec(8)

    def add(a, za, b, zb, ra, rb, out, spec, z):
        (ma, mb), sh = derive_shared_multipliers((ra, rb), 16)
        ops.append(mi.AddOp(a, b, out, za, ma, zb, mb, sh, z, spec))
        return out

    x_k, zk = h0, xz
    for s in range(steps):
        pp = dataclasses.replace(p, x_zero=zk)
        pr = f"s{s}.prop"
        ops.append(mi.PropagateOp(x_k, pr, prop0.edge_weight, pp))
        xt = add(pr, pp.y_zero, h0, xz, 0.9 * rng.uniform(0.5, 2), 0.1, f"s{s}.xt", wide, 128)
        g = add(xt, 128, x_k, zk, 1.0, -float(rng.uniform(0.5, 2)), f"s{s}.g", xs, xz)
        gp = dataclasses.replace(p, x_zero=xz)
        pg = f"s{s}.gap"
        ops.append(mi.PropagateOp(g, pg, prop0.edge_weight, gp))
        d = add(pg, gp.y_zero, g, xz, 1.0, -1.0, f"s{s}.d", wide, 120)
        x_k = add(xt, 128, d, 120, 1.0, float(rng.uniform(0.05, 0.5)), f"s{s}.y", xs, xz)
        zk = xz
    ops.append(mi.ArgmaxOp(x_k, "pred"))
    model = mi.IntModel(ops=ops, tensors=dict(base.tensors), graph=base.graph, output="pred")
    model.validate()
    return model, x


@pytest.mark.parametrize("bits, classes", [(2, 2), (2, 5), (4, 2), (4, 4), (8, 3), (1, 7)])
def test_smp_steps_fused_equal_reference(bits, classes):
    model, x = smp_model(bits * 10 + classes, bits, classes)
    runner = PackedRunner(model)
    groups = runner._groups
    props = [op for op in model.ops if isinstance(op, mi.PropagateOp)]
    # every prop and gap propagation whose message arithmetic is provably exact in int32
    # (8-bit codes with a large multiplier are not: those run the byte-table kernel)
    fusable = [op for op in props if msg_gather.msg_args(op.params) is not None]
    assert len(groups) == len(fusable) and (bits == 8 or len(groups) == 6)
    for plan in groups.values():
        assert len(plan.adds) in (2,)              # (xt, g) after prop, (d, y) after gap
    # the gap reads g packed, the next step's prop reads y packed
    assert all(plan.pack_slot == len(plan.adds) for plan in groups.values()
               if plan.slots[-1] != model.ops[-2].out)
    env = _assert_stages_equal(runner, model, x)
    assert set(env) >= {op.out for op in model.ops}


@pytest.mark.parametrize("bits, classes", [(2, 2), (4, 3)])
def test_adds_of_every_operand_kind(bits, classes):
    """A group whose adds read two slots, a slot and an operand from before the group (in
    both orders) and two such operands: every operand form of the fused pass."""
    base, x = random_model(7 + bits, "appnp", bits=bits, num_classes=classes, steps=1, msg=True,
                           upd=True, graph=GraphSpec(num_nodes=150, avg_degree=5, hub_degree=20,
                                                     isolated=0.1, self_loops=True,
                                                     duplicates=True))
    k0 = next(k for k, op in enumerate(base.ops) if isinstance(op, mi.PropagateOp))
    prop0 = base.ops[k0]
    h0, p = prop0.inp, prop0.params
    ops = list(base.ops[:k0])
    wide = QuantSpec(8)

    def add(a, za, b, zb, ra, rb, out, spec, z):
        (ma, mb), sh = derive_shared_multipliers((ra, rb), 16)
        ops.append(mi.AddOp(a, b, out, za, ma, zb, mb, sh, z, spec))

    add(h0, p.x_zero, h0, p.x_zero, 1.0, -0.4, "h1", wide, 100)          # before the group
    ops.append(mi.PropagateOp(h0, "pr", prop0.edge_weight, p))
    add("pr", p.y_zero, h0, p.x_zero, 0.8, 0.2, "a1", wide, 128)          # slot, before
    add("a1", 128, "pr", p.y_zero, 1.0, -0.7, "a2", wide, 120)            # slot, slot
    add(h0, p.x_zero, "h1", 100, 0.6, 0.9, "a3", p.x_spec, p.x_zero)     # before, before
    add(h0, p.x_zero, "a2", 120, -0.5, 1.1, "a4", p.x_spec, p.x_zero)    # before, slot
    add("a3", p.x_zero, "a4", p.x_zero, 1.0, 1.0, "a5", wide, 128)        # slot, slot
    ops.append(mi.ArgmaxOp("a5", "pred"))
    model = mi.IntModel(ops=ops, tensors=dict(base.tensors), graph=base.graph, output="pred")
    model.validate()
    runner = PackedRunner(model)
    (plan,) = runner._groups.values()
    assert len(plan.adds) == 5
    kinds = {(int(a >= 0), int(b >= 0)) for a, b in plan.prog}
    assert kinds == {(1, 0), (1, 1), (0, 0), (0, 1)}
    _assert_stages_equal(runner, model, x)


@pytest.mark.parametrize("seed", range(3))
def test_smp_steps_with_saturating_hub_rows(seed):
    """Narrow accumulators and a hub row: rows beyond the bound take the clamping loop."""
    model, x = smp_model(100 + seed, (2, 4, 2)[seed], 2 + seed, narrow_acc=True, hub=50)
    runner = PackedRunner(model)
    assert runner._groups
    _, sats = runner.run(x)
    _assert_stages_equal(runner, model, x)
    ref_sats = 0
    env = model.run(x)
    for op in model.ops:
        if isinstance(op, mi.PropagateOp):
            t = model.tensors
            ref_sats += aggregate_reference(t[op.indptr], t[op.indices], t[op.edge_weight],
                                            env[op.inp] if op.inp in env else t[op.inp],
                                            op.params).saturations
    assert sum(sats.values()) == ref_sats


@pytest.mark.parametrize("seed", range(8))
def test_random_models_with_message_requantizers(seed):
    arch = ("appnp", "smp", "gcn")[seed % 3]
    gs = GraphSpec(num_nodes=40 + 9 * seed, avg_degree=3 + 2 * seed, hub_degree=(seed % 3) * 30,
                   isolated=0.1 if seed % 2 else 0.0, self_loops=seed % 2 == 0,
                   duplicates=seed % 3 == 0)
    model, x = random_model(seed, arch, bits=(2, 4)[seed % 2], graph=gs, msg=True,
                            upd=seed % 2 == 1, narrow_acc=seed % 4 == 3,
                            num_classes=(2, 3, 4)[seed % 3], steps=3)
    runner = PackedRunner(model)
    if arch != "gcn":
        assert runner._groups
    _assert_stages_equal(runner, model, x)


def test_message_arithmetic_bound():
    """msg_args admits a step only when every int32 intermediate is exact, and then its
    messages are the reference's on every pair of codes; the clamp flag is set exactly when
    some pair leaves the message range."""
    xs, ws = QuantSpec(4, signed=True), QuantSpec(8)
    for mult, shift, mspec, ok in ((40000, 20, QuantSpec(4, signed=True), True),
                                   ((1 << 16) - 1, 8, QuantSpec(8, signed=True), True),
                                   ((1 << 20), 0, QuantSpec(8, signed=True), False),
                                   (3, -4, QuantSpec(8, signed=True), True)):
        msg = Requantizer(mult, shift, 1, mspec)
        p = AggregationParams(xs, 2, ws, 3, 30, Requantizer(1, 4, 0, xs), msg=msg)
        args = msg_gather.msg_args(p)
        assert (args is not None) == ok
        if args is None:
            continue
        x_off, w_add, m, half, ls, rs, lo, hi, clamp = args
        u = np.arange(16)[:, None]
        wi = np.arange(256)[None, :]
        r = (((u - x_off) * (wi + w_add) * m) << ls) + half
        assert np.abs(r).max() < 1 << 31
        got = np.clip(r >> rs, lo, hi)
        want = msg((u - 8 - 2) * (wi - 3)).astype(np.int64) - msg.zero_point
        assert np.array_equal(got, want)
        assert clamp == int(bool(((r >> rs) < lo).any() or ((r >> rs) > hi).any()))


def test_pack_padded_layout():
    from quant.pack import pack_codes

    rng = np.random.default_rng(3)
    for bits, f in ((2, 5), (4, 3), (1, 9), (8, 2)):
        q = rng.integers(0, 1 << bits, (7, f))
        got = smp_step.pack_padded(q, 0, bits, 4)
        nb = -(-f * bits // 8)
        assert got.size == 7 * nb + msg_gather.PAD_BYTES and not got[-msg_gather.PAD_BYTES:].any()
        want = np.stack([np.asarray(pack_codes(q[i], bits)).reshape(-1)[:nb] for i in range(7)])
        assert np.array_equal(got[:7 * nb].reshape(7, nb), want)
