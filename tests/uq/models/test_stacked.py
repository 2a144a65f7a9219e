"""Stacked (vectorized) members: same losses, gradients and trained members as one at a time."""

import numpy as np
import pytest
import torch
from torch import nn

from hidlr import HiDLR
from hidlr.uq.models import BNN, MDN, DeepEnsemble, MDNEnsemble
from hidlr.uq.models.estimator import Estimator
from hidlr.uq.models.mdn import MDNNet
from hidlr.uq.models.stacked import StackedNets, fit_side_by_side


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    return X, np.cos(X[:, 0]) + 0.2 * rng.normal(size=60)


def test_loss_and_gradients_are_the_members_own():
    torch.manual_seed(0)
    nets = [MDNNet(3, 2, hidden=(6,)).double() for _ in range(4)]
    stack = StackedNets(nets)
    x, y = torch.randn(4, 10, 3, dtype=torch.float64), torch.randn(4, 10, dtype=torch.float64)
    total = stack.loss(x, y)
    total.backward()
    own = []
    for i, net in enumerate(nets):
        loss = net.loss(x[i], y[i])
        loss.backward()
        own.append(loss.detach())
    assert torch.allclose(stack.last_losses, torch.stack(own), rtol=1e-12)
    assert torch.allclose(total, torch.stack(own).sum(), rtol=1e-12)
    for name, _ in nets[0].named_parameters():
        for i, net in enumerate(nets):
            assert torch.allclose(stack.stacked(name).grad[i], net.get_parameter(name).grad, rtol=1e-10, atol=1e-14)


def test_unstack_writes_each_member_back():
    nets = [nn.Linear(2, 3) for _ in range(3)]
    stack = StackedNets(nets)
    with torch.no_grad():
        stack.stacked("weight").copy_(torch.arange(18.0).reshape(3, 3, 2))
    stack.unstack(nets)
    assert torch.equal(nets[2].weight, torch.arange(12.0, 18.0).reshape(3, 2))


def test_vectorized_adam_ensemble_equals_sequential_members(data):
    X, y = data
    opts = {"optimizer": "adam", "epochs": 4, "batch_size": 8, "seed": 3}
    Xd, yd = torch.as_tensor(X), torch.as_tensor(y)  # float64 end to end
    fast = MDNEnsemble(components=2, members=3, hidden=(8,), early_stopping=False).fit(Xd, yd, **opts)
    slow = MDNEnsemble(components=2, members=3, hidden=(8,), vectorize=False, early_stopping=False).fit(Xd, yd, **opts)
    for a, b in zip(fast.estimators_, slow.estimators_):
        for pa, pb in zip(a.module_.net.parameters(), b.module_.net.parameters()):
            assert torch.allclose(pa, pb, rtol=1e-9, atol=1e-11)
        assert [h["loss"] for h in a.history_] == pytest.approx([h["loss"] for h in b.history_], rel=1e-9)


def test_validation_history_per_member(data):
    X, y = data
    ens = DeepEnsemble(lambda: MDN(1, hidden=(4,), early_stopping=False, variance_scaling=False), members=2).fit(
        X[:40], y[:40], optimizer="adam", epochs=3, validation_data=(X[40:], y[40:])
    )
    for est in ens.estimators_:
        assert [h["epoch"] for h in est.history_] == [1, 2, 3]
        # the recorded validation NLL is the member's own at the end of the last epoch
        assert est.history_[-1]["val_nll"] == pytest.approx(
            est._nll(torch.as_tensor(X[40:], dtype=torch.float32), torch.as_tensor(y[40:], dtype=torch.float32))
        )
    assert ens.estimators_[0].history_ != ens.estimators_[1].history_


def test_stochastic_members_and_hidlr_share_one_optimizer(data):
    X, y = data
    ens = DeepEnsemble(lambda: BNN(hidden=(4,), samples=5), members=3).fit(X, y, optimizer="hidlr", epochs=3)
    opt = ens.estimators_[0].optimizer_
    assert isinstance(opt, HiDLR) and all(e.optimizer_ is opt for e in ens.estimators_)
    loc = ens.predict_proba(X[:7]).loc
    assert loc.shape == (7, 15) and torch.isfinite(loc).all()
    first = [e.module_.net.out.weight_mu.detach() for e in ens.estimators_]
    assert not torch.equal(first[0], first[1])


class _Unvectorizable(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, 1)

    def loss(self, x, y):
        return (self.lin(x)[:, 0] - y).square().mean() * float(y.abs().max().item() > -1)


class _UnvectorizableEstimator(Estimator):
    default_optimizer = "adam"

    def build(self, in_features, y_std, dataset_size):
        return _Unvectorizable(in_features)

    def __init__(self):
        super().__init__(early_stopping=False)


def test_a_loss_vmap_cannot_batch_names_the_way_out(data):
    X, y = data
    with pytest.raises(RuntimeError, match="vectorize=False"):
        DeepEnsemble(_UnvectorizableEstimator, members=2).fit(X, y, epochs=1)
    ens = DeepEnsemble(_UnvectorizableEstimator, members=2, vectorize=False).fit(X, y, epochs=1)
    assert len(ens.estimators_) == 2


def test_members_must_share_one_architecture():
    with pytest.raises(ValueError, match="same parameters"):
        StackedNets([nn.Linear(2, 3), nn.Sequential(nn.Linear(2, 3))])
    with pytest.raises(ValueError, match="no parameters"):
        StackedNets([nn.ReLU(), nn.ReLU()])
    stack = StackedNets([nn.Linear(2, 3), nn.Linear(2, 3)])
    with pytest.raises(ValueError, match="member axis of 2"):
        stack.loss(torch.zeros(3, 4, 2), torch.zeros(3, 4))


def test_lr_scales_train_each_member_at_its_own_rate(data):
    X, y = data
    Xd, yd = torch.as_tensor(X), torch.as_tensor(y)
    lrs = [1e-3, 4e-3, 1e-2]
    opts = {"epochs": 3, "batch_size": 10}

    def adam(lr):  # a scale c turns Adam's eps into eps / c: a negligible eps makes the match exact
        return lambda groups: torch.optim.Adam(groups, lr=lr, eps=1e-30)

    grid = fit_side_by_side(
        [MDN(2, hidden=(6,)) for _ in lrs],
        Xd,
        yd,
        seeds=[5] * 3,
        lr_scales=[lr / lrs[0] for lr in lrs],
        optimizer=adam(lrs[0]),
        **opts,
    )
    for lr, est in zip(lrs, grid):
        alone = MDN(2, hidden=(6,)).fit(Xd, yd, seed=5, optimizer=adam(lr), **opts)
        for pa, pb in zip(est.module_.net.parameters(), alone.module_.net.parameters()):
            assert torch.allclose(pa, pb, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(grid[0].module_.net.loc.bias, grid[2].module_.net.loc.bias)


def test_side_by_side_checks_its_inputs(data):
    X, y = data
    with pytest.raises(ValueError, match="one class"):
        fit_side_by_side([MDN(2), BNN()], X, y, seeds=[0, 1])
    with pytest.raises(ValueError, match="2 seeds for 3"):
        fit_side_by_side([MDN(2) for _ in range(3)], X, y, seeds=[0, 1])
    with pytest.raises(ValueError, match="lr_scales"):
        fit_side_by_side([MDN(2) for _ in range(2)], X, y, seeds=[0, 1], lr_scales=[1.0, -2.0])
    one = fit_side_by_side([MDN(2, hidden=(4,))], X, y, seeds=[0], epochs=1, optimizer="adam")
    assert torch.isfinite(one[0].predict_proba(X).loc).all()


def test_readme_rate_grid_example_picks_a_fitted_model(data):
    X, y = data
    X, X_val, y, y_val = X[:45], X[45:], y[:45], y[45:]
    from hidlr.uq.models import fit_side_by_side as exported

    lrs = [1e-3, 3e-3, 1e-2]
    fits = exported(
        [MDN(components=3) for _ in lrs],
        X,
        y,
        seeds=[0] * 3,
        optimizer="adam",
        lr=lrs[0],
        lr_scales=[lr / lrs[0] for lr in lrs],
        validation_data=(X_val, y_val),
        epochs=5,
    )
    best = min(fits, key=lambda m: min(h["val_nll"] for h in m.history_))
    assert len({id(f.module_.net) for f in fits}) == 3 and best in fits
    assert torch.isfinite(best.predict_proba(X_val).loc).all()
