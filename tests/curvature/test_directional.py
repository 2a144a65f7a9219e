"""hidlr.curvature.along against closed forms (quadratics) and dense Hessians of tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian

from hidlr import curvature


def _quadratic(sizes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    q = torch.randn(n, n, generator=gen, dtype=torch.float64)
    h = q @ q.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in sizes]

    def loss():
        w = torch.cat(params)
        return 0.5 * w @ h @ w - g @ w

    return h, g, params, loss


def _flat_dirs(dirs):
    return torch.cat([torch.cat([d.reshape(-1) for d in ds]) for ds in dirs])


def test_quadratic_closed_form():
    sizes = [3, 5, 2]
    h, g, params, loss = _quadratic(sizes)
    gen = torch.Generator().manual_seed(1)
    dirs = [[torch.randn(s, generator=gen, dtype=torch.float64)] for s in sizes]
    out = curvature.along(loss, [[p] for p in params], dirs)
    w = torch.cat([p.detach() for p in params])
    grad = h @ w - g
    # the direction matrix D (n, K): column k is d_k embedded in group k's coordinates
    d = torch.zeros(sum(sizes), len(sizes), dtype=torch.float64)
    start = 0
    for k, s in enumerate(sizes):
        d[start : start + s, k] = dirs[k][0]
        start += s
    torch.testing.assert_close(out.b, d.T @ grad)
    torch.testing.assert_close(out.A, d.T @ h @ d)
    assert out.loss == pytest.approx(float(loss().detach()))
    # the quadratic model is exact on a quadratic: L(w - D eta) for a random eta
    eta = torch.tensor([0.3, -0.2, 0.7], dtype=torch.float64)
    with torch.no_grad():
        for p, e, ds in zip(params, eta, dirs):
            p -= e * ds[0]
        moved = float(loss())
    assert moved == pytest.approx(out.loss - float(out.b @ eta) + 0.5 * float(eta @ out.A @ eta), rel=1e-12)


def test_newton_rates_from_terms():
    sizes = [4, 4]
    _, _, params, loss = _quadratic(sizes, seed=3)
    dirs = [[p.detach().clone()] for p in params]
    out = curvature.along(loss, [[p] for p in params], dirs)
    torch.testing.assert_close(out.newton_diag, out.b / torch.diagonal(out.A))
    assert out.newton_one == pytest.approx(float(out.b.sum() / out.A.sum()))


def _tiny_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    return model, x, y


def test_tiny_mlp_against_dense_hessian():
    model, x, y = _tiny_mlp()
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def loss_of_flat(w):
        chunks = torch.split(w, sizes)
        named = {n: c.reshape(s) for (n, _), c, s in zip(model.named_parameters(), chunks, shapes)}
        return nn.functional.cross_entropy(torch.func.functional_call(model, named, (x,)), y)

    w0 = torch.cat([p.detach().reshape(-1) for p in params])
    dense = hessian(loss_of_flat, w0)
    grad = torch.autograd.functional.jacobian(loss_of_flat, w0)
    groups = [params[:2], params[2:]]  # first layer, second layer
    gen = torch.Generator().manual_seed(2)
    dirs = [[torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in ps] for ps in groups]
    out = curvature.along(lambda: nn.functional.cross_entropy(model(x), y), groups, dirs)
    n1 = sum(p.numel() for p in groups[0])
    flat = _flat_dirs(dirs)
    d = torch.zeros(len(flat), 2, dtype=torch.float64)
    d[:n1, 0], d[n1:, 1] = flat[:n1], flat[n1:]
    torch.testing.assert_close(out.b, d.T @ grad)
    torch.testing.assert_close(out.A, d.T @ dense @ d)


def test_param_groups_dicts_and_float32_directions():
    model, x, y = _tiny_mlp()
    opt = torch.optim.SGD([{"params": list(model[0].parameters())}, {"params": list(model[2].parameters())}], lr=0.1)
    dirs = [[torch.ones_like(p, dtype=torch.float32) for p in g["params"]] for g in opt.param_groups]
    out = curvature.along(lambda: nn.functional.cross_entropy(model(x), y), opt.param_groups, dirs)
    assert out.A.shape == (2, 2) and out.A.dtype == torch.float64
    torch.testing.assert_close(out.A, out.A.T)


def test_bad_input_is_named():
    _, _, params, loss = _quadratic([2, 2])
    groups = [[p] for p in params]
    with pytest.raises(ValueError, match="directions has 1 groups"):
        curvature.along(loss, groups, [[torch.zeros(2)]])
    with pytest.raises(ValueError, match=r"directions\[1\] must match"):
        curvature.along(loss, groups, [[torch.zeros(2)], [torch.zeros(3)]])
    with pytest.raises(ValueError, match="scalar"):
        curvature.along(lambda: torch.cat(params), groups, [[torch.zeros(2)], [torch.zeros(2)]])
    with pytest.raises(ValueError, match="does not require grad"):
        curvature.along(loss, [[torch.zeros(2)]], [[torch.zeros(2)]])
    with pytest.raises(TypeError, match="groups"):
        curvature.along(loss, params[0], [[torch.zeros(2)]])
    with pytest.raises(ValueError, match=r"directions\[1\]\[0\] holds NaN"):
        curvature.along(loss, groups, [[torch.zeros(2)], [torch.tensor([0.0, float("nan")])]])
    with pytest.raises(ValueError, match=r"directions\[0\]\[0\] holds NaN or infinite"):
        curvature.along(loss, groups, [[torch.tensor([float("inf"), 0.0])], [torch.zeros(2)]])
    with pytest.raises(ValueError, match="non-finite loss"):
        curvature.along(lambda: loss() * float("nan"), groups, [[torch.zeros(2)], [torch.zeros(2)]])


def test_groups_the_loss_does_not_use_are_named_or_measured_as_flat():
    model, x, y = _tiny_mlp()
    other, _, _ = _tiny_mlp()
    loss = lambda: nn.functional.cross_entropy(model(x), y)
    groups = [list(other.parameters())]
    dirs = [[torch.ones_like(p) for p in groups[0]]]
    with pytest.raises(ValueError, match="loss_fn returned a loss that does not depend on the groups' parameters"):
        curvature.along(loss, groups, dirs)
    # one group the loss ignores, one it uses linearly: b and A are exact (zero curvature), no error
    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    unused = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    out = curvature.along(lambda: 3 * w.sum(), [[w], [unused]], [[torch.ones(2)], [torch.ones(3)]])
    torch.testing.assert_close(out.b, torch.tensor([6.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out.A, torch.zeros(2, 2, dtype=torch.float64))


def test_directions_must_be_tensors_and_groups_not_a_module():
    np = pytest.importorskip("numpy")
    model, x, y = _tiny_mlp()
    loss = lambda: nn.functional.cross_entropy(model(x), y)
    params = list(model.parameters())
    with pytest.raises(TypeError, match=r"directions\[0\]\[0\] must be a torch.Tensor, got ndarray"):
        curvature.along(loss, [params[:1]], [[np.zeros((4, 3))]])
    with pytest.raises(TypeError, match=r"directions\[0\]\[0\] must be a torch.Tensor, got list"):
        curvature.along(loss, [params[:1]], [[[0.0] * 3] * 4])
    with pytest.raises(TypeError, match="directions must be a list"):
        curvature.along(loss, [params[:1]], np.zeros((1, 4, 3)))
    with pytest.raises(TypeError, match=r"directions\[0\] must be a tensor or a list of tensors, got ndarray"):
        curvature.along(loss, [params[:1]], [np.zeros((4, 3))])
    passing = r"groups must be parameter groups, not an nn.Module.*list\(model.parameters\(\)\)"
    with pytest.raises(TypeError, match=passing):
        curvature.along(loss, model, [[torch.zeros_like(p)] for p in params])
