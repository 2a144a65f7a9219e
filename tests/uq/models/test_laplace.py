"""Last-layer Laplace: closed-form posterior and evidence against NumPy/SciPy; epistemic growth."""

import numpy as np
import pytest
import torch
from scipy import stats

from hidlr.uq.models.laplace import LastLayerLaplace, features, log_evidence


def test_evidence_matches_the_dense_gaussian():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(12, 3))
    y = rng.normal(size=12)
    noise = rng.uniform(0.2, 1.0, size=12)
    for alpha in (0.1, 1.0, 30.0):
        cov = F @ F.T / alpha + np.diag(noise)
        ref = stats.multivariate_normal(np.zeros(12), cov).logpdf(y)
        got = log_evidence(torch.as_tensor(F), torch.as_tensor(y), torch.as_tensor(noise), alpha)
        assert got == pytest.approx(ref, rel=1e-10)


def test_posterior_is_the_closed_form_and_grows_away_from_the_data():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-2, -1, 60), rng.uniform(1, 2, 60)])[:, None]
    y = np.sin(2 * x[:, 0]) + 0.1 * rng.normal(size=120)
    m = LastLayerLaplace(hidden=(16,), epochs=60, samples=4000, random_state=0).fit(x, y)
    laplace = m.module_.net
    with torch.no_grad():
        xs = m.module_.standardize(torch.as_tensor(x))
        F = features(laplace.net, xs).double().numpy()
        _, _, scale = laplace.net.params(xs)
    noise = scale[:, 0].double().numpy() ** 2
    A = m.prior_precision_ * np.eye(F.shape[1]) + F.T @ (F / noise[:, None])
    cov = (laplace.scale_tril.double() @ laplace.scale_tril.double().T).numpy()
    np.testing.assert_allclose(cov, np.linalg.inv(A), rtol=1e-4, atol=1e-8)
    # Monte Carlo epistemic variance (in y units) against f^T A^{-1} f, inside the data and in the gap
    grid = np.array([[-1.5], [0.0], [1.5]])
    d = m.predict_proba(grid)
    with torch.no_grad():
        Fg = features(laplace.net, m.module_.standardize(torch.as_tensor(grid))).double().numpy()
    exact = np.einsum("ip,pq,iq->i", Fg, np.linalg.inv(A), Fg) * float(m.module_.y_scale) ** 2
    np.testing.assert_allclose(d.epistemic_variance.numpy(), exact, rtol=0.1)
    assert exact[1] > 2 * max(exact[0], exact[2])  # larger in the gap than near the data
    assert np.isfinite(m.score(x, y))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_fitted(dtype):
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.normal(size=(40, 2)), dtype=dtype)
    m = LastLayerLaplace(hidden=(4,), epochs=2, samples=5).fit(X, torch.as_tensor(rng.normal(size=40)))
    assert m.module_.net.w_map.dtype == dtype and np.isfinite(m.predict(X)).all()
