"""Uncertainty-aware regressors with the scikit-learn / skpro surface.

``fit(X, y)``; ``predict(X)`` -> NumPy ``(n,)`` predictive means; ``predict_proba(X)`` -> the
predictive :class:`~hidlr.uq.distributions.GaussianMixture` in the units of ``y``;
``predict_interval(X, coverage=0.9)`` and ``predict_quantiles(X, alpha=[...])`` -> pandas frames as in
skpro; ``score`` = mean log-likelihood; ``get_params``/``set_params``. Fits carve a validation
part, stop early on it and keep the best epoch by default (see :class:`Estimator`).

Estimators (NumPy arrays, pandas frames or tensors in): :class:`MDN`, :class:`BNN`,
:class:`MCDropout`, :class:`BayesianMDN`, and the ensembles :class:`DeepEnsemble` (of any
estimator) and :class:`MDNEnsemble`. They train with Hi-DLR around Adam by default, over param
groups that fit each model (``estimator.param_groups(net)``), except :class:`MDN` (and so
:class:`MDNEnsemble`), which defaults to Adam; ``optimizer="adam"``, ``"hidlr"`` or a callable
``groups -> optimizer`` choose
explicitly. Ensembles train their members side by side as one stacked net (``vectorize=True``), and
:func:`fit_side_by_side` trains several fresh estimators, for instance one per learning rate, the
same way.

Each estimator wraps an ordinary ``nn.Module`` (``estimator.module_.net`` after ``fit``, with
``estimator.module_`` adding the fitted scaling as buffers and, for an MDN, the same net's weights
at other good epochs in ``module_.snapshots`` (see :class:`MDN`); or build one directly:
:class:`MDNNet`, :class:`BNNNet`, :class:`MCDropoutNet`, :class:`BayesianMDNNet`; :class:`BackboneNet` puts a
feature extractor such as a CNN in front of one) with
``loss(x, y)`` (scalar minibatch loss) and ``forward(x) -> GaussianMixture``, both in standardized
units, for use in a custom training loop::

    net = BNNNet(in_features=d, dataset_size=n)
    for x, y in loader:
        opt.zero_grad(); net.loss(x, y).backward(); opt.step()
    dist = net(x_test)
"""

from hidlr.uq.models.backbone import BackboneNet
from hidlr.uq.models.bayesian_mdn import BayesianMDN, BayesianMDNNet
from hidlr.uq.models.blocks import mixture_collapse_penalty
from hidlr.uq.models.bnn import BNN, BNNNet
from hidlr.uq.models.conformal import ConformalRegressor
from hidlr.uq.models.dropout import MCDropout, MCDropoutNet
from hidlr.uq.models.ensemble import DeepEnsemble, MDNEnsemble
from hidlr.uq.models.estimator import Estimator
from hidlr.uq.models.interface import NotFittedError, ProbabilisticRegressor
from hidlr.uq.models.laplace import LastLayerLaplace
from hidlr.uq.models.layers import BayesianLinear, bayesian_kl
from hidlr.uq.models.mdn import MDN, MDNNet
from hidlr.uq.models.scaling import ScaledNet
from hidlr.uq.models.stacked import StackedNets, fit_side_by_side

__all__ = [
    "BNN",
    "MDN",
    "BNNNet",
    "BackboneNet",
    "BayesianLinear",
    "BayesianMDN",
    "BayesianMDNNet",
    "ConformalRegressor",
    "DeepEnsemble",
    "Estimator",
    "MCDropout",
    "MCDropoutNet",
    "MDNEnsemble",
    "LastLayerLaplace",
    "MDNNet",
    "NotFittedError",
    "ProbabilisticRegressor",
    "ScaledNet",
    "StackedNets",
    "bayesian_kl",
    "fit_side_by_side",
    "mixture_collapse_penalty",
]
