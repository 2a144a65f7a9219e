import json
import math

import pytest

from hidlr.bench.overhead import rebuild, run
from hidlr.bench.overhead.memory import measure_memory, memory_child
from hidlr.bench.overhead.timing import deep_mlp, ratios, split_groups, timed_run


def test_workload_has_64_tensors_and_about_half_a_million_parameters():
    model = deep_mlp()
    params = list(model.parameters())
    assert len(params) == 64 and 0.5e6 < sum(p.numel() for p in params) < 0.55e6
    groups = split_groups(model, 16)
    assert len(groups) == 16 and all(len(g["params"]) == 4 for g in groups)
    with pytest.raises(ValueError, match="must divide"):
        split_groups(model, 5)


def test_timed_run_records_refresh_steps():
    out = timed_run(4, {}, steps=8, batch=4, width=8)
    assert len(out["seconds"]) == 8 and out["refreshed"][0] and out["refreshes"] == sum(out["refreshed"])
    assert out["probe_forwards"] > 0


def test_ratios_separate_refresh_steps():
    hidlr = {"seconds": [3.0, 1.0, 1.0, 2.0], "refreshed": [True, False, False, True]}
    adam = {"seconds": [1.0, 1.0, 0.5, 1.0]}
    r = ratios(hidlr, adam)
    assert r["all_steps"] == pytest.approx(7.0 / 3.5) and r["non_refresh_steps"] == pytest.approx(2.0 / 1.5)
    assert "all_steps_cpu" not in r
    hidlr["cpu_seconds"], adam["cpu_seconds"] = [2.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0]
    r = ratios(hidlr, adam)
    assert r["all_steps_cpu"] == pytest.approx(6.0 / 4.0) and r["non_refresh_steps_cpu"] == pytest.approx(1.0)
    assert "wrapper_non_refresh_steps" not in r
    # the step calls (step 1: 0.5 s, of which the base Adam 0.4; step 2: 0.6 and 0.45) against Adam's
    hidlr["step_seconds"], hidlr["base_step_seconds"] = [2.0, 0.5, 0.6, 1.0], [0.2, 0.4, 0.45, 0.2]
    adam["step_seconds"] = adam["base_step_seconds"] = [0.4, 0.4, 0.2, 0.4]
    r = ratios(hidlr, adam)
    assert r["wrapper_non_refresh_steps"] == pytest.approx(1 + (0.1 + 0.15) / 1.5)
    assert r["base_step_non_refresh_steps"] == pytest.approx(0.85 / 0.6)


def test_the_base_step_inside_hidlr_is_timed_apart_from_the_wrapper():
    out = timed_run(1, {"every": 1000}, steps=4, batch=8, width=16)
    for step, base, total in zip(out["step_seconds"][1:], out["base_step_seconds"][1:], out["seconds"][1:]):
        assert 0 < base < step < total  # the base step inside the wrapper's step, inside the whole step
    adam = timed_run(1, None, steps=2, batch=8, width=16)
    assert adam["base_step_seconds"] == adam["step_seconds"]


def test_overhead_report_is_complete(tmp_path):
    res = run(
        tmp_path,
        repeats=1,
        steps=4,
        groups=(1, 4),
        batch=4,
        width=8,
        device="cpu",
        progress=False,
        memory=False,
        threads=None,
    )
    saved = json.loads((tmp_path / "overhead.json").read_text())
    assert set(saved["per_groups"]) == {"1", "4", "1, check_finite='refresh'"} and saved["metadata"]["git_commit"]
    assert all(v["ratio_all_steps"] > 0 for v in res["per_groups"].values())
    report = (tmp_path / "report.md").read_text()
    assert "| 1 |" in report and "| 4 |" in report and "non-refresh" in report


def test_rebuild_summarises_the_stored_repeats_against_adam_at_hidlrs_rates(tmp_path):
    reps = [
        {
            "ratios": {"all_steps": 1.2, "non_refresh_steps": 1.1, "wrapper_non_refresh_steps": 1.05},
            "same_rates_ratios": {"all_steps": r, "non_refresh_steps": r - 0.05, "wrapper_non_refresh_steps": w},
            "adam_ms": 2.0,
            "hidlr_ms": 2.2,
            "refreshes": 5,
            "probe_forwards": 40,
        }
        for r, w in ((1.08, 1.02), (1.04, 1.01), (1.06, None))  # None: a NaN written to JSON
    ]
    stored = {
        "command": "hidlr bench overhead",
        "metadata": {"torch": "x", "git_commit": "abc", "started": "now", "load_average_at_start": [0]},
        "load_average_at_end": [0],
        "workload": {"model": "m", "params": 1, "batch": 1, "steps": 3, "repeats": 3, "device": "cpu", "threads": 1},
        "goals": {"all_steps": 1.1, "non_refresh_steps": 1.02, "extra_param_copies": 1.0},
        "per_groups": {"1": {"repeats": reps}},
        "memory": {},
    }
    (tmp_path / "overhead.json").write_text(json.dumps(stored))
    res = rebuild(tmp_path)
    k1 = res["per_groups"]["1"]
    assert k1["same_rates_ratio_all_steps"] == pytest.approx(1.06)
    assert k1["same_rates_ratio_non_refresh_steps"] == pytest.approx(1.01)
    assert k1["ratio_all_steps"] == pytest.approx(1.2)
    assert k1["same_rates_wrapper_ratio_non_refresh_steps"] == pytest.approx(1.015)  # over the two with the figure
    assert math.isnan(k1["same_rates_base_step_ratio_non_refresh_steps"])  # no repeat has it
    assert json.loads((tmp_path / "overhead.json").read_text())["per_groups"]["1"]["refreshes"] == 5
    assert "| 1 | 2.00 | 2.20 | 1.060 | 1.010 | 1.200 | 1.100 |" in (tmp_path / "report.md").read_text()


def test_memory_is_measured_in_fresh_processes():
    out = measure_memory(1, {}, 2, 8, "cpu")
    n_params = sum(p.numel() for p in deep_mlp(width=8).parameters())
    assert out["param_bytes"] == 4 * n_params and out["peak"] >= 0 and out["tensors"] > 3 * out["param_bytes"]


def test_memory_accounting_sees_the_update_and_the_rollback_snapshot():
    adam, hidlr, snap = (memory_child(1, opts, 3, 32, "cpu") for opts in (None, {}, {"rollback": True}))
    # one copy (the update) at the defaults; four with the rollback's copies of weights and Adam's moments
    assert (hidlr["tensors"] - adam["tensors"]) / adam["param_bytes"] == pytest.approx(1.0, abs=0.01)
    assert (snap["tensors"] - adam["tensors"]) / adam["param_bytes"] == pytest.approx(4.0, abs=0.01)


def test_paired_run_steps_both_in_lockstep():
    from hidlr.bench.overhead.timing import paired_run

    hidlr_run, adam_run = paired_run(4, {}, steps=6, batch=4, width=8)
    assert len(hidlr_run["seconds"]) == len(adam_run["seconds"]) == 6
    assert hidlr_run["refreshed"][0] and not any(adam_run["refreshed"]) and "refreshes" not in adam_run


def test_adam_replaying_the_applied_rates_follows_hidlrs_weights():
    """The same-rates baseline: Adam stepping at the rates a HiDLR run applied ends on HiDLR's
    weights (up to rounding), and a third run in the lockstep is timed beside the other two."""
    import torch

    from hidlr.bench.overhead.timing import _trainer, applied_rates, paired_run

    steps = 12
    rates = applied_rates(4, {}, steps, batch=4, device="cpu", width=8)
    assert len(rates) == steps and all(len(r) == 4 for r in rates)
    assert rates[-1] != [1e-3] * 4  # the refreshes moved the rates from Adam's start rate
    runs = {
        name: _trainer(4, opts, 4, "cpu", 8, 0, rates=r)
        for name, opts, r in (("hidlr", {}, None), ("same", None, rates), ("adam", None, None))
    }
    for t in range(steps):
        for train_step in runs.values():
            train_step(t)

    def weights(name):
        return torch.cat([p.detach().flatten() for g in runs[name].optimizer.param_groups for p in g["params"]])

    assert torch.allclose(weights("same"), weights("hidlr"), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(weights("adam"), weights("hidlr"), rtol=1e-5, atol=1e-6)
    hidlr_run, adam_run, same_run = paired_run(4, {}, steps=6, batch=4, width=8, rates=rates)
    assert len(same_run["seconds"]) == len(adam_run["seconds"]) == len(hidlr_run["seconds"]) == 6


def test_live_tensor_bytes_skips_weak_proxies_whose_referent_is_gone():
    import weakref

    import torch

    from hidlr.bench.overhead.memory import live_tensor_bytes

    class Holder:
        pass

    held = Holder()
    proxies = [weakref.proxy(held)]  # reachable from gc; isinstance on it raises once held is gone
    del held
    keep = torch.ones(1000, dtype=torch.float64)
    assert live_tensor_bytes()["cpu"] >= keep.numel() * 8
    assert proxies  # the dead proxy was in gc's objects during the count


def test_live_tensor_bytes_skips_tensors_without_storage():
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from hidlr.bench.overhead.memory import live_tensor_bytes

    fake = FakeTensorMode().from_tensor(torch.ones(1000))
    torch._C._set_throw_on_mutable_data_ptr(fake)  # as torch.compile's tracing leaves them in gc's objects
    keep = torch.ones(1000, dtype=torch.float64)
    assert live_tensor_bytes()["cpu"] >= keep.numel() * 8
    assert fake.shape == (1000,)


def test_memory_accounting_ignores_garbage_left_from_before_the_run():
    import gc

    import torch

    gc.disable()  # keep the cycle below uncollected until memory_child runs
    try:

        class Cycle:
            pass

        c = Cycle()
        c.me, c.big = c, torch.ones(200_000, dtype=torch.float64)  # 1.6 MB of garbage once c goes
        del c
        before = memory_child(1, None, 2, 32, "cpu")
    finally:
        gc.enable()
    after = memory_child(1, None, 2, 32, "cpu")
    assert before["tensors"] == pytest.approx(after["tensors"], rel=0.01)
