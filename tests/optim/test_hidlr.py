import copy
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hidlr import HiDLR
from tests.optim.conftest import group_per_param, make_quadratic

BASES = {
    "sgd": lambda g: torch.optim.SGD(g, lr=0.05),
    "momentum": lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9),
    "nesterov": lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda g: torch.optim.Adam(g, lr=0.01),
    "adamw": lambda g: torch.optim.AdamW(g, lr=0.01, weight_decay=0.1),
}


def _one_refresh(q, base, **kw):
    opt = HiDLR(BASES[base](group_per_param(q)), every=1, **kw)
    w0 = q.flat()
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    return opt, w0, q.flat()


# ------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("mode", ["diag", "full"])
@pytest.mark.parametrize("sizes", [[5], [3, 2], [3, 2, 4, 1]])
def test_raw_rates_equal_newton_rates_of_the_quadratic(base, mode, sizes):
    q = make_quadratic(sizes, seed=len(sizes))
    opt, w0, w1 = _one_refresh(q, base, mode=mode, ema=0.0, clip=None)
    b, a = q.newton(w0, w1, opt.lrs)
    expected = b / torch.diag(a) if mode == "diag" else torch.linalg.solve(a, b)
    torch.testing.assert_close(torch.tensor(opt.lrs, dtype=torch.float64), expected, rtol=1e-4, atol=0)


def test_one_group_is_gen_three_point_rule():
    q = make_quadratic([6], seed=3)
    h = 0.05
    opt = HiDLR(torch.optim.SGD(q.params, lr=h), every=1, ema=0.0, clip=None)
    w0 = q.flat()
    opt.zero_grad()
    q.loss().backward()
    grad = q.params[0].grad.clone()
    opt.step(probe=q.loss)
    with torch.no_grad():

        def at(w):
            return 0.5 * w @ q.H @ w - q.g @ w

        lp, lm, l0 = at(w0 - h * grad), at(w0 + h * grad), at(w0)
        gen = h / 2 * (lp - lm) / (lp + lm - 2 * l0) * -1
    assert opt.lrs[0] == pytest.approx(float(gen), rel=1e-6)


@pytest.mark.parametrize("shrink", [0.0, 0.5, 1.0])
def test_shrink_interpolates_between_one_group_and_per_group_newton_rates(shrink):
    q = make_quadratic([3, 2], seed=5)
    h = 0.05
    opt = HiDLR(
        torch.optim.SGD(group_per_param(q), lr=h), every=1, ema=0.0, clip=None, joint=False, horizon=0.0, shrink=shrink
    )
    w0 = q.flat()
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    w1 = q.flat()
    b, a = q.newton(w0, w1, opt.lrs)  # per unit rate along each group's direction d_k
    per_group = b / torch.diag(a)  # diag Newton rates
    m0 = float(b.sum() * h) / float(a.sum() * h * h)  # one-group multiple of the step at rate h
    expected = h * m0 * (per_group / (h * m0)) ** shrink
    torch.testing.assert_close(torch.tensor(opt.lrs, dtype=torch.float64), expected, rtol=1e-4, atol=0)
    assert opt.history[-1]["forwards"] == 1 + 2 * 4 + 3  # L(w), two lines, the one-group line


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
    base=st.sampled_from(["sgd", "adam", "momentum"]),
    mode=st.sampled_from(["diag", "full"]),
    design=st.sampled_from(["lines", "random"]),
)
def test_property_random_quadratics_and_groupings(sizes, seed, base, mode, design):
    # a random design's diagonal fit treats cross terms as noise: exact only without coupling
    q = make_quadratic(sizes, seed=seed, coupling=0.0 if (design, mode) == ("random", "diag") else 1.0)
    opt, w0, w1 = _one_refresh(q, base, mode=mode, ema=0.0, clip=None, design=design, min_r2=0.0)
    b, a = q.newton(w0, w1, opt.lrs)
    rec = opt.history[-1]["groups"]
    if mode == "diag":
        newton = b / torch.diag(a)
        loss = abs(opt.history[-1]["loss"])
        for k, g in enumerate(rec):
            # a group whose step changes the loss by less than 1e-9 of it is fitted from differences
            # near the loss's rounding (float64): its rate is not determined to 1e-4, nor its sign
            if abs(float(b[k])) * g["rate"] < 1e-9 * loss:
                continue
            if g["accepted"]:
                assert opt.lrs[k] == pytest.approx(float(newton[k]), rel=1e-4)
            else:  # only rejected when the quadratic itself says so
                assert float(newton[k]) <= 0
    else:
        if all(g["accepted"] for g in rec):
            torch.testing.assert_close(
                torch.tensor(opt.lrs, dtype=torch.float64), torch.linalg.solve(a, b), rtol=1e-4, atol=1e-10
            )


def test_joint_scale_is_the_newton_step_along_the_combined_update():
    q = make_quadratic([3, 3, 3], seed=5, coupling=4.0)  # strongly coupled: diag overshoots
    opt, w0, _ = _one_refresh(q, "sgd", ema=0.0, clip=None, joint=True)
    h = 0.05
    grad = q.H @ w0 - q.g
    d = torch.zeros(9, 3, dtype=torch.float64)
    for j in range(3):
        d[3 * j : 3 * j + 3, j] = grad[3 * j : 3 * j + 3]
    b, a = d.T @ grad, d.T @ q.H @ d
    u = b / torch.diag(a)
    scale = min(1.0, float(b @ u / (u @ a @ u)))
    assert scale < 0.9 and opt.history[-1]["joint_scale"] == pytest.approx(scale, rel=1e-6)
    torch.testing.assert_close(torch.tensor(opt.lrs, dtype=torch.float64), scale * u, rtol=1e-5, atol=0)
    assert h > 0


def test_horizon_scales_newton_rate_by_momentum_carry():
    q = make_quadratic([4, 2], seed=2)
    raw, _, _ = _one_refresh(q, "adam", ema=0.0, clip=None)
    q = make_quadratic([4, 2], seed=2)
    corrected, _, _ = _one_refresh(q, "adam", ema=0.0, clip=None, horizon=1.0)
    assert corrected.lrs == pytest.approx([0.1 * r for r in raw.lrs], rel=1e-9)


def test_clip_and_ema_rules():
    q = make_quadratic([4], seed=1)
    raw, _, _ = _one_refresh(q, "sgd", ema=0.0, clip=None)
    newton = raw.lrs[0]
    assert newton > 0.1  # far above the starting 0.05, so the clip binds
    q = make_quadratic([4], seed=1)
    opt, _, _ = _one_refresh(q, "sgd", ema=0.25, clip=(0.5, 2.0), joint=False, horizon=0.0, first_clip=None)
    assert opt.lrs[0] == pytest.approx(0.25 * 0.05 + 0.75 * 0.1)


# --------------------------------------------------------------------- state advances once
@pytest.mark.parametrize("base", ["momentum", "adam", "adamw"])
def test_base_state_advances_once_per_step(base):
    torch.manual_seed(0)
    q = make_quadratic([3, 4], seed=7)
    ref_q = copy.deepcopy(q)
    opt = HiDLR(BASES[base](group_per_param(q)), every=2)
    ref = BASES[base](group_per_param(ref_q))
    for _ in range(7):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
        for g, r in zip(ref.param_groups, opt.lrs):  # the rates HiDLR applied in this step
            g["lr"] = r
        ref.zero_grad()
        ref_q.loss().backward()
        ref.step()
        torch.testing.assert_close(q.flat(), ref_q.flat(), rtol=1e-10, atol=1e-12)
    for p, rp in zip(q.params, ref_q.params):
        for key, v in ref.state[rp].items():
            torch.testing.assert_close(opt.state[p][key], v, rtol=1e-10, atol=1e-12)
    assert len(opt.history) == 4


def test_is_an_optimizer_sharing_the_base_groups_and_state():
    q = make_quadratic([2, 2])
    base = torch.optim.Adam(group_per_param(q), lr=1e-3)
    opt = HiDLR(base)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is base.param_groups and opt.state is base.state


def test_refresh_steps_follow_every():
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), every=3)
    refreshed = []
    for _ in range(8):
        refreshed.append(opt.is_refresh_step())
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
    assert refreshed == [t % 3 == 0 for t in range(8)]
    assert [r["step"] for r in opt.history] == [0, 3, 6]


def test_auto_period_grows_while_rates_are_settled():
    q = make_quadratic([3], seed=4)
    opt = HiDLR(torch.optim.SGD(q.params, lr=0.01), every="auto", max_every=8)
    for _ in range(60):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
    steps = [r["step"] for r in opt.history]
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert steps[0] == 0 and max(gaps) == 8 and len(steps) < 30


def test_frozen_group_costs_no_probes_and_stays_put():
    q = make_quadratic([3, 2], seed=1)
    groups = group_per_param(q)
    groups[1]["lr"] = 0.0
    opt = HiDLR(torch.optim.SGD(groups, lr=0.05), every=1)
    frozen = q.params[1].detach().clone()
    calls = []

    def probe():
        calls.append(1)
        return q.loss()

    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=probe)
    assert torch.equal(q.params[1].detach(), frozen)
    rec = opt.history[-1]
    assert rec["groups"][1]["reason"] == "frozen" and opt.lrs[1] == 0.0
    # L(w), the first refresh's test of the base step (it descends: no cut), one line of 4, the joint line
    assert len(calls) == rec["forwards"] == 1 + 1 + 4 + 3


def test_add_param_group_extends_the_rates():
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.SGD([{"params": [q.params[0]]}], lr=0.1))
    opt.add_param_group({"params": [q.params[1]], "lr": 0.3})
    assert opt.lrs == [0.1, 0.3] and len(opt.optimizer.param_groups) == 2


def test_unresolved_curvature_is_rejected_and_moves_nothing_far():
    """A group the loss sees only linearly has no curvature to fit; in float32 its fitted ``a`` is
    rounding noise and its Newton step absurd. It must keep its rate, and the probes must leave
    its weights where the plain step puts them."""
    torch.manual_seed(0)
    w0 = torch.nn.Parameter(torch.randn(20))
    w1 = torch.nn.Parameter(torch.randn(20))
    h = torch.diag(torch.linspace(1.0, 3.0, 20))

    def loss():
        return 0.5 * w0 @ h @ w0 + 1000.0 + 1e-4 * w1.sum()

    opt = HiDLR(torch.optim.Adam([{"params": [w0]}, {"params": [w1]}], lr=1e-3), every=1)
    before = w1.detach().clone()
    loss().backward()
    opt.step(probe=loss)
    g1 = opt.history[-1]["groups"][1]
    assert not g1["accepted"] and opt.lrs[1] == 1e-3
    assert float((w1.detach() - before).abs().max()) < 2e-3  # one Adam step at 1e-3, nothing more


def test_full_mode_rates_minimise_the_quadratic_over_non_negative_rates():
    """Where ``A^-1 b`` has a negative entry, that group keeps its rate and the others take the
    minimiser with it held at 0 (the non-negative QP), not the rates solved as if it moved."""
    from hidlr.optim.qp import nonneg_quadratic_min

    for seed in range(200):
        q = make_quadratic([2, 2, 2], seed=seed, coupling=6.0)
        w0 = q.flat()
        grad = q.H @ w0 - q.g
        d = torch.zeros(6, 3, dtype=torch.float64)
        for j in range(3):
            d[2 * j : 2 * j + 2, j] = grad[2 * j : 2 * j + 2]
        b, a = d.T @ grad, d.T @ q.H @ d
        if (torch.linalg.solve(a, b) < 0).any():
            break
    else:
        pytest.fail("no coupled quadratic with a negative unconstrained rate")
    h = 0.05
    opt, w0, _ = _one_refresh(q, "sgd", mode="full", ema=0.0, clip=None)
    z = nonneg_quadratic_min(a, b)  # in rates (d at unit rate)
    groups = opt.history[-1]["groups"]
    for k, g in enumerate(groups):
        if float(z[k]) > 0:
            assert g["accepted"] and opt.lrs[k] == pytest.approx(float(z[k]), rel=1e-6)
        else:
            assert not g["accepted"] and "not positive" in g["reason"] and opt.lrs[k] == h
    assert (z == 0).any() and (z > 0).any()


def test_groups_per_refresh_probes_groups_in_turn_and_leaves_the_others_at_their_rates():
    q = make_quadratic([2, 2, 2, 2, 2], seed=13)
    ref_q = copy.deepcopy(q)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.02), every=1, groups_per_refresh=2)
    ref = torch.optim.SGD(group_per_param(ref_q), lr=0.02)
    probed_sets = []
    for _ in range(4):
        before = list(opt.lrs)
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
        rec = opt.history[-1]
        probed = [k for k, g in enumerate(rec["groups"]) if g["a"] is not None]
        probed_sets.append(probed)
        # L(w_t), the fit origin, two lines, the one-group line (shrink), the joint line; the first
        # refresh also tests the base step (it descends: no cut)
        assert rec["forwards"] == 1 + 1 + 4 * 2 + 3 + 3 + (len(probed_sets) == 1)
        for k, g in enumerate(rec["groups"]):
            if k not in probed:
                assert g["reason"].startswith("not probed") and opt.lrs[k] == before[k]
        # every group moved as plain SGD at the rate the step applied to it
        for g, r in zip(ref.param_groups, opt.lrs):
            g["lr"] = r
        ref.zero_grad()
        ref_q.loss().backward()
        ref.step()
        torch.testing.assert_close(q.flat(), ref_q.flat(), rtol=1e-10, atol=1e-12)
    assert probed_sets == [[0, 1], [2, 3], [0, 4], [1, 2]]


def test_a_huge_but_finite_gradient_is_not_refused():
    w = torch.nn.Parameter(torch.ones(4))
    opt = HiDLR(torch.optim.SGD([w], lr=1e-30), every=10**6)
    opt.step(probe=lambda: w.sum()) if False else None
    w.grad = torch.full((4,), 1e30)  # its squared norm overflows float32
    opt._next_refresh = 1  # a plain step
    opt.step()
    assert torch.all(w.detach() < 1.0)


def test_probed_groups_take_the_newton_rate_at_the_others_new_position():
    """With some groups not probed, the fit's origin is the weights after their step: a probed
    group's raw rate is b_k / a_k there."""
    q = make_quadratic([2, 3, 2], seed=21)
    h = 0.03
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=h), every=1, groups_per_refresh=1, ema=0.0, clip=None)
    w0 = q.flat()
    opt.zero_grad()
    q.loss().backward()
    grad = q.H @ w0 - q.g
    opt.step(probe=q.loss)
    origin = w0.clone()
    origin[2:] -= h * grad[2:]  # groups 1 and 2 took their plain step
    d = torch.zeros(7, dtype=torch.float64)
    d[:2] = grad[:2]
    b = (q.H @ origin - q.g) @ d
    a = d @ q.H @ d
    assert opt.history[-1]["groups"][0]["accepted"]
    assert opt.lrs[0] == pytest.approx(float(b / a), rel=1e-6) and opt.lrs[1:] == [h, h]
