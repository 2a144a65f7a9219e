import json

import pytest
import torch
from typer.testing import CliRunner

from hidlr.bench.finetune import run
from hidlr.bench.finetune.methods import module_groups, new_model
from hidlr.bench.finetune.report import _select
from hidlr.cli import app
from hidlr.influence import FreezePlan


def test_run_writes_results_report_plots_and_keeps_budgets(small_workload, tmp_path):
    res = run(
        tmp_path,
        quick=True,
        seeds=1,
        steps=4,
        batch_size=16,
        progress=False,
        workload=small_workload,
        methods=["full-adam", "lora", "lora-plus", "hidlr-lora", "freeze"],
        budgets=[0.05],
        freeze_max_reach=[0.5],
    )
    for f in ("results.json", "report.md", "influence_per_layer.png", "rates_over_time.png"):
        assert (tmp_path / f).is_file()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"].keys() == res["summary"].keys()
    expected = {
        f"{m}/{h}"
        for m in ("full-adam", "lora", "lora-plus", "hidlr-lora", "freeze-5%", "freeze-lora-size")
        + ("freeze-5%-reach50", "freeze-lora-size-reach50")
        for h in ("mdn", "gaussian")
    }
    assert set(res["summary"]) == expected
    # the reach-limited plans keep only modules of the last half, in the model's order (the head's end)
    order = [g["name"] for g in module_groups(new_model(small_workload, "mdn", 0))]
    last_half = set(order[len(order) // 2 :])
    for info in res["influence"]:
        for label in ("freeze-5%-reach50", "freeze-lora-size-reach50"):
            plan = info["plans"][label]
            assert plan["max_reach"] == 0.5 and set(plan["kept_groups"]) <= last_half
            assert plan["budget"] == info["plans"][label.removesuffix("-reach50")]["budget"]
    assert res["summary"]["full-adam/mdn"]["runs_spent"] == 3
    total = res["meta"]["total_params"]
    for r in res["runs"]:
        if "budget" in r:
            assert r["result"]["trainable_params"] <= r["budget"] * total
    costs = res["costs"]
    assert costs["freeze-5%"]["memory"]["grads"] < costs["full"]["memory"]["grads"]
    assert costs["freeze-5%"]["memory_ratio"] < 1
    assert costs["full"]["reach"] is None and costs["freeze-5%-reach50"]["reach"] <= 0.5
    assert "backward reach" in (tmp_path / "report.md").read_text()
    assert any(g.startswith("Hi-DLR on LoRA") for g in res["goals"])
    assert "## Goals (measured)" in (tmp_path / "report.md").read_text()


def test_select_takes_the_best_validation_run_and_counts_runs():
    rec = lambda lr, val: {"method": "m", "head": "mdn", "seed": 0, "lr": lr, "result": {"val": {"nll": val}}}
    chosen = _select([rec(1e-3, 2.0), rec(1e-4, 1.5), rec(1e-5, 1.7)])
    assert chosen[("m", "mdn")][0]["lr"] == 1e-4 and chosen[("m", "mdn")][0]["runs_spent"] == 3


def test_influence_command_prints_the_table_and_writes_a_plan(small_workload, tmp_path, monkeypatch):
    monkeypatch.setattr("hidlr.bench.finetune.data.quick_workload", lambda seed=0: small_workload)
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(app, ["influence", "--plan-out", str(out), "--budget", "0.5", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "| rank | group |" in result.output and "head.out" in result.output
    assert "the backward pass runs down to" in result.output
    plan = FreezePlan.load(out)
    assert plan.trainable_params <= 0.5 * plan.total_params and plan.has_names


def _head_only_runs(workload) -> dict:
    """``run`` arguments for a few seconds' line-up: head-only training, Gaussian head, 2 steps."""
    return dict(
        quick=True,
        steps=2,
        batch_size=16,
        progress=False,
        workload=workload,
        methods=["last-layer"],
        heads=["gaussian"],
        costs=False,
    )


def test_report_can_be_rebuilt_from_an_interrupted_run(small_workload, tmp_path):
    from hidlr.bench.finetune import rebuild_report

    run(tmp_path, seeds=1, **_head_only_runs(small_workload))
    saved = json.loads((tmp_path / "results.json").read_text())
    del saved["summary"], saved["meta"]["wall_seconds"]
    (tmp_path / "results.json").write_text(json.dumps(saved))
    res = rebuild_report(tmp_path, note="Interrupted after 2 runs")
    assert set(res["summary"]) == {"last-layer/gaussian"}
    text = (tmp_path / "report.md").read_text()
    assert "Interrupted after 2 runs" in text and "not recorded (interrupted)" in text


def test_a_run_depends_on_its_seed_not_on_the_runs_before_it(small_workload):
    from hidlr.bench.finetune import methods as M
    from hidlr.bench.finetune.runner import run_method

    lora = M.method_table(quick=True)["lora"]
    first = run_method(small_workload, lora, "mdn", 0, 1e-3, 3, 8, None)
    torch.rand(100)  # what other methods' runs would draw from the global generator
    again = run_method(small_workload, lora, "mdn", 0, 1e-3, 3, 8, None)
    other_seed = run_method(small_workload, lora, "mdn", 1, 1e-3, 3, 8, None)
    assert again["val"]["nll"] == first["val"]["nll"] != other_seed["val"]["nll"]


@pytest.mark.parametrize("carry_state", [True, False])
def test_frozen_runs_keep_the_budget_and_refresh_the_kept_groups(small_workload, carry_state):
    from hidlr.bench.finetune.runner import run_freezing

    records = []
    info = run_freezing(
        small_workload, "mdn", 0, 30, 8, {"freeze-20%": 0.2}, records.append, None, True, carry_state=carry_state
    )
    (rec,) = records
    assert rec["result"]["trainable_params"] <= 0.2 * info["plans"]["freeze-20%"].total_params
    rates = rec["result"]["rates"]  # with a carried state the influence run's refreshes come first, steps go on
    after = [r for r in rates if r["step"] >= info["prefix_steps"]] if carry_state else rates
    assert len(after) >= 3, f"the frozen run refreshed at steps {[r['step'] for r in after]} only"


def test_the_lora_grouping_ranks_each_adapter_as_one_group_beside_every_tensor(small_workload):
    from hidlr.bench.finetune import methods as M
    from hidlr.bench.finetune.runner import run_freezing

    model = M.new_model(small_workload, "gaussian", 0)
    base = {n for n, _ in model.named_parameters()}
    linear_maps = [
        n
        for n, m in model.encoder.named_modules()
        if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in M.LORA_TARGETS
    ]
    groups = M.lora_parameter_groups(model)
    assert [g["name"] for g in M.lora_parameter_groups(model)] == [g["name"] for g in groups]  # adapters once
    names = {id(p): n for n, p in model.named_parameters()}
    owned = [names[id(p)] for g in groups for p in g["params"]]
    assert sorted(owned) == sorted(names.values()) and all(p.requires_grad for p in model.parameters())
    adapters = [g for g in groups if g["name"].endswith(".lora")]
    assert len(adapters) == len(linear_maps) > 0  # one per linear map of the encoder
    for g in adapters:  # its A and B together
        prefix = g["name"].removesuffix(".lora")
        assert sorted(names[id(p)] for p in g["params"]) == [f"{prefix}.lora_{m}.default.weight" for m in "AB"]
    assert len(groups) - len(adapters) == len(base)  # one group per pretrained tensor (base layers renamed)
    records = []
    run_freezing(
        small_workload, "gaussian", 0, 20, 8, {"f": 0.3}, records.append, None, True, grouping="lora-parameters"
    )
    (rec,) = records
    assert rec["result"]["trainable_params"] <= 0.3 * rec["plan"]["total_params"]


def test_goals_name_the_baselines_a_run_left_out_instead_of_printing_nan():
    from hidlr.bench.finetune.report import goals

    stat = lambda v: {"median": v, "min": v, "max": v, "n": 1}
    summary = {
        "freeze-5%/mdn": {"nll": stat(1.65), "trainable_params": stat(5)},
        "hidlr-lora/mdn": {"nll": stat(1.66), "trainable_params": stat(2)},
    }
    lines = goals(summary, ["mdn"], ["freeze-5%"], 100)
    assert lines == [
        "freeze-5% (5.00% trainable), mdn head: test NLL 1.6500; full fine-tuning not in this run (goal not checked)",
        "Hi-DLR on LoRA, mdn head (one run): test NLL 1.6600; LoRA+ not run; "
        "tuned LoRA not in this run (goal not checked)",
    ]
    summary["full-adam/mdn"] = {"nll": stat(1.64), "trainable_params": stat(100)}
    summary["lora/mdn"] = {"nll": stat(1.70), "trainable_params": stat(2)}
    assert "+0.61%; goal within +1%: met" in goals(summary, ["mdn"], ["freeze-5%"], 100)[0]
    assert "tuned LoRA 1.7000 (-2.35%; goal within +1%: met)" in goals(summary, ["mdn"], ["freeze-5%"], 100)[1]
    cost = lambda t, m, r, share: {"time_ratio": t, "memory_ratio": m, "reach": r, "trainable_ratio": share}
    costs = {
        "full": cost(1, 1, None, 1),
        "freeze-5%": cost(0.4, 0.3, 0.96, 0.05),
        "last-layer": cost(0.2, 0.2, None, 0.002),
    }
    assert goals(summary, ["mdn"], ["freeze-5%"], 100, costs)[-1] == (
        "cost of freeze-5% (5.00% trainable, backward reach 96%): 0.40x the step time and 0.30x the memory "
        "of full fine-tuning (head only: 0.20x, 0.20x)"
    )


def test_more_seeds_from_first_seed_combine_into_one_report(small_workload, tmp_path):
    from hidlr.bench.finetune import combine

    common = _head_only_runs(small_workload)
    a = run(tmp_path / "a", seeds=1, **common)
    b = run(tmp_path / "b", seeds=2, first_seed=1, **common)
    assert {r["seed"] for r in b["runs"]} == {1, 2} and b["meta"]["seeds"] == [1, 2]
    # seed 1 alone again: a later folder's run replaces the same run of an earlier one
    c = run(tmp_path / "c", seeds=1, first_seed=1, **common)
    res = combine([tmp_path / "a", tmp_path / "b", tmp_path / "c"], tmp_path / "all")
    assert res["meta"]["seeds"] == [0, 1, 2]
    assert len(res["runs"]) == 3 * len(a["runs"])  # one run per (seed, rate), none twice
    assert res["summary"]["last-layer/gaussian"]["seeds"] == 3
    kept = {(r["seed"], r["lr"]): r for r in res["runs"]}
    for r in c["runs"]:
        assert kept[(1, r["lr"])]["result"]["test"] == r["result"]["test"]
    assert [p["seeds"] for p in res["meta"]["combined_from"]] == [[0], [1, 2], [1]]
    text = (tmp_path / "all" / "report.md").read_text()
    assert all(f"`{tmp_path / d}` (seeds" in text for d in ("a", "b", "c"))  # where each run came from

    # a run of the other head (a head of another size) joins: the report has both heads
    run(tmp_path / "m", seeds=1, **{**common, "heads": ["mdn"]})
    both = combine([tmp_path / "a", tmp_path / "m"], tmp_path / "both")
    assert both["meta"]["heads"] == ["mdn", "gaussian"]
    assert set(both["summary"]) == {"last-layer/gaussian", "last-layer/mdn"}

    other = run(tmp_path / "d", seeds=1, **{**common, "steps": 3})
    assert other["meta"]["steps"] == 3
    with pytest.raises(ValueError, match="steps is 3"):
        combine([tmp_path / "a", tmp_path / "d"], tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="no results.json"):
        combine([tmp_path / "a", tmp_path / "missing"], tmp_path / "bad")
    with pytest.raises(ValueError, match="first_seed"):
        run(tmp_path / "e", seeds=1, first_seed=-1, **common)


def test_paired_gaps_take_each_grid_run_chosen_on_validation_seed_by_seed():
    from hidlr.bench.finetune.report import paired

    def rec(method, seed, lr, val, test, head="mdn"):
        return {
            "method": method,
            "head": head,
            "seed": seed,
            "lr": lr,
            "result": {"val": {"nll": val}, "test": {"nll": test}},
        }

    records = [
        # full fine-tuning's grid: the rate with the lower validation NLL counts, not the lower test NLL
        rec("full-adam", 0, 1e-4, 1.0, 2.0),
        rec("full-adam", 0, 3e-4, 1.1, 1.0),
        rec("full-adam", 1, 1e-4, 1.0, 2.0),
        rec("full-adam", 2, 1e-4, 1.0, 2.0),
        rec("freeze-5%", 0, 1e-4, 1.0, 1.9),  # -5%
        rec("freeze-5%", 1, 1e-4, 1.0, 2.2),  # +10%
        rec("freeze-5%", 2, 1e-4, 1.0, 1.8),  # -10%
        rec("freeze-5%", 3, 1e-4, 1.0, 1.0),  # no full fine-tuning on this seed: left out
        rec("hidlr-lora", 0, 1e-4, 1.0, 1.0, head="gaussian"),
    ]
    rows = paired(records, ["mdn", "gaussian"], ["freeze-5%"])
    assert len(rows) == 1  # the other baselines did not run
    (row,) = rows
    assert (row["head"], row["method"], row["baseline"]) == ("mdn", "freeze-5%", "full-adam")
    assert row["seeds"] == [0, 1, 2] and row["lower"] == 2
    assert row["median_gap"] == pytest.approx(-0.05)
