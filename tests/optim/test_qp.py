"""The non-negative quadratic minimiser against SciPy's NNLS on the Cholesky form, in float64."""

import numpy as np
import pytest
import scipy.optimize
import torch

from hidlr.optim.qp import nonneg_quadratic_min


def _random_problem(k, seed, negative_unconstrained):
    gen = np.random.default_rng(seed)
    for _ in range(1000):
        m = gen.standard_normal((k, k))
        a = m @ m.T + 0.1 * np.eye(k)
        b = gen.standard_normal(k)
        if not negative_unconstrained or (np.linalg.solve(a, b) < 0).any():
            return a, b
    raise AssertionError("no problem drawn")


def _reference(a, b):
    """min_{z>=0} -b^T z + z^T a z / 2 == min_{z>=0} |L^T z - L^{-1} b|^2 / 2 (a = L L^T)."""
    chol = np.linalg.cholesky(a)
    return scipy.optimize.nnls(chol.T, np.linalg.solve(chol, b))[0]


def _objective(a, b, z):
    return -b @ z + 0.5 * z @ a @ z


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 16])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("negative", [False, True])
def test_matches_scipy_nnls_on_random_quadratics(k, seed, negative):
    if k == 1 and negative:
        a, b = np.array([[2.0]]), np.array([-1.0])
    else:
        a, b = _random_problem(k, seed, negative)
    z = nonneg_quadratic_min(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = _reference(a, b)
    assert (z >= 0).all()
    np.testing.assert_allclose(z, ref, rtol=1e-7, atol=1e-9)
    assert _objective(a, b, z) <= _objective(a, b, ref) + 1e-10
    # KKT: gradient zero on the free set, non-negative on the bound set
    grad = a @ z - b
    assert np.all(np.abs(grad[z > 0]) < 1e-8) and np.all(grad[z == 0] > -1e-8)
    if negative:
        assert (np.linalg.solve(a, b) < 0).any() and (z == 0).any()


def test_matches_scipy_bounded_minimize():
    a, b = _random_problem(4, 99, True)
    ref = scipy.optimize.minimize(
        lambda z: _objective(a, b, z),
        np.ones(4),
        jac=lambda z: a @ z - b,
        bounds=[(0, None)] * 4,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    z = nonneg_quadratic_min(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(z, ref.x, atol=1e-6)


def test_interior_solution_is_the_linear_solve():
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(nonneg_quadratic_min(a, b), torch.linalg.solve(a, b))


def test_all_negative_gradient_gives_zero():
    a = torch.eye(3, dtype=torch.float64)
    zero = torch.zeros(3, dtype=torch.float64)
    assert torch.equal(nonneg_quadratic_min(a, -torch.ones(3, dtype=torch.float64)), zero)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="a must be"):
        nonneg_quadratic_min(torch.eye(2), torch.ones(3))
