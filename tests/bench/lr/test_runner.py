"""The run loop of the learning-rate benchmark: probe wiring, fault handling, skipped methods."""

import sys

import pytest
import torch
from torch import nn

from hidlr.bench.lr import methods as M
from hidlr.bench.lr import workloads as W
from hidlr.bench.lr.runner import frozen_norm_stats, make_probe, run_one


class ProbingSGD(torch.optim.SGD):
    """Stand-in with Hi-DLR's step(probe=...) surface: calls the probe three times per step and
    records the values and the BatchNorm running means around the calls."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.values, self.bn_unchanged, self.history = [], [], []

    @property
    def lrs(self):
        return [g["lr"] for g in self.param_groups]

    def step(self, probe=None):
        assert probe is not None
        bns = [m for m in self._model.modules() if isinstance(m, nn.BatchNorm2d)]
        before = [b.running_mean.clone() for b in bns]
        with torch.no_grad():
            self.values.append([float(probe()) for _ in range(3)])
        self.bn_unchanged.append(all(torch.equal(a, b.running_mean) for a, b in zip(before, bns)))
        self.history.append({})
        return super().step()


def _stub_method(probe_mode):
    def build(wl, task, spec):
        opt = ProbingSGD(task.groups, lr=0.01)
        opt._model = task.model
        return M.Setup(opt, probe=probe_mode, lr=0.01)

    return M.Method(f"stub-{probe_mode}", "single", "stub", build)


@pytest.mark.parametrize("mode", ["same", "separate"])
def test_probe_wiring_on_a_batchnorm_model(mode):
    seen = {}
    stub = _stub_method(mode)

    def build(wl, task, spec):
        setup = stub.build(wl, task, spec)
        seen["opt"] = setup.optimizer
        return setup

    method = M.Method(stub.name, stub.family, stub.description, build)
    wl = W.get(["digits-cnn-bn"])[0]
    rec = run_one(wl, method, seed=0, steps=4, n_evals=2)
    assert rec["status"] == "ok", rec["reason"]
    opt = seen["opt"]
    assert all(v[0] == v[1] == v[2] for v in opt.values)  # one batch per step, same every call
    assert all(opt.bn_unchanged)  # probes leave BN statistics alone
    assert rec["hidlr"]["refreshes"] == 4
    assert rec["lr_trace"]["lrs"][-1] == [0.01, 0.01]
    assert rec["groups"] == ["norm", "rest"]


def test_same_probe_uses_training_batch_and_separate_another():
    task = W.get(["digits-mlp-bias"])[0].build(0)
    batch = task.batch(torch.Generator().manual_seed(0))
    with torch.no_grad():
        train_loss = float(task.loss(task.model, batch))
        same = make_probe(task, batch, "same", torch.Generator().manual_seed(1), crn_seed=0)
        sep = make_probe(task, batch, "separate", torch.Generator().manual_seed(1), crn_seed=0)
        assert float(same()) == train_loss
        first = float(sep())
        assert first != train_loss and float(sep()) == first
    with pytest.raises(ValueError, match="probe mode"):
        make_probe(task, batch, "other", torch.Generator(), crn_seed=0)


def test_stochastic_loss_probes_share_random_numbers():
    task = W.get(["bnn"])[0].build(0)
    with torch.no_grad():
        for name, p in task.model.named_parameters():  # make the weight noise large
            if name.endswith("_rho"):
                p.fill_(-1.0)
        batch = task.batch(torch.Generator().manual_seed(0))
        assert float(task.loss(task.model, batch)) != float(task.loss(task.model, batch))
        probe = make_probe(task, batch, "same", torch.Generator(), crn_seed=5)
        assert float(probe()) == float(probe())


def test_frozen_norm_stats_restores_everything():
    bn = nn.BatchNorm1d(3)
    model = nn.Sequential(bn).train()
    x = torch.randn(8, 3) + 5
    with frozen_norm_stats(model):
        model(x)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0
    assert bn.momentum == 0.1
    model(x)
    assert not torch.equal(bn.running_mean, torch.zeros(3))


def test_divergence_is_recorded_not_raised():
    wl = W.get(["noisy-quadratic"])[0]
    big = M.Method("sgd-lr1", "single", "", lambda w, t, s: M.Setup(M.base_optimizer(w, t.groups, 1.0)))
    rec = run_one(wl, big, seed=0, steps=80, n_evals=4)  # SGD at lr 1 on eigenvalues up to 60
    assert rec["status"] == "diverged" and rec["final_loss"] is None


def test_failing_optimizer_is_recorded_as_error():
    def build(wl, task, spec):
        opt = torch.optim.SGD(task.groups, lr=0.1)
        opt.step = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
        return M.Setup(opt)

    rec = run_one(W.get(["noisy-quadratic"])[0], M.Method("bad", "single", "", build), seed=0, steps=5)
    assert rec["status"] == "error" and "boom" in rec["reason"]


def test_missing_package_is_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "prodigyopt", None)  # import now fails
    rec = run_one(W.get(["noisy-quadratic"])[0], M.get(["prodigy"])[0], seed=0, steps=5)
    assert rec["status"] == "skipped" and "prodigyopt" in rec["reason"]


def test_full_mode_needs_small_k():
    wl = W.get(["multitask-heads"])[0]
    with pytest.raises(M.Unavailable, match="K=25"):
        M.get(["hidlr-full"])[0].setup(wl, wl.build(0), steps=10, seed=0)
