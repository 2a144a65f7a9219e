"""Checkpoints: resume bitwise, bounded history, validation before any change, atomic saves."""

import copy
import io
import subprocess
import sys
import time
import warnings

import pytest
import torch

import hidlr
from hidlr import HiDLR
from hidlr.optim import checkpoint
from tests.optim.conftest import make_quadratic


def _groups(q):
    return [{"params": [p], "name": f"g{i}"} for i, p in enumerate(q.params)]


def _train(q, opt, steps, gen):
    for _ in range(steps):
        noise = torch.randn(q.g.shape, generator=gen, dtype=torch.float64) * 0.1
        opt.zero_grad()
        (q.loss() + noise @ torch.cat([p.reshape(-1) for p in q.params])).backward()
        opt.step(probe=q.loss)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_or_pickled_optimizer_continues_like_the_original_bitwise(how):
    """``copy.deepcopy`` / pickling of the weights and a running HiDLR together (as frameworks and
    ``torch.save(optimizer)`` do) keep the base optimizer and every estimate and counter."""
    import pickle

    q = make_quadratic([3, 4, 2], seed=11)
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01))
    _train(q, opt, 6, torch.Generator().manual_seed(0))
    q2, opt2 = copy.deepcopy((q, opt)) if how == "deepcopy" else pickle.loads(pickle.dumps((q, opt)))
    assert opt2.param_groups[0]["params"][0] is q2.params[0] and opt2.optimizer.param_groups is opt2.param_groups
    for qq, oo in ((q, opt), (q2, opt2)):
        _train(qq, oo, 9, torch.Generator().manual_seed(1))
    assert torch.equal(q.flat(), q2.flat())
    assert opt.lrs == opt2.lrs and opt.refresh_count == opt2.refresh_count > 2
    assert opt.state_dict()["hidlr"] == opt2.state_dict()["hidlr"]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_leaves_the_original_alone_and_needs_its_own_probe_function(how):
    """A scheduler wraps ``opt.step`` with a call of the original, and a probe function evaluates
    the original's weights: neither may travel into the copy (torch leaves hooks out too). A probe
    that is a bound method travels, bound to the copy of its object."""
    import pickle

    def copied(obj):
        return copy.deepcopy(obj) if how == "deepcopy" else pickle.loads(pickle.dumps(obj))

    q = make_quadratic([3, 2], seed=4)
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), probe=lambda: q.loss())
    opt.register_step_post_hook(lambda *args: None)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5)
    for _ in range(3):
        opt.zero_grad()
        q.loss().backward()
        opt.step()
        sched.step()
    if how == "pickle":  # a lambda does not pickle: the original's probe is the test's own business
        opt.default_probe = q.loss
    q2, opt2 = copied((q, opt))
    assert not opt2._optimizer_step_post_hooks and "step" not in vars(opt2)
    if how == "deepcopy":
        assert opt2.default_probe is None
    else:
        assert opt2.default_probe.__self__ is q2  # bound to the copy
    before = q.flat()
    opt2.zero_grad()
    q2.loss().backward()
    opt2.step(probe=q2.loss)
    assert torch.equal(q.flat(), before) and not torch.equal(q2.flat(), before)
    assert opt.default_probe is not None and len(opt._optimizer_step_post_hooks) == 1  # the original keeps them


@pytest.mark.parametrize("every, design", [(3, "lines"), ("auto", "lines"), (2, "random")])
def test_resume_from_checkpoint_follows_the_same_trajectory_bitwise(every, design):
    q = make_quadratic([3, 4, 2], seed=11)
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=every, design=design)
    gen = torch.Generator().manual_seed(0)
    _train(q, opt, 5, gen)
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in q.params], "opt": opt.state_dict(), "gen": gen.get_state()}, buf)
    _train(q, opt, 9, gen)

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    q2 = make_quadratic([3, 4, 2], seed=11)
    with torch.no_grad():
        for p, v in zip(q2.params, ckpt["params"]):
            p.copy_(v)
    opt2 = HiDLR(torch.optim.Adam(_groups(q2), lr=0.01), every=every, design=design)
    opt2.load_state_dict(ckpt["opt"])
    gen2 = torch.Generator()
    gen2.set_state(ckpt["gen"])
    _train(q2, opt2, 9, gen2)
    for p, p2 in zip(q.params, q2.params):
        assert torch.equal(p, p2)
    assert opt.lrs == opt2.lrs and opt.history == opt2.history


def test_loading_a_bare_optimizer_state_is_a_clear_error():
    q = make_quadratic([2])
    opt = HiDLR(torch.optim.Adam(q.params, lr=0.01))
    with pytest.raises(ValueError, match="not a HiDLR state dict"):
        opt.load_state_dict(torch.optim.Adam(q.params).state_dict())


def _trained(steps=6, **kw):
    q = make_quadratic([3, 2], seed=2)
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=1, **kw)
    _train(q, opt, steps, torch.Generator().manual_seed(1))
    return q, opt


def test_history_is_bounded_and_counted():
    _, opt = _trained(steps=9, history_size=3)
    assert len(opt.history) == 3 and opt.refresh_count == 9
    assert [r["step"] for r in opt.history] == [6, 7, 8]
    sd = opt.state_dict()
    assert len(sd["hidlr"]["history"]) == 3 and sd["hidlr"]["refreshes"] == 9
    _, none_kept = _trained(steps=4, history_size=0)
    assert none_kept.history == [] and none_kept.refresh_count == 4


def test_state_dict_holds_version_configuration_and_all_running_state():
    _, opt = _trained(design="random", mode="full")
    own = opt.state_dict()["hidlr"]
    assert own["format"] == checkpoint.FORMAT_VERSION and own["loss_eps"] == torch.finfo(torch.float64).eps
    assert own["refreshes"] == 6 and own["config"]["rules"]["mode"] == "full"
    assert own["config"]["design"] == "random" and own["config"]["every"] == 1
    assert own["config"]["groups"] == [{"name": "g0", "params": 1, "size": 3}, {"name": "g1", "params": 1, "size": 2}]
    own["history"].append("changed")  # a copy: the optimizer's history is not touched
    assert "changed" not in opt.history


def _fresh(**kw):
    q = make_quadratic([3, 2], seed=5)
    return q, HiDLR(torch.optim.Adam(_groups(q), lr=0.02), every=1, **kw)


def _unchanged(opt, before):
    now = opt.state_dict()
    assert now["hidlr"] == before["hidlr"] and now["base"]["param_groups"] == before["base"]["param_groups"]
    assert now["base"]["state"].keys() == before["base"]["state"].keys()


def _corrupt_missing(sd):
    del sd["hidlr"]["loss_eps"]


def _corrupt_groups(sd):
    sd["hidlr"]["estimates"].append(0.1)


def _corrupt_rate(sd):
    sd["hidlr"]["estimates"][0] = -1.0


def _corrupt_step(sd):
    sd["hidlr"]["t"] = "five"


def _corrupt_version(sd):
    sd["hidlr"]["format"] = 99


def _corrupt_base_shape(sd):
    sd["base"]["state"][0]["exp_avg"] = torch.zeros(7)


def _corrupt_base_groups(sd):
    sd["base"]["param_groups"].pop()


def _corrupt_names(sd):
    sd["hidlr"]["config"]["groups"][1]["name"] = "head"


def _corrupt_sizes(sd):
    sd["hidlr"]["config"]["groups"][0]["size"] = 30


def _corrupt_flag(sd):
    sd["hidlr"]["travelling"] = "no"


def _corrupt_counter(sd):
    sd["hidlr"]["travel_refreshes"] = None


def _corrupt_negative_counter(sd):
    sd["hidlr"]["travel_forwards"] = -1


def _corrupt_later_counter(sd):
    sd["hidlr"]["arrival_refreshes"] = 1.5


def _corrupt_missing_flag(sd):
    del sd["hidlr"]["arrived"]


def _corrupt_growth(sd):
    sd["hidlr"]["growth"] = {"before": [1e-3], "lowest": float("inf")}


def _corrupt_missing_growth(sd):
    del sd["hidlr"]["growth"]


def _corrupt_history_entries(sd):
    sd["hidlr"]["history"] = ["x", 3]


def _corrupt_record_fields(sd):
    sd["hidlr"]["history"] = [dict.fromkeys(r, "x") for r in sd["hidlr"]["history"]]


def _corrupt_empty_records(sd):
    sd["hidlr"]["history"] = [{}]


def _corrupt_group_decision(sd):
    sd["hidlr"]["history"][0]["groups"][0]["accepted"] = "yes"


def _corrupt_base_lr(sd):
    sd["base"]["param_groups"][0]["lr"] = -1.0


def _corrupt_base_nan_lr(sd):
    sd["base"]["param_groups"][0]["lr"] = float("nan")


def _corrupt_base_state_type(sd):
    sd["base"]["state"][0]["exp_avg"] = "x"


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (_corrupt_flag, "'travelling' must be True or False"),
        (_corrupt_counter, "'travel_refreshes' must be"),
        (_corrupt_negative_counter, "'travel_forwards' must be"),
        (_corrupt_later_counter, "'arrival_refreshes' must be"),
        (_corrupt_missing_flag, "missing 'arrived'"),
        (_corrupt_growth, "'growth' must be None or"),
        (_corrupt_missing_growth, "missing 'growth'"),
        (_corrupt_history_entries, "'history' must be a list of refresh records"),
        (_corrupt_record_fields, "'history' record 0 has step 'x'"),
        (_corrupt_empty_records, r"'history' record 0 lacks \['forwards'"),
        (_corrupt_group_decision, "'history' record 0 has a group decision 0 with missing or wrong fields"),
        (_corrupt_base_lr, "param group 0 has lr -1.0"),
        (_corrupt_base_nan_lr, "param group 0 has lr nan"),
        (_corrupt_base_state_type, "'exp_avg' of parameter 0 is str"),
        (_corrupt_missing, "missing 'loss_eps'"),
        (_corrupt_groups, "groups in 'estimates'"),
        (_corrupt_rate, "finite rates >= 0"),
        (_corrupt_step, "'t' must be"),
        (_corrupt_version, "format 99"),
        (_corrupt_base_shape, "shape"),
        (_corrupt_base_groups, "param groups"),
        (_corrupt_names, "other param groups"),
        (_corrupt_sizes, "other param groups"),
    ],
)
def test_bad_checkpoints_are_refused_before_anything_changes(corrupt, match):
    _, src = _trained()
    sd = copy.deepcopy(src.state_dict())
    corrupt(sd)
    q, opt = _fresh()
    _train(q, opt, 2, torch.Generator().manual_seed(3))
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    _unchanged(opt, before)


def test_other_options_warn_and_load():
    _, src = _trained(ema=0.5)
    _, opt = _fresh()
    with pytest.warns(UserWarning, match="other options.*rules"):
        opt.load_state_dict(src.state_dict())
    assert opt.lrs == src.lrs and opt.step_count == src.step_count


def test_same_options_load_silently():
    _, src = _trained()
    _, opt = _fresh()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.load_state_dict(src.state_dict())


def test_previous_format_loads():
    _, src = _trained()
    sd = src.state_dict()
    old = {
        k: v for k, v in sd["hidlr"].items() if k in ("estimates", "wrap_lrs", "t", "period", "next_refresh", "history")
    }
    _, opt = _fresh()
    opt.load_state_dict({"base": sd["base"], "hidlr": old})
    assert opt.lrs == src.lrs and opt.refresh_count == len(src.history) and opt.step_count == src.step_count


def test_a_checkpoint_of_another_base_optimizer_class_is_refused_with_nothing_changed():
    q_src = make_quadratic([3, 2])
    src = HiDLR(torch.optim.SGD(_groups(q_src), lr=0.01, momentum=0.9), every=1)
    _train(q_src, src, 3, torch.Generator().manual_seed(1))
    q, opt = _fresh()
    _train(q, opt, 2, torch.Generator().manual_seed(3))
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match="does not load into Adam.*another optimizer class"):
        opt.load_state_dict(src.state_dict())
    _unchanged(opt, before)
    _train(q, opt, 2, torch.Generator().manual_seed(4))  # still steps
    assert opt.step_count == 4


def test_format_2_without_the_later_counters_loads_with_their_defaults():
    _, src = _trained()
    sd = copy.deepcopy(src.state_dict())
    sd["hidlr"]["format"] = 2
    for key in ("travel_refreshes", "travel_forwards", "travelling", "arrived", "last_probed"):
        del sd["hidlr"][key]
    _, opt = _fresh()
    opt.load_state_dict(sd)
    assert opt.lrs == src.lrs and opt.step_count == src.step_count and not opt._travelling


@pytest.mark.parametrize("key, value", [("arrival_refreshes", 3), ("arrival_forwards", 17)])
def test_a_later_counter_round_trips_and_an_older_format_without_it_loads_as_0(key, value):
    since = checkpoint._COUNTERS[key]  # the format from which a state dict must hold it
    _, src = _trained()
    setattr(src, f"_{key}", value)
    _, opt = _fresh()
    opt.load_state_dict(src.state_dict())
    assert getattr(opt, f"_{key}") == value
    sd = copy.deepcopy(src.state_dict())
    del sd["hidlr"][key]
    with pytest.raises(ValueError, match=f"missing '{key}'"):
        opt.load_state_dict(sd)
    assert getattr(opt, f"_{key}") == value  # nothing was loaded
    sd["hidlr"]["format"] = since - 1  # saved before the counter existed, and what came with it
    for later in [
        k for k, v in {**checkpoint._COUNTERS, **checkpoint._FLAGS}.items() if v >= since and k in sd["hidlr"]
    ]:
        del sd["hidlr"][later]
    opt.load_state_dict(sd)
    assert getattr(opt, f"_{key}") == 0 and not opt._growing and opt.lrs == src.lrs
    sd = copy.deepcopy(src.state_dict())
    sd["hidlr"][key] = -1
    with pytest.raises(ValueError, match=f"'{key}' must be"):
        opt.load_state_dict(sd)


def test_loading_trims_history_to_this_optimizers_size():
    _, src = _trained(steps=6)
    _, opt = _fresh(history_size=2)
    opt.load_state_dict(src.state_dict())
    assert [r["step"] for r in opt.history] == [4, 5] and opt.refresh_count == 6


# ------------------------------------------------------------------------------ atomic save
def test_save_checkpoint_round_trip(tmp_path):
    _, opt = _trained()
    path = tmp_path / "ckpt.pt"
    hidlr.save_checkpoint({"opt": opt.state_dict()}, path)
    hidlr.save_checkpoint({"opt": opt.state_dict(), "again": 1}, path)
    loaded = torch.load(path, weights_only=False)
    assert loaded["again"] == 1 and loaded["opt"]["hidlr"] == opt.state_dict()["hidlr"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


_SLOW_WRITER = """
import sys, time, torch
from hidlr import save_checkpoint

class Slow:
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(60)
        return (int, (0,))

save_checkpoint({"big": torch.zeros(1_000_000), "slow": Slow()}, sys.argv[1])
"""


def test_a_killed_writer_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "ckpt.pt"
    hidlr.save_checkpoint({"version": "previous", "w": torch.arange(5)}, path)
    child = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"  # mid-save: the temporary file is open
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        child.kill()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    loaded = torch.load(path, weights_only=True)
    assert loaded["version"] == "previous" and torch.equal(loaded["w"], torch.arange(5))


def test_plain_torch_save_would_lose_it(tmp_path):
    """The failure the helper prevents: a writer killed inside torch.save(obj, path) leaves a file
    that does not load."""
    path = tmp_path / "ckpt.pt"
    torch.save({"version": "previous"}, path)
    code = _SLOW_WRITER.replace("save_checkpoint({", "torch.save({")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        time.sleep(0.2)
        child.kill()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises on a truncated file
        torch.load(path, weights_only=True)
