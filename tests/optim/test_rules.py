"""The rate rules on plain numbers: acceptance, Newton multiples, joint line, momentum, clip and EMA."""

import math

import pytest
import torch

from hidlr.optim import rules
from hidlr.optim.quadfit import QuadFit
from hidlr.optim.records import GroupDecision
from hidlr.optim.rules import RuleConfig


def _fit(b, a, r2=None, r2_all=1.0):
    b = torch.tensor(b, dtype=torch.float64)
    a = torch.tensor(a, dtype=torch.float64)
    r2 = torch.ones(len(b), dtype=torch.float64) if r2 is None else torch.tensor(r2, dtype=torch.float64)
    return QuadFit(b, a, r2, r2_all)


def _decision(rate=0.1, estimate=0.1, newton=0.2, accepted=True, name="g"):
    return GroupDecision(
        name=name,
        rate=rate,
        estimate=estimate,
        newton_rate=newton if accepted else None,
        a=1.0,
        b=1.0,
        r2=1.0,
        accepted=accepted,
        reason=None if accepted else "x",
    )


@pytest.mark.parametrize(
    "a, b, r2, expected",
    [
        (2.0, 1.0, 0.99, None),
        (2.0, 1.0, float("nan"), None),  # no own probes: fit quality not tested
        (0.0, 1.0, 1.0, "not convex"),
        (-1.0, 1.0, 1.0, "not convex"),
        (2.0, 0.0, 1.0, "not a descent direction"),
        (2.0, 1.0, 0.5, "poor quadratic fit"),
        (float("inf"), 1.0, 1.0, "non-finite fit"),
        (2.0, float("nan"), 1.0, "non-finite fit"),
    ],
)
def test_diag_rejection(a, b, r2, expected):
    why = rules.diag_rejection(a, b, r2, min_r2=0.9)
    assert why is None if expected is None else expected in why


def test_diag_newton_multiples_are_b_over_a():
    fit = _fit([1.0, 3.0, -1.0], [[2.0, 5.0, 0.0], [5.0, 4.0, 0.0], [0.0, 0.0, 1.0]])
    mult, why = rules.newton_multiples(fit, [True, True, True], "diag", 0.9)
    assert mult[:2] == [0.5, 0.75] and math.isnan(mult[2])
    assert why[:2] == [None, None] and "descent" in why[2]


def test_full_newton_multiples_solve_the_system_when_positive():
    a = [[4.0, 1.0], [1.0, 3.0]]
    fit = _fit([1.0, 2.0], a)
    mult, why = rules.newton_multiples(fit, [True, True], "full", 0.9)
    expected = torch.linalg.solve(torch.tensor(a, dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert mult == pytest.approx(expected.tolist(), rel=1e-12) and why == [None, None]


def test_full_mode_minimises_over_non_negative_rates():
    # unconstrained A^-1 b = (-0.4545.., 1.1818..): the first group at its bound 0, the second
    # then minimises alone: b_2 / A_22 = 4 / 3, not the 1.18 that assumed the first one moved
    fit = _fit([-1.0, 4.0], [[4.0, 2.0], [2.0, 3.0]])
    mult, why = rules.newton_multiples(fit, [True, True], "full", 0.9)
    assert "not positive" in why[0] and math.isnan(mult[0])
    assert why[1] is None and mult[1] == pytest.approx(4.0 / 3.0, rel=1e-12)


def test_full_mode_falls_back_to_diag_when_not_positive_definite_or_poor():
    fit = _fit([1.0, 1.0], [[1.0, 2.0], [2.0, 1.0]])
    mult, why = rules.newton_multiples(fit, [True, True], "full", 0.9)
    assert mult == [1.0, 1.0] and why == [None, None]
    poor = _fit([1.0, -1.0], [[1.0, 0.0], [0.0, 1.0]], r2_all=0.5)
    mult, why = rules.newton_multiples(poor, [True, True], "full", 0.9)
    assert mult[0] == 1.0 and "poor joint fit" in why[1] and "descent" in why[1]


def test_inactive_groups_get_no_multiple():
    fit = _fit([1.0, 1.0], [[1.0, 0.0], [0.0, 1.0]])
    mult, why = rules.newton_multiples(fit, [True, False], "diag", 0.9)
    assert mult[0] == 1.0 and math.isnan(mult[1]) and why[1] is not None


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (1.0, 1.0, None),  # curvature resolved: the Newton rule applies
        (1e-20, 1.0, (100.0, None)),  # slope resolved, curvature not: grow the rate
    ],
)
def test_unresolved_rule(a, b, expected):
    assert rules.unresolved(a, b, span=2.0, resolution=1e-10, max_multiple=100.0) == expected


def test_unresolved_rule_when_nothing_is_measurable():
    mult, why = rules.unresolved(1e-20, 1e-20, span=2.0, resolution=1e-10, max_multiple=100.0)
    assert math.isnan(mult) and "does not change measurably" in why


def test_newton_decisions_records_units_and_reasons():
    fit = _fit([0.2, 0.3, 0.0], [[0.4, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.0]])
    out = rules.newton_decisions(
        fit,
        active=[True, True, False],
        fit_active=[True, False, False],
        rates=[0.1, 0.2, 0.0],
        estimates=[0.1, 0.2, 0.0],
        names=["a", "b", "c"],
        config=RuleConfig(),
        span=2.0,
        resolution=0.0,
    )
    a, b, c = out
    assert a.accepted and a.newton_rate == pytest.approx(0.05) and a.a == pytest.approx(40.0)
    assert a.b == pytest.approx(2.0)
    assert not b.accepted and b.reason == "non-finite probe loss" and b.newton_rate is None
    assert c.reason == "frozen" and c.a is None and c.b is None


def test_joint_multiples_cap_and_inactive():
    ds = [_decision(newton=0.25), _decision(newton=1000.0), _decision(accepted=False), _decision()]
    assert rules.joint_multiples(ds, [True, True, True, False], max_multiple=100.0) == [2.5, 100.0, 1.0, 0.0]


def test_joint_scale_is_the_1d_newton_step_below_one():
    s = [0.5, 1.0, 1.5]
    beta, alpha = 2.0, 8.0  # y = -beta s + alpha s^2 / 2, minimum at s = 0.25
    y = [-beta * x + alpha * x * x / 2 for x in s]
    assert rules.joint_scale(s, y) == pytest.approx(0.25, rel=1e-12)
    assert rules.joint_scale(s, [-beta * x + 1.0 * x * x / 2 for x in s]) == 1.0  # undershoot: keep
    assert rules.joint_scale(s, [-beta * x - x * x for x in s]) == 1.0  # concave: keep
    assert rules.joint_scale(s, [x + x * x for x in s]) is None  # ascent
    assert rules.joint_scale(s, [0.0, float("nan"), 1.0]) is None


def test_apply_joint_scale():
    ds = [_decision(newton=0.4), _decision(accepted=False)]
    scaled = rules.apply_joint_scale(ds, 0.5)
    assert scaled[0].newton_rate == pytest.approx(0.2) and scaled[1] == ds[1]
    rejected = rules.apply_joint_scale(ds, None)
    assert not rejected[0].accepted and "combined step" in rejected[0].reason


@pytest.mark.parametrize(
    "beta, horizon, expected", [(0.9, 0.0, 1.0), (0.9, 1.0, 0.1), (0.9, 0.5, 0.1**0.5), (0.0, 0.5, 1.0)]
)
def test_momentum_factor(beta, horizon, expected):
    assert rules.momentum_factor(beta, horizon) == pytest.approx(expected, rel=1e-12)


def test_clip_and_smooth():
    assert rules.clip_rate(1.0, 5.0, (0.5, 2.0)) == 2.0
    assert rules.clip_rate(1.0, 0.1, (0.5, 2.0)) == 0.5
    assert rules.clip_rate(1.0, 1.3, (0.5, 2.0)) == 1.3
    assert rules.clip_rate(1.0, 5.0, None) == 5.0
    assert rules.smooth(1.0, 3.0, 0.25) == pytest.approx(0.25 + 0.75 * 3.0)
    assert rules.smooth(1.0, 3.0, 0.0) == 3.0


def test_settle_clips_the_corrected_newton_rate_then_smooths():
    ds = [_decision(estimate=0.1, newton=1.0), _decision(accepted=False, estimate=0.3)]
    cfg = RuleConfig(ema=0.5, clip=(0.5, 2.0), horizon=1.0)
    out = rules.settle(ds, betas=[0.9, 0.9], config=cfg)
    # 1.0 * (1 - 0.9) = 0.1 -> within clip -> smoothed 0.5 * 0.1 + 0.5 * 0.1
    assert out[0].target == pytest.approx(0.1) and out[0].estimate == pytest.approx(0.1)
    out = rules.settle(ds, betas=[0.0, 0.0], config=cfg)
    assert out[0].target == pytest.approx(0.2) and out[0].estimate == pytest.approx(0.15)
    assert out[1] == ds[1] and out[1].target is None


def test_rule_config_is_swappable():
    cfg = RuleConfig()
    other = RuleConfig(ema=0.0, clip=None, joint=False)
    assert cfg != other and other.clip is None
    with pytest.raises(AttributeError):
        cfg.ema = 0.5  # frozen: a config is replaced, not mutated


def test_one_group_multiple_is_the_1d_newton_step():
    s = list(rules.ONE_GROUP_LINE)
    beta, alpha = 3.0, 2.0  # minimum at 1.5
    assert rules.one_group_multiple(s, [-beta * x + alpha * x * x / 2 for x in s]) == pytest.approx(1.5, rel=1e-12)
    assert rules.one_group_multiple(s, [-beta * x - x * x for x in s]) is None  # concave
    assert rules.one_group_multiple(s, [x + x * x for x in s]) is None  # ascent
    assert rules.one_group_multiple(s, [0.0, float("inf"), 1.0]) is None


def test_one_group_line_returns_slope_and_curvature():
    s = list(rules.ONE_GROUP_LINE)
    beta, alpha = 3.0, 2.0
    out = rules.one_group_line(s, [-beta * x + alpha * x * x / 2 for x in s])
    assert out == pytest.approx((beta, alpha, 1.0), rel=1e-12)
    assert rules.one_group_line(s, [0.0, float("nan"), 1.0]) is None


def test_shrink_to_one_group_interpolates_in_log_space():
    ds = [
        _decision(rate=0.1, newton=0.8),
        _decision(rate=0.2, newton=0.1),
        _decision(accepted=False),
        _decision(accepted=False),
    ]
    active = [True, True, True, False]
    m0 = 2.0
    full = rules.shrink_to_one_group(ds, active, m0, 1.0)
    assert full[0].newton_rate == pytest.approx(0.8) and full[1].newton_rate == pytest.approx(0.1)
    one = rules.shrink_to_one_group(ds, active, m0, 0.0)
    assert one[0].newton_rate == pytest.approx(0.2) and one[1].newton_rate == pytest.approx(0.4)
    half = rules.shrink_to_one_group(ds, active, m0, 0.5)
    # multiples 8 and 0.5 against m0 = 2: geometric means 4 and 1
    assert half[0].newton_rate == pytest.approx(0.4) and half[1].newton_rate == pytest.approx(0.2)
    assert half[2] == ds[2]  # rejected: keeps its rate
    assert half[3] == ds[3]  # inactive: untouched
    assert rules.shrink_to_one_group(ds, active, None, 0.5) == ds


def test_shrink_leaves_groups_with_non_finite_probes_alone():
    d = GroupDecision(
        name="g",
        rate=0.1,
        estimate=0.1,
        newton_rate=None,
        a=None,
        b=None,
        r2=None,
        accepted=False,
        reason="non-finite probe loss",
    )
    assert rules.shrink_to_one_group([d], [True], 2.0, 0.5) == [d]


def test_clipped_says_whether_a_target_is_cut():
    cfg = RuleConfig(clip=(0.5, 2.0), horizon=0.0)
    inside = [_decision(estimate=0.1, newton=0.15)]
    above = [_decision(estimate=0.1, newton=0.5)]
    below = [_decision(estimate=0.1, newton=0.01)]
    assert not rules.clipped(inside, [0.9], cfg)
    assert rules.clipped(above, [0.9], cfg) and rules.clipped(below, [0.9], cfg)
    assert not rules.clipped([_decision(accepted=False)], [0.9], cfg)
    assert not rules.clipped(above, [0.9], RuleConfig(clip=None))
    # the momentum correction is applied before the comparison: 0.6 * (1 - 0.9) = 0.06 is inside
    assert not rules.clipped([_decision(estimate=0.1, newton=0.6)], [0.9], RuleConfig(clip=(0.5, 2.0), horizon=1.0))


def test_first_refresh_config_widens_the_clip_and_drops_the_smoothing():
    cfg = RuleConfig(first_clip=(0.01, 100.0))
    first = rules.first_refresh_config(cfg)
    assert first.clip == (0.01, 100.0) and first.ema == 0.0 and first.horizon == cfg.horizon
    assert rules.first_refresh_config(RuleConfig()) == RuleConfig()
    out = rules.settle([_decision(estimate=1e-5, newton=1e-2)], [0.0], first)
    assert out[0].estimate == pytest.approx(1e-3)  # clipped at 100x, not smoothed


def test_line_decisions_give_every_active_group_the_line_multiple():
    names = ["a", "b", "c"]
    out = rules.line_decisions([True, True, False], [0.1, 0.2, 0.0], [0.1, 0.2, 0.0], names, (1.5, None))
    assert [d.accepted for d in out] == [True, True, False]
    assert out[0].newton_rate == pytest.approx(0.15) and out[1].newton_rate == pytest.approx(0.3)
    assert out[2].reason == "frozen" and out[0].a is None and out[0].b is None
    out = rules.line_decisions([True], [0.1], [0.1], ["a"], (None, rules.LINE_ASCENT))
    assert not out[0].accepted and out[0].reason == rules.LINE_ASCENT and out[0].newton_rate is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ((3.0, 2.0, 1.0), (1.5, None)),
        ((-1.0, 2.0, 1.0), (None, rules.LINE_ASCENT)),
        ((1.0, -2.0, 1.0), (None, rules.NO_LINE)),
        (None, (None, "non-finite loss along the combined step")),
        ((1.0, 1e-12, 1.0), (100.0, None)),  # curvature below the rounding, slope above: grow
        ((1e-12, 1e-12, 1.0), (None, "loss does not change measurably along the update")),
        ((3.0, 2.0, 0.5), (None, "poor quadratic fit of the line (R^2 = 0.500 < 0.9)")),
    ],
)
def test_line_multiple(line, expected):
    assert rules.line_multiple(line, span=2.0, resolution=1e-9, max_multiple=100.0, min_r2=0.9) == expected


@pytest.mark.parametrize(
    ("multiple", "expected"),
    [
        ((None, rules.NO_LINE), (100.0, None)),  # descends, concave: the minimum lies beyond the probes
        ((1.5, None), (1.5, None)),
        ((None, rules.LINE_ASCENT), (None, rules.LINE_ASCENT)),
        ((None, "non-finite loss along the combined step"), (None, "non-finite loss along the combined step")),
    ],
)
def test_a_growing_phase_grows_a_concave_descent_and_nothing_else(multiple, expected):
    assert rules.grow_concave_descent(multiple, max_multiple=100.0) == expected


@pytest.mark.parametrize(
    ("loss", "lowest", "rose"),
    [(1.06, 1.0, True), (1.04, 1.0, False), (0.9, 1.0, False), (-0.9, -1.0, True), (-0.96, -1.0, False)],
)
def test_a_growth_overshot_when_the_probe_loss_rose_above_its_lowest_by_more_than_the_allowed_share(loss, lowest, rose):
    assert rules.rose_after_growth(loss, lowest, rise=0.05) is rose


def test_undoing_a_growth_lowers_only_the_active_groups_that_grew():
    def decision(name, estimate):
        return GroupDecision(name, 1.0, estimate, None, None, None, None, True, None, target=estimate)

    out = rules.undo_growth([decision("a", 4.0), decision("b", 0.5), decision("c", 4.0)], [1.0, 1.0, 1.0], [1, 1, 0])
    assert [d.estimate for d in out] == [1.0, 0.5, 4.0]
    assert (out[0].accepted, out[0].reason, out[0].target) == (False, rules.GROWTH_UNDONE, None)
    assert out[1:] == [decision("b", 0.5), decision("c", 4.0)]
