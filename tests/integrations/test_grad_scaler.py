"""HiDLR under torch.amp.GradScaler (its CPU form): scaled steps equal unscaled ones, and a step whose
gradients overflow is skipped by the scaler without HiDLR stepping, refreshing or raising."""

import pytest
import torch
from torch import nn

from hidlr import HiDLR


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = HiDLR(
        torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=1e-2), every=2
    )
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 4, generator=gen), torch.randn(16, 1, generator=gen)) for _ in range(8)]
    return model, opt, batches


def _run(use_scaler: bool, overflow_at: int | None = None):
    model, opt, batches = _setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10) if use_scaler else None
    scales, counts = [], []
    for t, (x, y) in enumerate(batches):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        probe = lambda x=x, y=y: nn.functional.mse_loss(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step(probe=probe)
            continue
        scaler.scale(loss * (float("inf") if t == overflow_at else 1.0)).backward()
        scaler.step(opt, probe=probe)  # keyword arguments reach HiDLR.step
        scaler.update()
        scales.append(scaler.get_scale())
        counts.append(opt.step_count)
    return model, opt, scales, counts


def test_scaled_steps_equal_unscaled_steps_bitwise():
    plain, plain_opt, _, _ = _run(use_scaler=False)
    scaled, scaled_opt, scales, _ = _run(use_scaler=True)
    assert set(scales) == {2.0**10} and len(scaled_opt.history) == 4
    assert scaled_opt.lrs == plain_opt.lrs
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), scaled.parameters()))


def test_an_overflowing_step_is_skipped_by_the_scaler_and_not_seen_by_hidlr():
    model, opt, scales, counts = _run(use_scaler=True, overflow_at=2)  # step 2 would be a refresh
    assert scales[2] == scales[1] / 2  # the scaler saw the overflow and backed off
    assert counts[:4] == [1, 2, 2, 3]  # HiDLR.step did not run for the skipped batch
    assert len(opt.history) == 4  # the refresh happened on the next step that ran
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_calling_hidlr_directly_with_overflowed_gradients_raises_and_changes_nothing():
    model, opt, batches = _setup()
    x, y = batches[0]
    (nn.functional.mse_loss(model(x), y) * float("inf")).backward()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        opt.step(probe=lambda: nn.functional.mse_loss(model(x), y))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
