"""Shared fit/predict machinery for the uncertainty-aware regressors.

Every estimator in :mod:`hidlr.uq.models` is a thin wrapper around an ordinary ``nn.Module``
(its *net*, available as ``estimator.module`` after ``fit``). A net works in standardized units and
has two methods that a user's own training loop can call directly:

* ``net.loss(x, y) -> Tensor``: scalar minibatch loss, ``x: (b, d)``, ``y: (b,)``;
* ``net(x) -> GaussianMixture``: the predictive mixture for each row of ``x: (n, d)``.

The estimator adds what a one-line ``fit(X, y)`` needs: input validation, z-scoring of ``X`` and
``y`` with training statistics, a minibatch loop that is reproducible from a seed, Hi-DLR by
default (with a probe batch and common random numbers for stochastic losses), optional
validation scores and a progress bar, and predictions mapped back to the original units of ``y``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models.training import FitPlan, fused_adam, seeded, train_epochs

OptimizerSpec = None | str | Callable[[list[dict[str, Any]]], torch.optim.Optimizer]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


def activation_module(activation: str | Callable[[], nn.Module]) -> nn.Module:
    """Return a fresh activation module from a name ("relu", "tanh", ...) or a zero-arg factory."""
    if callable(activation) and not isinstance(activation, str):
        return activation()
    try:
        return _ACTIVATIONS[str(activation).lower()]()
    except KeyError:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)} or pass a factory"
        ) from None


def check_hidden(hidden: int | Sequence[int]) -> tuple[int, ...]:
    """Normalise a trunk specification: ``50`` or ``(50,)`` or ``(100, 50)`` -> tuple of widths."""
    widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if not widths or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"hidden must be one or more positive integer widths, got {hidden!r}")
    return tuple(int(w) for w in widths)


def as_tensor(
    a: Any, name: str, *, like: Tensor | None = None
) -> Tensor:
    """Convert ``a`` to a floating tensor; tensors keep device and (floating) dtype.

    NumPy arrays and lists become ``torch.get_default_dtype()`` tensors, or follow ``like``.
    """
    if isinstance(a, Tensor):
        t = a.detach()
        if like is not None:
            t = t.to(device=like.device, dtype=like.dtype)
        elif not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
    else:
        try:
            arr = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numeric array-like: {err}") from None
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        device = like.device if like is not None else None
        t = torch.as_tensor(arr, dtype=dtype, device=device)
    return t


def validate_xy(X: Any, y: Any | None = None, *, like: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """Check and convert training/test inputs.

    Returns ``X: (n, d)`` and ``y: (n,)`` (or ``None``). Raises ``ValueError`` naming the problem for
    wrong dimensions, an empty set, mismatched lengths, or NaN/inf values.
    """
    Xt = as_tensor(X, "X", like=like)
    if Xt.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if Xt.ndim == 1 else ""
        raise ValueError(f"X must be 2-D with shape (n, d), got shape {tuple(Xt.shape)}{hint}")
    if Xt.shape[0] == 0:
        raise ValueError("X is empty: it has 0 rows")
    if Xt.shape[1] == 0:
        raise ValueError("X has 0 features (shape (n, 0))")
    bad = ~torch.isfinite(Xt)
    if bad.any():
        first = int(bad.any(1).nonzero()[0])
        raise ValueError(f"X contains {int(bad.sum())} NaN or inf value(s) (first at row {first})")
    if y is None:
        return Xt, None
    yt = as_tensor(y, "y", like=Xt)
    if yt.ndim == 2 and yt.shape[1] == 1:
        yt = yt[:, 0]
    if yt.ndim != 1:
        raise ValueError(f"y must have shape (n,) or (n, 1), got shape {tuple(yt.shape)}")
    if yt.shape[0] != Xt.shape[0]:
        raise ValueError(f"X and y have different lengths: X has {Xt.shape[0]} rows, y has {yt.shape[0]}")
    bad = ~torch.isfinite(yt)
    if bad.any():
        raise ValueError(f"y contains {int(bad.sum())} NaN or inf value(s) (first at row {int(bad.nonzero()[0])})")
    return Xt, yt


def _standardize_stats(t: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation along dim 0; a zero deviation is replaced by 1."""
    mean = t.mean(0)
    std = t.std(0, unbiased=False) if t.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean, std


class Estimator:
    """Base class: subclasses implement :meth:`build`, :meth:`param_groups` (and may override the
    defaults below). Not an ``nn.Module`` itself; the trained net is ``self.module``.

    Args:
        hidden: trunk widths, ``(50,)`` = one hidden layer of 50 units (the UCI protocol).
        activation: trunk nonlinearity, a name or a zero-argument module factory.
        epochs: default number of epochs; ``None`` picks about ``target_steps`` optimizer steps
            (at least 20 and at most 2000 epochs).
        batch_size: default minibatch size (capped at the data size).
        lr: default (initial) learning rate of the base optimizer.
    """

    target_steps: int = 3000

    def __init__(
        self,
        *,
        hidden: int | Sequence[int] = (50,),
        activation: str | Callable[[], nn.Module] = "relu",
        epochs: int | None = None,
        batch_size: int = 32,
        lr: float = 3e-3,
    ) -> None:
        self.hidden = check_hidden(hidden)
        activation_module(activation)  # validate early
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.module: nn.Module | None = None
        self.history_: list[dict[str, float]] = []

    # ---- to be provided by subclasses ---------------------------------------------------------
    def build(self, in_features: int, y_std: Tensor, dataset_size: int) -> nn.Module:
        """Create the net for ``in_features`` inputs; ``y_std``: standardized training targets (n,)."""
        raise NotImplementedError

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        """Named parameter groups (``{"name": str, "params": [...]}``) for the optimizer."""
        return [{"name": "all", "params": list(module.parameters())}]

    #: True when the loss is random given the weights (dropout, weight sampling): probes then use
    #: common random numbers.
    stochastic: bool = False
    #: What ``fit(optimizer=None)`` trains with: ``"hidlr"`` (Hi-DLR around Adam) or ``"adam"``.
    default_optimizer: str = "hidlr"
    #: Keyword options of ``HiDLR`` for ``optimizer="hidlr"``. ``ema=0.9`` (GeN's smoothing): rate
    #: estimates from minibatch probes are noisy, and in short BNN trials the engine's default
    #: smoothing ended worse than 0.9.
    hidlr_options: dict[str, Any] = {"ema": 0.9}
    #: Default number of Monte Carlo passes at prediction (stochastic nets only).
    default_samples: int = 1
    #: Bound on ``samples * rows * width`` activations held at once by a stochastic prediction.
    predict_chunk: int = 2**24

    # ---- fitting ------------------------------------------------------------------------------
    def _make_optimizer(self, optimizer: OptimizerSpec, groups: list[dict[str, Any]],
                        lr: float) -> torch.optim.Optimizer:
        groups = [g for g in groups if len(g["params"]) > 0]
        if optimizer is None:
            optimizer = self.default_optimizer
        if optimizer == "hidlr":
            from hidlr import HiDLR  # the engine, imported when first needed

            return HiDLR(fused_adam(groups, lr), **self.hidlr_options)
        if optimizer == "adam":
            return fused_adam(groups, lr)
        if isinstance(optimizer, str):
            raise ValueError(f"unknown optimizer {optimizer!r}; use 'hidlr', 'adam' or a callable groups -> optimizer")
        if isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                "pass a callable that builds the optimizer from param groups (the net is created inside "
                "fit), e.g. optimizer=lambda groups: torch.optim.SGD(groups, lr=1e-2)"
            )
        opt = optimizer(groups)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ValueError(f"optimizer factory returned {type(opt).__name__}, not a torch.optim.Optimizer")
        return opt

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        optimizer: OptimizerSpec = None,
        lr: float | None = None,
        seed: int = 0,
        validation_data: tuple[Any, Any] | None = None,
        progress: bool = False,
        probe_batch_size: int | None = None,
        validation_samples: int | None = None,
    ) -> Estimator:
        """Train on ``X: (n, d)``, ``y: (n,)`` or ``(n, 1)``; returns ``self``.

        ``optimizer``: ``None`` (the class's ``default_optimizer``), ``"hidlr"`` (Hi-DLR around
        Adam over :meth:`param_groups`),
        ``"adam"``, or a callable ``groups -> torch.optim.Optimizer`` (a Hi-DLR instance it returns
        gets the probe closure). Everything runs on the device and dtype of ``X`` (NumPy input:
        the default dtype on the CPU). ``validation_data=(X_val, y_val)`` records the validation
        NLL (original units) per epoch in ``history_``, from ``validation_samples`` Monte Carlo
        passes for stochastic nets (default: ``default_samples``). Hi-DLR's probes use a separate random
        minibatch of ``probe_batch_size`` training rows (default ``max(batch_size, 256)``, at most
        ``n``) per refresh, with common random numbers across the probe calls of a step.
        """
        plan = self.prepare_fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                validation_data=validation_data, probe_batch_size=probe_batch_size,
                                validation_samples=validation_samples)
        with seeded(seed, plan.xs.device):
            net = self.build(plan.d, plan.ys, plan.n).to(device=plan.xs.device, dtype=plan.xs.dtype)
            self.module = net
            opt = self._make_optimizer(optimizer, self.param_groups(net), plan.lr)
            self.optimizer_ = opt

            def after_epoch(epoch: int, losses: Tensor) -> str:
                record = {"epoch": epoch + 1, "loss": float(losses)}
                if plan.val is not None:
                    record["val_nll"] = self._nll(*plan.val, samples=plan.val_samples)
                    net.train()
                self.history_.append(record)
                return f"loss {record['loss']:.4f}"

            train_epochs(net, opt, plan, [seed], stochastic=self.stochastic, after_epoch=after_epoch,
                         progress=progress)
        net.eval()
        return self

    def prepare_fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        seed: int = 0,
        validation_data: tuple[Any, Any] | None = None,
        probe_batch_size: int | None = None,
        validation_samples: int | None = None,
    ) -> FitPlan:
        """Validate the data and options of :meth:`fit`, store the z-scoring statistics on ``self``
        and return the standardized data and the resolved options (the first half of a fit)."""
        Xt, yt = validate_xy(X, y)
        assert yt is not None
        n, d = Xt.shape
        epochs = self.epochs if epochs is None else epochs
        batch_size = min(self.batch_size if batch_size is None else batch_size, n)
        lr = self.lr if lr is None else lr
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        probe_size = min(n, max(batch_size, 256)) if probe_batch_size is None else probe_batch_size
        if probe_size < 1:
            raise ValueError(f"probe_batch_size must be positive, got {probe_batch_size}")
        if lr <= 0 or not math.isfinite(lr):
            raise ValueError(f"lr must be a positive finite number, got {lr}")
        if validation_samples is not None and validation_samples < 1:
            raise ValueError(f"validation_samples must be positive, got {validation_samples}")
        batches = math.ceil(n / batch_size)
        if epochs is None:
            epochs = int(min(2000, max(20, math.ceil(self.target_steps / batches))))
        if epochs < 1:
            raise ValueError(f"epochs must be positive, got {epochs}")
        val = None
        if validation_data is not None:
            Xv, yv = validate_xy(*validation_data, like=Xt)
            if Xv.shape[1] != d:
                raise ValueError(f"validation X has {Xv.shape[1]} features, training X has {d}")
            val = (Xv, yv)
        self.x_mean_, self.x_scale_ = _standardize_stats(Xt)
        self.y_mean_, self.y_scale_ = _standardize_stats(yt)
        self.n_features_in_ = d
        self.seed_ = seed
        self.history_ = []
        xs = (Xt - self.x_mean_) / self.x_scale_
        ys = (yt - self.y_mean_) / self.y_scale_
        return FitPlan(xs, ys, epochs, batch_size, probe_size, lr, val, validation_samples)

    def _nll(self, X: Tensor, y: Tensor, samples: int | None = None) -> float:
        return float(-self.predict(X, samples=samples).log_prob(y).mean())

    # ---- prediction ---------------------------------------------------------------------------
    def _check_fitted(self) -> nn.Module:
        if self.module is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X, y) before predict")
        return self.module

    def predict(self, X: Any, *, samples: int | None = None, seed: int | None = None) -> GaussianMixture:
        """Predictive mixture over ``y`` for each row of ``X: (n, d)``, in the original units of y.

        ``samples``: Monte Carlo passes for stochastic nets (default ``default_samples``);
        ``seed``: their random numbers (default: the fit seed, so repeated calls agree).
        """
        net = self._check_fitted()
        ref = self.x_mean_
        Xt, _ = validate_xy(X, like=ref)
        if Xt.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Xt.shape[1]} features, but the model was fitted with {self.n_features_in_}")
        xs = (Xt - self.x_mean_) / self.x_scale_
        samples = self.default_samples if samples is None else samples
        if samples < 1:
            raise ValueError(f"samples must be positive, got {samples}")
        with torch.no_grad(), seeded(self.seed_ + 104729 if seed is None else seed, ref.device):
            if not self.stochastic:
                dist = net(xs)
            else:
                # rows in chunks: the Monte Carlo passes hold (samples, rows, width) activations
                rows = max(1, self.predict_chunk // (samples * max(self.hidden)))
                parts = [net.predictive(xs[i : i + rows], samples=samples) for i in range(0, xs.shape[0], rows)]
                dist = parts[0] if len(parts) == 1 else GaussianMixture(
                    torch.cat([p.logits for p in parts]), torch.cat([p.loc for p in parts]),
                    torch.cat([p.scale for p in parts]), members=parts[0].members, validate_args=False)
        return dist.to_units(self.y_mean_, self.y_scale_)


def spread_quantiles(y_std: Tensor, k: int) -> Tensor:
    """``k`` quantiles of the standardized targets at levels ``(j + 1/2) / k``: shape ``(k,)``.

    Used to initialise mixture means so the components start spread over the data.
    """
    levels = (torch.arange(k, dtype=y_std.dtype, device=y_std.device) + 0.5) / k
    return torch.quantile(y_std, levels)
