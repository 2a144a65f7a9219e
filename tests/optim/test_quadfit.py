import pytest
import torch

from hidlr.optim.designs import line_design, pair_design, random_design
from hidlr.optim.quadfit import fit_line, fit_quadratic


def _exact(z, b, a):
    return -(z @ b) + 0.5 * torch.einsum("jk,kl,jl->j", z, a, z)


def test_diag_fit_recovers_separable_quadratic_exactly():
    b = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    a = torch.diag(torch.tensor([1.5, 0.2, 4.0], dtype=torch.float64))
    z = line_design([True, True, True], [-2, -1, 1, 2])
    fit = fit_quadratic(z, _exact(z, b, a), torch.ones(3, dtype=torch.bool), full=False)
    torch.testing.assert_close(fit.b, b)
    torch.testing.assert_close(fit.A, a)
    torch.testing.assert_close(fit.r2, torch.ones(3, dtype=torch.float64))


def test_full_fit_recovers_cross_terms_with_lines_and_pairs():
    b = torch.tensor([0.3, 1.2, -0.5, 0.7], dtype=torch.float64)
    m = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = m @ m.T + torch.eye(4, dtype=torch.float64)
    act = [True] * 4
    z = torch.cat([line_design(act, [-2, -1, 1, 2]), pair_design(act)])
    fit = fit_quadratic(z, _exact(z, b, a), torch.ones(4, dtype=torch.bool), full=True)
    torch.testing.assert_close(fit.b, b)
    torch.testing.assert_close(fit.A, a)


def test_random_design_full_fit_is_exact_on_a_quadratic():
    b = torch.tensor([0.5, -0.1, 0.9], dtype=torch.float64)
    a = torch.tensor([[2.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 3.0]], dtype=torch.float64)
    z = random_design([True] * 3, 20, [-2, -1, 1, 2], torch.Generator().manual_seed(0))
    fit = fit_quadratic(z, _exact(z, b, a), torch.ones(3, dtype=torch.bool), full=True)
    torch.testing.assert_close(fit.A, a)
    torch.testing.assert_close(fit.b, b)


def test_inactive_groups_get_no_columns_and_nan_r2():
    act = [True, False, True]
    z = line_design(act, [-1, 1, 2])
    assert (z[:, 1] == 0).all() and z.shape == (6, 3)
    y = _exact(z, torch.tensor([1.0, 9.0, 2.0], dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    fit = fit_quadratic(z, y, torch.tensor(act), full=False)
    assert fit.b[1] == 0 and fit.A[1, 1] == 0 and torch.isnan(fit.r2[1])
    torch.testing.assert_close(fit.b[[0, 2]], torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_r2_drops_when_the_loss_is_not_quadratic():
    s = torch.tensor([-2.0, -1.0, 1.0, 2.0], dtype=torch.float64)
    beta, alpha, r2 = fit_line(s, -s + 0.5 * s**2)
    assert (beta, alpha) == pytest.approx((1.0, 1.0)) and r2 == pytest.approx(1.0)
    _, _, r2_bad = fit_line(s, s**3)  # odd cubic: the quadratic model misses it
    assert r2_bad < 0.9


def test_too_few_probes_is_an_error():
    z = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="probes for"):
        fit_quadratic(z, torch.zeros(1, dtype=torch.float64), torch.ones(2, dtype=torch.bool), full=False)
