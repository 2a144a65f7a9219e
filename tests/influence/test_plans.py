import itertools
import json
import math

import pytest
import torch
from torch import nn

from hidlr import HiDLR, groups
from hidlr.influence import (
    FreezePlan,
    apply_plan,
    freeze,
    influence_table,
    knapsack,
    plan_for,
    plan_from_scores,
)


def test_knapsack_is_exact_against_brute_force():
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        n = 7
        values = (torch.rand(n, generator=gen) * 10 - 1).tolist()  # some items worthless
        weights = torch.randint(1, 20, (n,), generator=gen).tolist()
        cap = int(torch.randint(0, 60, (1,), generator=gen))
        best = max(
            (sum(values[i] for i in s), s)
            for r in range(n + 1)
            for s in itertools.combinations(range(n), r)
            if sum(weights[i] for i in s) <= cap and all(values[i] > 0 for i in s)
        )
        chosen = knapsack(values, weights, cap)
        assert sum(weights[i] for i in chosen) <= cap
        assert sum(values[i] for i in chosen) == pytest.approx(best[0])


@pytest.mark.parametrize("budget", [0.01, 0.05, 0.2, 0.5, 1.0])
def test_plans_respect_the_budget_exactly(budget):
    gen = torch.Generator().manual_seed(1)
    sizes = torch.randint(1, 5000, (40,), generator=gen).tolist()
    infl = torch.rand(40, generator=gen).tolist()
    names = [f"g{k}" for k in range(40)]
    plan = plan_from_scores(names, infl, sizes, budget=budget)
    assert plan.trainable_params <= budget * sum(sizes)
    assert plan.trainable_params == sum(sizes[names.index(n)] for n in plan.kept_groups)
    assert set(plan.kept_groups) | set(plan.frozen_groups) == set(names)
    # nothing frozen would still fit: the knapsack does not waste budget on a better-valued group
    room = budget * sum(sizes) - plan.trainable_params
    assert all(sizes[names.index(n)] > room for n in plan.frozen_groups)


def test_plan_by_number_of_groups_and_errors():
    names, infl, sizes = ["a", "b", "c", "d"], [3.0, 0.0, 2.0, 1.0], [10, 10, 10, 10]
    assert plan_from_scores(names, infl, sizes, max_groups=2).kept_groups == ("a", "c")
    assert plan_from_scores(names, infl, sizes, max_groups=4).kept_groups == ("a", "c", "d")  # b is worthless
    assert plan_from_scores(names, infl, sizes, max_groups=1, keep=["d"]).kept_groups == ("d",)
    with pytest.raises(ValueError, match="empty"):
        plan_from_scores(names, infl, sizes, budget=0.001)
    with pytest.raises(ValueError, match="smallest group"):
        plan_from_scores(names, infl, sizes, budget=0.2)
    with pytest.raises(ValueError, match="budget"):
        plan_from_scores(names, infl, sizes, budget=0.0)
    with pytest.raises(ValueError, match="exactly one"):
        plan_from_scores(names, infl, sizes, budget=0.5, max_groups=1)
    with pytest.raises(ValueError, match="unknown groups"):
        plan_from_scores(names, infl, sizes, budget=0.5, keep=["zz"])


def _net():
    return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


def _short_run(model, steps=12):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 6, generator=gen), torch.randn(128, 1, generator=gen)

    def loss():
        return ((model(x) - y) ** 2).mean()

    opt = HiDLR(torch.optim.Adam(groups.by_layer(model), lr=1e-2), every=2, probe=loss)
    for _ in range(steps):
        opt.zero_grad()
        loss().backward()
        opt.step()
    return opt, loss


def test_freeze_for_real_no_gradient_no_state_no_probes():
    torch.manual_seed(0)
    model = _net()
    opt, loss = _short_run(model)
    total = sum(p.numel() for p in model.parameters())
    plan = freeze(opt, budget=0.1, model=model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == plan.trainable_params <= 0.1 * total
    assert plan.frozen_groups and plan.kept_groups
    frozen = [p for g in opt.param_groups if g["name"] in plan.frozen_groups for p in g["params"]]
    assert all(not p.requires_grad and p.grad is None and p not in opt.state for p in frozen)
    before = [p.detach().clone() for p in frozen]
    n_kept = len(plan.kept_groups)
    for _ in range(4):
        opt.zero_grad()
        loss().backward()
        assert all(p.grad is None for p in frozen)
        opt.step()
    assert all(torch.equal(a, p) for a, p in zip(before, frozen))
    # the applied rates (what loggers show): 0 for the frozen groups, the estimate for the others
    for g, rate, estimate in zip(opt.param_groups, opt.lrs, opt.estimates):
        assert rate == (0.0 if g["name"] in plan.frozen_groups else estimate) and estimate > 0
    last = opt.history[-1]
    assert last["step"] > 12
    probed = [g for g in last["groups"] if g["reason"] != "no gradients"]
    assert len(probed) == n_kept
    assert last["forwards"] <= 1 + 4 * n_kept + 3  # line probes plus the joint check, kept groups only


def test_plan_transfer_by_names_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    source = _net()
    opt, _ = _short_run(source)
    plan = plan_for(opt, max_groups=1, model=source)
    path = tmp_path / "plan.json"
    plan.save(path)
    loaded = FreezePlan.load(path)
    assert loaded == plan
    target = _net()
    frozen = apply_plan(target, loaded)
    assert frozen == sum(p.numel() for n, p in target.named_parameters() if n in plan.frozen)
    assert [n for n, p in target.named_parameters() if p.requires_grad] == list(plan.trainable)
    other = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 1))
    with pytest.raises(ValueError, match="lacks"):
        apply_plan(other, plan)
    bigger = nn.Sequential(*_net(), nn.Linear(1, 1))
    with pytest.raises(ValueError, match="does not name"):
        apply_plan(bigger, plan)
    apply_plan(bigger, plan, strict=False)
    assert bigger[5].weight.requires_grad
    with pytest.raises(ValueError, match="names no parameters"):
        apply_plan(target, plan_for(opt, max_groups=1))
    with pytest.raises(ValueError, match="empty"):
        freeze(opt, budget=1e-9)
    assert all(p.requires_grad for p in source.parameters())  # a refused plan changes nothing


def test_an_optimizer_without_group_fits_is_refused():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(5)])
    opt = HiDLR(torch.optim.SGD(groups.by_layer(model), lr=0.01), every=1, max_groups=2)
    x = torch.randn(8, 2)
    opt.zero_grad()
    model(x).square().mean().backward()
    opt.step(probe=lambda: model(x).square().mean())
    with pytest.raises(ValueError, match="max_groups=None"):
        freeze(opt, budget=0.5)
    with pytest.raises(ValueError, match="max_groups=None"):
        influence_table(opt)


def _steps(opt, model, x, n):
    for _ in range(n):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step(probe=lambda: model(x).square().mean())


def test_groups_the_probe_budget_skipped_are_refused_until_measured():
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(6)])  # 6 groups, 3 probed per refresh
    x = torch.randn(16, 3)
    opt = HiDLR(torch.optim.SGD(groups.by_layer(model), lr=0.01), every=1, max_groups=None, groups_per_refresh=3)
    _steps(opt, model, x, 1)  # one refresh: groups 3, 4, 5 never probed
    for call in (lambda: influence_table(opt), lambda: plan_for(opt, budget=0.5), lambda: freeze(opt, budget=0.5)):
        never = r"3 of 6 groups were never probed \('3', '4', '5'\).*groups_per_refresh=3"
        with pytest.raises(ValueError, match=never):
            call()
    assert all(p.requires_grad for p in model.parameters())  # the refused freeze changed nothing
    _steps(opt, model, x, 1)  # the second refresh probes the other three
    assert all(v > 0 for v in opt.influence)
    assert len(influence_table(opt)) == 6


def test_every_group_is_probed_at_once_with_no_probe_budget_and_frozen_groups_do_not_count():
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(6)])
    x = torch.randn(16, 3)
    opt = HiDLR(torch.optim.SGD(groups.by_layer(model), lr=0.01), every=1, max_groups=None, groups_per_refresh=None)
    _steps(opt, model, x, 1)
    assert len(influence_table(opt)) == 6

    opt = HiDLR(torch.optim.SGD(groups.by_layer(model), lr=0.01), every=1, max_groups=None, groups_per_refresh=3)
    _steps(opt, model, x, 1)
    for k in ("3", "4", "5"):  # the never-probed groups frozen by hand: nothing unknown is left to plan
        next(g for g in opt.param_groups if g["name"] == k)["params"][0].requires_grad_(False)
    for k in ("3", "4", "5"):
        next(g for g in opt.param_groups if g["name"] == k)["params"][1].requires_grad_(False)
    plan = plan_for(opt, budget=1.0)
    assert set(plan.kept_groups) == {"0", "1", "2"}


def test_freezing_restarts_the_refresh_schedule_for_the_groups_left():
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(6)])
    x = torch.randn(16, 3)
    opt = HiDLR(torch.optim.SGD(groups.by_layer(model), lr=0.01), max_groups=None, groups_per_refresh=None)
    _steps(opt, model, x, 12)
    assert not opt.is_refresh_step()  # the refreshes of six groups spent the probe credit
    plan = freeze(opt, budget=0.5)
    assert plan.frozen_groups and opt.is_refresh_step()
    _steps(opt, model, x, 1)
    fitted = [g["name"] for g in opt.history[-1]["groups"] if g["a"] is not None]
    assert fitted == list(plan.kept_groups)


def _twelve_layer_run():
    """HiDLR over groups.by_layer of 12 Linear layers (groups '0'..'11'), every group measured."""
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(12)])
    x = torch.randn(16, 3)
    opt = HiDLR(torch.optim.SGD(groups.by_layer(model), lr=0.01), every=1, max_groups=None, groups_per_refresh=None)
    _steps(opt, model, x, 3)
    return model, opt


def test_keep_names_groups_exactly_and_a_string_is_one_name():
    names, sizes = [str(k) for k in range(12)], [5] * 12
    infl = [1.0] * 12
    infl[5], infl[6] = 3.0, 2.0
    # "10" is one group, not the groups "1" and "0" (nor every name that is a substring of it)
    assert plan_from_scores(names, infl, sizes, max_groups=3, keep="10").kept_groups == ("5", "6", "10")
    assert plan_from_scores(names, infl, sizes, max_groups=2, keep=None).kept_groups == ("5", "6")
    with pytest.raises(TypeError, match="keep must hold group names"):
        plan_from_scores(names, infl, sizes, max_groups=3, keep=[10])
    with pytest.raises(TypeError, match="keep must be a group name"):
        plan_from_scores(names, infl, sizes, max_groups=3, keep=10)

    model, opt = _twelve_layer_run()
    ranked = sorted(range(12), key=lambda k: (-opt.influence[k], str(k)))
    top_two = [k for k in ranked if k != 10][:2]
    expected = tuple(str(k) for k in sorted([*top_two, 10]))
    assert plan_for(opt, max_groups=3, keep="10").kept_groups == expected
    assert plan_for(opt, max_groups=3, keep=None) == plan_for(opt, max_groups=3)
    assert freeze(opt, max_groups=1, keep="10").kept_groups == ("10",)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["10.weight", "10.bias"]


def test_influence_table_refuses_what_plan_for_refuses():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    fresh = HiDLR(torch.optim.SGD(groups.by_layer(model), lr=0.01), every=1)
    for call in (influence_table, plan_for):
        with pytest.raises(ValueError, match="has not refreshed yet"):
            call(fresh)
        with pytest.raises(TypeError, match="opt must be a HiDLR with refresh history, got Adam"):
            call(torch.optim.Adam(model.parameters()))


def test_max_groups_refuses_non_finite_influence_as_the_budget_does():
    for rule in ({"max_groups": 1}, {"budget": 0.5}):
        with pytest.raises(ValueError, match="values must be finite"):
            plan_from_scores(["a", "b"], [float("nan"), 1.0], [5, 5], **rule)


def test_numpy_scalars_are_accepted_and_bad_arguments_are_named():
    np = pytest.importorskip("numpy")
    names, infl, sizes = ["a", "b", "c", "d"], [3.0, 0.0, 2.0, 1.0], [10, 10, 10, 10]
    by_np = plan_from_scores(names, infl, sizes, max_groups=np.int64(2))
    assert by_np == plan_from_scores(names, infl, sizes, max_groups=2) and type(by_np.max_groups) is int
    assert FreezePlan.from_json(by_np.to_json()) == by_np
    assert plan_from_scores(names, infl, sizes, budget=np.float32(0.5)).kept_groups == ("a", "c")
    with pytest.raises(ValueError, match="max_groups"):
        plan_from_scores(names, infl, sizes, max_groups=True)
    with pytest.raises(ValueError, match="total_params must be a positive int"):
        FreezePlan(("a",), (), 0, 0, {"a": 1.0}, {"a": 0})

    model, opt = _twelve_layer_run()
    with pytest.raises(TypeError, match="model must be an nn.Module or None, got str"):
        plan_for(opt, max_groups=1, model="m")
    with pytest.raises(TypeError, match="model must be an nn.Module or None"):
        freeze(opt, max_groups=1, model="m")
    assert all(p.requires_grad for p in model.parameters())  # the refused freeze changed nothing
    for bad in (None, {"trainable": [], "frozen": []}):
        with pytest.raises(TypeError, match="plan must be a FreezePlan"):
            apply_plan(model, bad)


@pytest.mark.parametrize("max_reach", [0.1, 0.25, 0.5, 0.75, 1.0])
def test_max_reach_keeps_only_the_last_groups_and_is_exact_among_them(max_reach):
    gen = torch.Generator().manual_seed(2)
    n = 10
    names = [f"g{k}" for k in range(n)]
    infl = (torch.rand(n, generator=gen) * 5).tolist()
    infl[0] = 100.0  # the most influential group lies at the input end
    sizes = torch.randint(1, 30, (n,), generator=gen).tolist()
    plan = plan_from_scores(names, infl, sizes, budget=0.4, max_reach=max_reach)
    reachable = list(range(n - math.ceil(max_reach * n), n))
    capacity = math.floor(0.4 * sum(sizes))
    best = max(
        sum(infl[i] for i in s)
        for r in range(len(reachable) + 1)
        for s in itertools.combinations(reachable, r)
        if sum(sizes[i] for i in s) <= capacity
    )
    kept = [names.index(g) for g in plan.kept_groups]
    assert set(kept) <= set(reachable) and sum(infl[i] for i in kept) == pytest.approx(best)
    assert ("g0" in plan.kept_groups) == (max_reach == 1.0)
    assert plan.reach == (n - min(kept)) / n <= math.ceil(max_reach * n) / n  # how far back the backward pass runs
    assert plan.max_reach == max_reach and FreezePlan.from_json(plan.to_json()) == plan
    by_count = plan_from_scores(names, infl, sizes, max_groups=2, max_reach=max_reach)
    top_two = sorted(reachable, key=lambda i: -infl[i])[:2]
    assert set(by_count.kept_groups) == {names[i] for i in top_two}


def test_max_reach_refuses_bad_values_and_kept_groups_it_cannot_reach():
    names, infl, sizes = ["a", "b", "c", "d"], [3.0, 1.0, 2.0, 1.0], [10, 10, 10, 10]
    for bad in (0, 0.0, 1.5, -0.2, float("nan"), True, "half"):
        with pytest.raises(ValueError, match="max_reach must be a fraction in"):
            plan_from_scores(names, infl, sizes, budget=0.5, max_reach=bad)
    with pytest.raises(
        ValueError, match=r"keep names groups before the last 2 of 4 groups that max_reach=0.5 allows: a"
    ):
        plan_from_scores(names, infl, sizes, budget=0.5, keep="a", max_reach=0.5)
    assert plan_from_scores(names, infl, sizes, budget=0.5, keep="d", max_reach=0.5).kept_groups == ("c", "d")
    old = json.loads(plan_from_scores(names, infl, sizes, budget=0.5).to_json())
    del old["max_reach"]  # a plan saved before max_reach existed
    assert FreezePlan.from_json(json.dumps(old)).max_reach is None


def test_freeze_with_max_reach_stops_the_backward_pass_before_the_frozen_layers():
    model, opt = _twelve_layer_run()
    x = torch.randn(16, 3)
    plan = freeze(opt, budget=0.5, model=model, max_reach=0.25)
    assert plan.kept_groups and all(int(g) >= 9 for g in plan.kept_groups)
    # nothing before layer 9 trains, so the activations up to it need no gradient: autograd records
    # no graph there and the backward pass ends at layer 9
    assert not model[:9](x).requires_grad and model(x).requires_grad
    _steps(opt, model, x, 2)
    assert all(p.grad is None for p in model[:9].parameters())
