"""Per-group top eigenvalues and Hutchinson traces against dense Hessians (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian

from hidlr import curvature


def _model_and_dense():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    params = list(model.parameters())
    sizes = [p.numel() for p in params]

    def loss_of_flat(w):
        named = {n: c.reshape(p.shape) for (n, p), c in zip(model.named_parameters(), torch.split(w, sizes))}
        return nn.functional.cross_entropy(torch.func.functional_call(model, named, (x,)), y)

    dense = hessian(loss_of_flat, torch.cat([p.detach().reshape(-1) for p in params]))
    n1 = sizes[0] + sizes[1]
    blocks = [dense[:n1, :n1], dense[n1:, n1:]]
    groups = [params[:2], params[2:]]
    return (lambda: nn.functional.cross_entropy(model(x), y)), groups, blocks


def test_top_eigenvalue_exact_with_full_lanczos():
    loss, groups, blocks = _model_and_dense()
    top = curvature.top_eigenvalues(loss, groups, iters=40)
    expected = torch.stack([torch.linalg.eigvalsh(b)[-1] for b in blocks])
    torch.testing.assert_close(top, expected, rtol=1e-8, atol=1e-10)


def test_top_eigenvalue_of_indefinite_block_is_the_largest_not_the_largest_magnitude():
    h = torch.diag(torch.tensor([-5.0, 1.0, 2.0], dtype=torch.float64))
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    top = curvature.top_eigenvalues(lambda: 0.5 * w @ h @ w, [[w]], iters=3)
    assert float(top[0]) == pytest.approx(2.0, rel=1e-10)


def test_top_eigenvalue_converges_with_few_iterations_on_a_separated_top():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(60, 60, generator=gen, dtype=torch.float64))
    ev = torch.cat([torch.tensor([50.0], dtype=torch.float64), torch.rand(59, generator=gen, dtype=torch.float64)])
    h = q @ torch.diag(ev) @ q.T
    w = torch.zeros(60, dtype=torch.float64, requires_grad=True)
    top = curvature.top_eigenvalues(lambda: 0.5 * w @ h @ w, [[w]], iters=12)
    assert float(top[0]) == pytest.approx(50.0, rel=1e-8)


def test_hutchinson_exact_on_diagonal_blocks():
    h = torch.diag(torch.tensor([1.0, 2.0, 3.0, -4.0, 5.0], dtype=torch.float64))
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    tr = curvature.hutchinson_traces(lambda: 0.5 * w @ h @ w, [[w]], samples=3)
    assert float(tr.mean[0]) == pytest.approx(7.0, rel=1e-12)
    assert float(tr.stderr[0]) == pytest.approx(0.0, abs=1e-12)


def test_hutchinson_within_its_standard_error_of_dense_trace():
    loss, groups, blocks = _model_and_dense()
    tr = curvature.hutchinson_traces(loss, groups, samples=400, seed=3)
    expected = torch.stack([torch.trace(b) for b in blocks])
    assert ((tr.mean - expected).abs() <= 4 * tr.stderr + 1e-12).all()
    assert (tr.stderr > 0).all()


def test_bad_arguments():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="iters"):
        curvature.top_eigenvalues(lambda: (w**2).sum(), [[w]], iters=0)
    with pytest.raises(ValueError, match="samples"):
        curvature.hutchinson_traces(lambda: (w**2).sum(), [[w]], samples=0)
    with pytest.raises(ValueError, match="non-finite loss"):
        curvature.top_eigenvalues(lambda: (w**2).sum() * float("inf"), [[w]])
    with pytest.raises(ValueError, match="non-finite loss"):
        curvature.hutchinson_traces(lambda: (w**2).sum() * float("nan"), [[w]])


@pytest.mark.parametrize("estimate", [curvature.top_eigenvalues, curvature.hutchinson_traces])
def test_seed_and_counts_are_checked(estimate):
    w = torch.ones(2, requires_grad=True)
    loss = lambda: (w**2).sum()
    for bad in (None, 1.5, "a", True):
        with pytest.raises(TypeError, match="seed must be an int"):
            estimate(loss, [[w]], seed=bad)
    for bad in (-1, 2**63):
        with pytest.raises(ValueError, match="seed must be"):
            estimate(loss, [[w]], seed=bad)
    count = "iters" if estimate is curvature.top_eigenvalues else "samples"
    with pytest.raises(TypeError, match=f"{count} must be an int, got bool"):
        estimate(loss, [[w]], **{count: True})
    assert estimate(loss, [[w]], seed=2**63 - 1) is not None
