"""New baselines of the learning-rate benchmark: the official gen-optim package as published, the
default rate with warm-up and cosine decay, and start-rate variants."""

import math

import pytest
import torch
from torch import nn

from hidlr.bench.lr import methods as M
from hidlr.bench.lr import workloads as W
from hidlr.bench.lr.published_gen import LAZY_FREQ, GenOptimStepper
from hidlr.bench.lr.runner import run_one


class Scalar(nn.Module):
    def __init__(self, w0: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w0], dtype=torch.float64))


def _quadratic(h: float):
    return lambda model, batch: 0.5 * h * (model.w**2).sum()


def test_gen_optim_is_called_with_its_published_defaults(monkeypatch):
    import GeN

    calls = []
    monkeypatch.setattr(GeN, "lr_parabola", lambda *a, **k: calls.append((a, k)))
    model = Scalar(1.0)
    opt = GenOptimStepper(model, torch.optim.SGD(model.parameters(), lr=0.1), _quadratic(1.0), lambda: None)
    for _ in range(3 * LAZY_FREQ):
        opt.step()
    assert len(calls) == 3 and LAZY_FREQ == 4  # the README's lazy frequency
    (net, base), kw = calls[0]
    assert base is opt.base and list(net.parameters()) == list(model.parameters())
    assert kw["task"] == "image_cls"  # the package's plain-forward task
    assert not {"scale", "lr_factor", "grad_accumulation_steps"} & set(kw)  # package defaults
    with pytest.raises(ValueError, match="lazy_freq"):
        GenOptimStepper(model, opt.base, _quadratic(1.0), lambda: None, lazy_freq=0)


def test_gen_optim_moves_the_rate_to_the_exact_parabola_optimum():
    # L(w) = h w^2 / 2; SGD's step at rate lr gives L(lr) = h w^2 (1 - lr h)^2 / 2, minimised at 1/h.
    # The package clips the fitted rate to [lr/2, 2 lr] and keeps 90% of the old rate.
    h, lr, w0 = 2.0, 0.4, 1.5
    model = Scalar(w0)
    loss = _quadratic(h)
    opt = GenOptimStepper(model, torch.optim.SGD(model.parameters(), lr=lr), loss, lambda: None, lazy_freq=1)
    loss(model, None).backward()
    opt.step()
    new_lr = 0.9 * lr + 0.1 * (1 / h)
    assert opt.param_groups[0]["lr"] == pytest.approx(new_lr, rel=1e-6)
    assert float(model.w.detach()) == pytest.approx(w0 - new_lr * h * w0, rel=1e-6)  # probes restored w first
    assert opt.stats() == {"lr_parabola_calls": 1, "fit_failures": 0}


def test_gen_optim_runs_in_the_benchmark_and_leaves_batchnorm_alone():
    wl = W.get(["digits-cnn-bn"])[0]
    rec = run_one(wl, M.get(["gen-optim"])[0], seed=0, steps=8, n_evals=2)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["optimizer_stats"]["lr_parabola_calls"] == 2
    task = wl.build(0)
    setup = M.get(["gen-optim"])[0].setup(wl, task, steps=8, seed=0)
    bns = [m for m in task.model.modules() if isinstance(m, nn.BatchNorm2d)]
    task.loss(task.model, task.batch(torch.Generator().manual_seed(0))).backward()
    before = [b.running_mean.clone() for b in bns]
    setup.optimizer.lazy_freq = 1
    setup.optimizer.step()  # three probe forwards on a fresh batch, then the step
    assert all(torch.equal(a, b.running_mean) for a, b in zip(before, bns))


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.0), (5, 0.5), (10, 1.0), (55, 0.5), (100, 0.0), (32.5, 0.5 * (1 + math.cos(math.pi * 0.25)))],
)
def test_warmup_cosine_closed_form(step, expected):
    assert M.warmup_cosine(step, steps=100, warmup=10) == pytest.approx(expected)


def test_warmup_cosine_method_schedules_the_base_optimizer():
    wl = W.get(["noisy-quadratic"])[0]
    rec = run_one(wl, M.get(["default-wcos"])[0], seed=0, steps=40, n_evals=4)
    assert rec["status"] == "ok"
    lrs = [v[0] for v in rec["lr_trace"]["lrs"]]  # after steps 0, 10, 20, 30, 40; warm-up = 2 steps
    expected = [0.0] + [wl.default_lr * M.warmup_cosine(s, 40, 2) for s in (10, 20, 30, 40)]
    assert lrs == pytest.approx(expected)


def test_start_rate_variants():
    hd = M.get(["hidlr-diag@lr0=1e-05"])[0]
    assert hd.family == "start-rate" and hd.varies == "hidlr-diag" and hd.lr0 == 1e-5
    names = [m.name for m in M.get(["default", "gen", "hidlr-diag"], lr0s=[1e-4, 0.1])]
    assert names == [
        "default",
        "gen",
        "hidlr-diag",
        "gen@lr0=0.0001",
        "hidlr-diag@lr0=0.0001",
        "gen@lr0=0.1",
        "hidlr-diag@lr0=0.1",
    ]
    wl = W.get(["noisy-quadratic"])[0]
    setup = hd.setup(wl, wl.build(0), steps=5, seed=0)
    assert setup.lr == 1e-5 and setup.optimizer.param_groups[0]["lr"] == 1e-5
    with pytest.raises(ValueError, match="no start rate"):
        M.get(["default@lr0=0.1"])
    with pytest.raises(ValueError, match="positive"):
        M.get(["gen@lr0=-1"])
    with pytest.raises(ValueError, match="unknown method"):
        M.get(["nope@lr0=0.1"])
    # every bad start rate is named, whichever methods take one
    for bad in ([0.0], [-1e-3, 0.1], [math.inf], [math.nan], [True]):
        with pytest.raises(ValueError, match="start rates must be positive and finite"):
            M.get(["default"], lr0s=bad)
    M.check_start_rates([1e-5, 1])


def test_variant_at_the_default_rate_reuses_the_run(tmp_path):
    from hidlr.bench.lr import run

    res = run(
        tmp_path,
        workloads=["noisy-quadratic"],
        methods=["gen"],
        lr0s=[1e-2, 1e-3],
        seeds=1,
        progress=False,
        max_steps=6,
        plots=False,
    )
    recs = {r["method"]: r for r in res["records"]}
    assert recs["gen@lr0=0.01"]["reused_from"] == "gen"  # SGD's default rate is 1e-2
    assert "reused_from" not in recs["gen@lr0=0.001"] and recs["gen@lr0=0.001"]["lr"] == 1e-3
    assert all(r["commit"] == res["environment"]["git_commit"] for r in res["records"])
    table = res["summary"]["start_rate"]["noisy-quadratic"]["gen"]
    assert sorted(table["by_lr0"]) == [1e-3, 1e-2] and table["runs"] == 2
