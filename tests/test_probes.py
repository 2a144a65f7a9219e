"""The probe module: the rules of a probe call, the three probes, and HiDLR's step(closure) default."""

import pytest
import torch
from torch import nn

from hidlr import BatchProbe, ClosureProbe, DataProbe, HiDLR, LatestBatchProbe
from hidlr.probes import (
    BatchStream,
    batch_to,
    common_random_numbers,
    frozen_norm_stats,
    loss_of_output,
    probe_context,
    probe_for_step,
)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))


def test_probe_context_switches_dropout_off_keeps_batch_statistics_and_restores_everything():
    net = _net().train()
    net[4].eval()  # a submodule the user keeps in eval mode stays so
    x = torch.randn(32, 4) + 3
    with probe_context(net):
        assert not net[3].training and net[1].training  # dropout off, BatchNorm on batch statistics
        with torch.no_grad():
            a, b = net(x), net(x)
    assert torch.equal(a, b)  # no dropout noise
    assert [m.training for m in net] == [True, True, True, True, False]
    assert torch.equal(net[1].running_mean, torch.zeros(16)) and int(net[1].num_batches_tracked) == 0
    with torch.no_grad():  # batch statistics were used: the output matches a train-mode BN without dropout
        ref = net[4](net[2](nn.functional.batch_norm(net[0](x), None, None, net[1].weight, net[1].bias, True)))
    torch.testing.assert_close(a, ref)


def test_frozen_norm_stats_restores_values_even_after_a_non_finite_batch():
    bn = nn.BatchNorm1d(3, momentum=None).train()  # cumulative average: momentum 0 tricks would not apply
    with frozen_norm_stats(bn):
        bn(torch.tensor([[float("nan"), 1.0, 2.0], [0.0, 1.0, 5.0]]))
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(bn.running_var, torch.ones(3))
    assert int(bn.num_batches_tracked) == 0


def test_common_random_numbers_repeat_draws_and_leave_the_caller_stream_alone():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    with common_random_numbers(11):
        a = torch.rand(4)
    with common_random_numbers(11):
        b = torch.rand(4)
    with common_random_numbers(12):
        c = torch.rand(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)


def test_batch_probe_with_dropout_kept_is_fixed_within_a_step_and_fresh_across_steps():
    net = _net().train()
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    probe = BatchProbe(lambda: nn.functional.mse_loss(net(x), y), net, eval_mode=False, seed=3)
    probe.begin_step(0)
    first = probe()
    assert torch.equal(probe(), first)  # the same dropout masks in every call of a step
    probe.begin_step(1)
    assert not torch.equal(probe(), first)
    eval_probe = BatchProbe(lambda: nn.functional.mse_loss(net(x), y), net)
    eval_probe.begin_step(0)
    v = eval_probe()
    eval_probe.begin_step(1)
    assert torch.equal(eval_probe(), v)  # dropout off: no noise left at all
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        BatchProbe(3.0)
    with pytest.raises(TypeError, match="seed must be an int"):
        BatchProbe(lambda: 0.0, seed=1.5)


class _HFStyle(nn.Module):
    """A model that returns an object with ``.loss`` when given labels, like Hugging Face models."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, labels=None):
        out = self.lin(self.drop(x))
        loss = None if labels is None else nn.functional.mse_loss(out.squeeze(-1), labels)
        return type("Output", (), {"loss": loss, "logits": out})()


def test_latest_batch_probe_reruns_the_latest_training_call_only():
    model = _HFStyle().train()
    probe = LatestBatchProbe(model)
    with pytest.raises(RuntimeError, match="no training forward"):
        probe()
    x1, y1, x2, y2 = torch.randn(8, 3), torch.randn(8), torch.randn(8, 3), torch.randn(8)
    model(x1, labels=y1)
    model(x2, labels=y2)
    with torch.no_grad():
        model(torch.randn(8, 3), labels=torch.randn(8))  # evaluation-style call: not recorded
        expected = nn.functional.mse_loss(model.lin(x2).squeeze(-1), y2)
    assert torch.equal(probe(), expected)  # the latest training inputs, dropout off
    assert probe.inputs[0][0] is x2 and probe.inputs[1]["labels"] is y2
    probe.close()
    model(x1, labels=y1)
    assert probe.inputs is None


def test_data_probe_draws_one_batch_per_refresh_and_the_same_within_it():
    model = _HFStyle()
    data = [{"x": torch.randn(4, 3), "labels": torch.randn(4)} for _ in range(3)]
    probe = DataProbe(model, data)
    w = model.lin.weight
    opt = HiDLR(torch.optim.SGD(model.parameters(), lr=0.01), every=2, probe=probe)
    used = []
    for step in range(6):
        train = {"x": torch.randn(4, 3), "labels": torch.randn(4)}
        opt.zero_grad()
        model(**train).loss.backward()
        before = probe.batch
        opt.step()
        if step % 2 == 0:
            used.append(probe.batch)
            assert probe.batch is not before  # a new batch at each refresh step
        else:
            assert probe.batch is before  # steps without a refresh draw nothing
    assert [u["labels"] for u in used] == [d["labels"] for d in data]  # in turn, every call of a step the same
    with torch.no_grad():
        expected = nn.functional.mse_loss(model.lin(data[0]["x"]).squeeze(-1), data[0]["labels"])
    probe.begin_step(99)
    assert torch.equal(probe(), expected)  # the stream restarted; dropout off
    assert w.grad is not None


def test_data_probe_takes_a_loss_of_model_and_batch_and_moves_tensors():
    net = nn.Linear(3, 1)
    x, y = torch.randn(5, 3), torch.randn(5, 1)
    probe = DataProbe(net, [(x, y)], loss=lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))
    probe.begin_step(0)
    with torch.no_grad():
        assert torch.equal(probe(), nn.functional.mse_loss(net(x), y))
    nested = {"a": (torch.ones(2), [torch.zeros(1)]), "b": 3}
    moved = batch_to(nested, torch.device("cpu"))
    assert torch.equal(moved["a"][0], torch.ones(2)) and moved["b"] == 3 and isinstance(moved["a"][1], list)


def test_data_probe_refuses_bad_arguments_and_empty_data():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        DataProbe("net", [1])
    with pytest.raises(TypeError, match="batches must be an iterable"):
        DataProbe(nn.Linear(1, 1), 3)
    with pytest.raises(TypeError, match="loss must be callable"):
        DataProbe(nn.Linear(1, 1), [1], loss="mse")
    with pytest.raises(ValueError, match="yielded no batch"):
        BatchStream([]).draw()


def test_loss_of_output_reads_the_usual_shapes_and_refuses_others():
    t = torch.tensor(2.0)
    assert loss_of_output({"loss": t}) is t and loss_of_output((t, 1)) is t and loss_of_output(t) is t
    with pytest.raises(TypeError, match="no scalar loss"):
        loss_of_output(torch.ones(3))


def _closure_run(use_closure: bool, steps: int = 12):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = HiDLR(torch.optim.SGD(model.parameters(), lr=0.05), every=3)
    gen = torch.Generator().manual_seed(0)
    grads = []
    for _ in range(steps):
        x, y = torch.randn(16, 5, generator=gen), torch.randn(16, 1, generator=gen)

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        if use_closure:
            loss = opt.step(closure)
        else:
            loss = closure()
            opt.step(probe=BatchProbe(lambda x=x, y=y: nn.functional.mse_loss(model(x), y)))
        grads.append(model[0].weight.grad.clone())
        assert loss is not None
    return opt, model, grads


def test_step_with_a_closure_needs_no_probe_and_matches_a_forward_only_probe():
    opt, model, grads = _closure_run(use_closure=True)
    ref_opt, ref_model, ref_grads = _closure_run(use_closure=False)
    assert len(opt.history) == 4 and all(r["loss"] is not None for r in opt.history)
    assert opt.lrs == ref_opt.lrs  # the closure's losses are the forward-only probe's, bitwise
    for a, b in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)
    assert all(torch.equal(g, r) for g, r in zip(grads, ref_grads))  # the step's gradients survive the probes


def test_closure_probe_refuses_a_closure_without_a_loss():
    p = nn.Parameter(torch.ones(2))
    probe = ClosureProbe([p])
    probe.begin_step(0, lambda: None)
    with pytest.raises(TypeError, match="returned None"):
        probe()


def test_probe_for_step_prefers_the_explicit_probe_then_the_default():
    p = nn.Parameter(torch.ones(2))
    opt = HiDLR(torch.optim.SGD([p], lr=0.1))
    explicit, default = BatchProbe(lambda: p.sum()), BatchProbe(lambda: p.sum())
    assert probe_for_step(opt, explicit, None) is explicit
    assert probe_for_step(opt, None, None) is None
    assert isinstance(probe_for_step(opt, None, lambda: p.sum()), ClosureProbe)
    opt.default_probe = default
    assert probe_for_step(opt, None, lambda: p.sum()) is default
