"""Uncertainty-aware regressors: ``fit(X, y)`` / ``predict(X) -> GaussianMixture`` estimators.

Estimators (NumPy arrays or tensors in; predictive Gaussian mixtures in the original units of ``y``
out): :class:`MDN`, :class:`BNN`, :class:`MCDropout`, :class:`BayesianMDN`, and the ensembles
:class:`DeepEnsemble` (of any estimator) and :class:`MDNEnsemble`. They train with Hi-DLR around
Adam by default, over param groups that fit each model (``estimator.param_groups(module)``), except
:class:`MDN` (and so :class:`MDNEnsemble`), which defaults to Adam (its docstring says why);
``optimizer="adam"``, ``"hidlr"`` or a callable ``groups -> optimizer`` choose
explicitly. Ensembles train their members side by side as one stacked net (``vectorize=True``), and
:func:`fit_side_by_side` trains several fresh estimators, for instance one per learning rate, the
same way.

Each estimator wraps an ordinary ``nn.Module`` (``estimator.module`` after ``fit``; or build one
directly: :class:`MDNNet`, :class:`BNNNet`, :class:`MCDropoutNet`, :class:`BayesianMDNNet`) with
``loss(x, y)`` (scalar minibatch loss) and ``forward(x) -> GaussianMixture``, both in standardized
units, for use in a custom training loop::

    net = BNNNet(in_features=d, dataset_size=n)
    for x, y in loader:
        opt.zero_grad(); net.loss(x, y).backward(); opt.step()
    dist = net(x_test)
"""

from hidlr.uq.models.bayesian_mdn import BayesianMDN, BayesianMDNNet
from hidlr.uq.models.bnn import BNN, BNNNet
from hidlr.uq.models.dropout import MCDropout, MCDropoutNet
from hidlr.uq.models.ensemble import DeepEnsemble, MDNEnsemble
from hidlr.uq.models.estimator import Estimator
from hidlr.uq.models.layers import BayesianLinear, bayesian_kl
from hidlr.uq.models.mdn import MDN, MDNNet, mixture_collapse_penalty
from hidlr.uq.models.stacked import StackedNets, fit_side_by_side

__all__ = [
    "BNN",
    "BNNNet",
    "BayesianLinear",
    "BayesianMDN",
    "BayesianMDNNet",
    "DeepEnsemble",
    "Estimator",
    "MCDropout",
    "MCDropoutNet",
    "MDN",
    "MDNEnsemble",
    "MDNNet",
    "StackedNets",
    "bayesian_kl",
    "fit_side_by_side",
    "mixture_collapse_penalty",
]
