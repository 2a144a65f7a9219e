"""Several nets of one architecture trained as one module (vectorized deep ensembles).

The members' parameters are stacked along a leading axis of size ``M`` and their losses are
evaluated in one batched call (``torch.func.vmap`` over ``functional_call``), so an ensemble of
small nets costs about one net's Python overhead per step instead of ``M``. Adam and every other
per-coordinate optimizer then train each member exactly as it would be trained alone.

Members may also differ in learning rate (:func:`fit_side_by_side` with ``lr_scales``): member
``i`` stores its weights divided by ``c_i`` and uses ``c_i`` times the stored values, so a
scale-invariant optimizer such as Adam moves its weights ``c_i`` times as far per step. A grid of
learning rates then costs about one training run.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models.estimator import PREDICT_SEED_OFFSET, Estimator, OptimizerSpec
from hidlr.uq.models.scaling import validation_scores
from hidlr.uq.models.spread import CrossFittedRows, dilate
from hidlr.uq.models.training import EarlyStopping, seeded, snapshot_nets, train_epochs


def _key(name: str) -> str:
    return name.replace(".", "__")


def _along(scales: Tensor, like: Tensor) -> Tensor:
    """``scales: (M,)`` shaped to broadcast over ``like: (M, ...)``."""
    return scales.reshape((-1,) + (1,) * (like.dim() - 1))


class _LossCall(nn.Module):
    """``forward(x, y) = net.loss(x, y)``: lets ``functional_call`` reach a net's ``loss`` method."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net.loss(x, y)


class StackedNets(nn.Module):
    """``M`` nets of identical structure as one module with parameters of shape ``(M, ...)``.

    ``loss(x: (M, b, d), y: (M, b))`` returns the sum of the member losses (a scalar; the gradient
    for member ``i``'s parameters is exactly the gradient of its own loss) and keeps the per-member
    values in ``last_losses`` ``(M,)``. Random draws inside the losses differ between members.
    :meth:`unstack` copies the trained values back into the original nets.

    ``lr_scales``: optional ``(M,)`` positive factors ``c_i``; the stored parameters are
    ``w_i / c_i`` and the losses see ``c_i`` times them. Under Adam (no weight decay) member ``i``
    then trains exactly as with learning rate ``c_i * lr`` (its ``eps`` becomes ``eps / c_i``).
    """

    def __init__(self, nets: Sequence[nn.Module], lr_scales: Sequence[float] | None = None) -> None:
        super().__init__()
        nets = list(nets)
        if not nets:
            raise ValueError("StackedNets needs at least one net")
        names = [n for n, _ in nets[0].named_parameters()]
        for i, net in enumerate(nets[1:], start=1):
            if [n for n, _ in net.named_parameters()] != names:
                raise ValueError(
                    f"net {i} does not have the same parameters as net 0; members must share one architecture"
                )
        params, buffers = stack_module_state(nets)
        scales = torch.ones(len(nets)) if lr_scales is None else torch.as_tensor(lr_scales, dtype=torch.float64)
        if scales.shape != (len(nets),) or not bool((scales > 0).all() and torch.isfinite(scales).all()):
            raise ValueError(f"lr_scales must hold {len(nets)} positive finite numbers, got {lr_scales!r}")
        if not params:
            raise ValueError("the nets have no parameters to train")
        first = next(iter(params.values()))
        # a buffer, so that .to(device) moves it with the parameters
        self.register_buffer("lr_scales", None if lr_scales is None else scales.to(first))
        if self.lr_scales is not None:
            params = {k: v / _along(scales.to(v), v) for k, v in params.items()}
        self.param_names = list(params)
        self.buffer_names = list(buffers)
        for name, value in params.items():
            self.register_parameter(_key(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_key(name), value.detach().clone())
        self.members = len(nets)
        self.__dict__["_template"] = _LossCall(copy.deepcopy(nets[0]))  # not a submodule: no parameters
        self.last_losses: Tensor | None = None
        self._batched = vmap(self._member_loss, randomness="different")

    def stacked(self, name: str) -> Tensor:
        """The ``(M, ...)`` parameter holding every member's copy of parameter ``name``."""
        return getattr(self, _key(name))

    def _member_loss(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        state = {"net." + k: v for k, v in params.items()}
        state.update({"net." + k: v for k, v in buffers.items()})
        return functional_call(self._template, state, (x, y))

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Sum over members of ``member_i.loss(x[i], y[i])``; ``x: (M, b, d)``, ``y: (M, b)``."""
        if x.shape[0] != self.members or y.shape[0] != self.members:
            raise ValueError(
                f"expected a leading member axis of {self.members}, got x {tuple(x.shape)}, y {tuple(y.shape)}"
            )
        params = {n: self.stacked(n) for n in self.param_names}
        if self.lr_scales is not None:
            params = {n: p * _along(self.lr_scales, p) for n, p in params.items()}
        buffers = {n: getattr(self, _key(n)) for n in self.buffer_names}
        try:
            losses = self._batched(params, buffers, x, y)
        except RuntimeError as err:
            if self.last_losses is not None:  # it vectorized before: not a vmap limitation
                raise
            raise RuntimeError(
                f"the member nets' loss could not be vectorized with torch.func.vmap ({err}); "
                "train the members one after another instead (DeepEnsemble(..., vectorize=False))"
            ) from err
        self.last_losses = losses.detach()
        return losses.sum()

    def param_groups(self, groups: Sequence[dict[str, Any]], net: nn.Module) -> list[dict[str, Any]]:
        """Map param groups over ``net`` (one member, as built) to groups over the stacked tensors.

        Every other key of a group (its name, options) is kept.
        """
        name_of = {id(p): n for n, p in net.named_parameters()}
        out = []
        for g in groups:
            try:
                params = [self.stacked(name_of[id(p)]) for p in g["params"]]
            except KeyError:
                raise ValueError(
                    f"group {g.get('name', '?')!r} holds a tensor that is not a parameter of the member net"
                ) from None
            out.append({**g, "params": params})
        return out

    @torch.no_grad()
    def unstack(self, nets: Sequence[nn.Module]) -> None:
        """Copy member ``i``'s current values into ``nets[i]`` (parameters and buffers)."""
        if len(nets) != self.members:
            raise ValueError(f"expected {self.members} nets, got {len(nets)}")
        for i, net in enumerate(nets):
            scale = 1.0 if self.lr_scales is None else float(self.lr_scales[i])
            for name in self.param_names:
                net.get_parameter(name).copy_(self.stacked(name)[i] * scale)
            for name in self.buffer_names:
                net.get_buffer(name).copy_(getattr(self, _key(name))[i])


def fit_side_by_side(
    estimators: Sequence[Estimator],
    X: Any,
    y: Any,
    *,
    seeds: Sequence[int],
    lr_scales: Sequence[float] | None = None,
    optimizer: OptimizerSpec = None,
    progress: bool = False,
    cross_fitted: list[tuple[GaussianMixture, GaussianMixture, Tensor]] | None = None,
    **fit_options: Any,
) -> list[Estimator]:
    """Fit fresh estimators of one class side by side as a :class:`StackedNets`; returns them.

    Estimator ``i`` is initialised and shuffled with ``seeds[i]`` exactly as ``fit(seed=seeds[i])``
    would, and trains at ``lr_scales[i]`` times the learning rate (default: all 1). The data, the
    carved validation part and the options are the first estimator's (``fit_options``: ``epochs``,
    ``batch_size``, ``lr``, ``validation_data``, ``validation_samples``, ``probe_batch_size`` as in
    :meth:`Estimator.fit`). Each member keeps its own ``history_``, stops early on its own (its
    weights are those of its best epoch; training ends when every member has stopped) and, with
    ``refit``, is refitted for its own best number of epochs. One optimizer (``optimizer_`` of each)
    trains them all. With ``variance_scaling``, each member's spread factor is fitted on the shared
    validation part (before any refit), for deterministic nets corrected to each row scored at an
    epoch chosen without it (:class:`~hidlr.uq.models.spread.CrossFittedRows`); ``cross_fitted``, a
    list, then receives each
    member's rows of :meth:`~hidlr.uq.models.spread.CrossFittedRows.rows` (its predictives, after
    its own factor, and the targets), with which :class:`~hidlr.uq.models.ensemble.DeepEnsemble`
    corrects its whole-mixture factor. Nothing is stored on
    the estimators unless every step succeeds.
    """
    estimators = list(estimators)
    kinds = {type(est) for est in estimators}
    if len(kinds) > 1:
        names = sorted(k.__name__ for k in kinds)
        raise ValueError(f"side-by-side training needs estimators of one class, got {names}")
    if len(seeds) != len(estimators):
        raise ValueError(f"got {len(seeds)} seeds for {len(estimators)} estimators")
    lead = estimators[0]
    plan = lead.prepare_fit(X, y, seed=seeds[0], **fit_options)
    modules, opt, histories, best, crosses = _train_stacked(lead, plan, seeds, lr_scales, optimizer, progress, None)
    spreads = [lead.fit_spread(module, plan, s, cross) for module, s, cross in zip(modules, seeds, crosses)]
    kept = [None if cross is None else cross.rows() for cross in crosses]
    if cross_fitted is not None and all(k is not None for k in kept):
        cross_fitted[:] = [(dilate(out, s), dilate(chosen, s), y) for (out, chosen, y), s in zip(kept, spreads)]
    if plan.refit is not None:
        options = {k: v for k, v in fit_options.items() if k not in ("validation_data", "validation_samples", "epochs")}
        full = lead.prepare_fit(X, y, seed=seeds[0], epochs=max(max(best), 1), carve=False, **options)
        keep_at = [max(b, 1) for b in best]
        modules, opt, _, _, _ = _train_stacked(lead, full, seeds, lr_scales, optimizer, progress, keep_at)
        for module, spread in zip(modules, spreads):
            module.set_spread(spread)
    for est, module, history, b, s in zip(estimators, modules, histories, best, seeds):
        plan.seed = s
        est._finish(module, opt, history, plan, b, X, y)
    return estimators


def _train_stacked(
    lead: Estimator,
    plan: Any,
    seeds: Sequence[int],
    lr_scales: Sequence[float] | None,
    optimizer: OptimizerSpec,
    progress: bool,
    keep_at: list[int] | None,
) -> tuple[list[Any], Any, list[list[dict[str, float]]], list[int], list[CrossFittedRows | None]]:
    """One stacked training run. ``keep_at``: member ``i`` keeps its weights after epoch ``keep_at[i]``.
    Returns the modules, the optimizer, the histories, the best epochs and each member's validation
    rows cross-fitted for its spread (None without early stopping, or for a stochastic net)."""
    modules = [lead.new_module(plan, s) for s in seeds]
    nets = [m.net for m in modules]
    stack = StackedNets(nets, lr_scales)
    histories: list[list[dict[str, float]]] = [[] for _ in seeds]
    keep, cross_fit = lead._early_stopping_keeps(plan, one_net=keep_at is not None)
    stoppers = [EarlyStopping(plan.patience, keep) for _ in seeds] if plan.patience is not None else None
    crosses = [CrossFittedRows(plan.val[1]) for _ in seeds] if cross_fit else None
    kept = [EarlyStopping(1) for _ in seeds] if keep_at is not None else None
    with seeded(seeds[0], plan.xs.device):
        opt = lead._make_optimizer(optimizer, stack.param_groups(lead.param_groups(nets[0]), nets[0]), plan.lr)

        def after_epoch(epoch: int, losses: Tensor) -> str:
            if plan.val is not None or keep_at is not None:
                stack.unstack(nets)
            for i, (module, s) in enumerate(zip(modules, seeds)):
                record = {"epoch": epoch + 1, "loss": float(losses[i])}
                if plan.val is not None:
                    record["val_nll"], dist, log_prob = validation_scores(
                        module, *plan.val, plan.val_samples, s + PREDICT_SEED_OFFSET
                    )
                    nets[i].train()
                    if stoppers is not None and not stoppers[i].stop:
                        stoppers[i].update(epoch + 1, record["val_nll"], nets[i])
                        if crosses is not None:
                            crosses[i].update(dist, log_prob)
                if kept is not None and keep_at[i] == epoch + 1:
                    kept[i].update(epoch + 1, 0.0, nets[i])
                histories[i].append(record)
            return f"mean member loss {float(losses.mean()):.4f}"

        def stop() -> bool:
            if kept is not None:
                return all(k.state is not None for k in kept)
            return stoppers is not None and all(st.stop for st in stoppers)

        train_epochs(
            stack,
            opt,
            plan,
            seeds,
            stochastic=lead.stochastic,
            after_epoch=after_epoch,
            stacked=True,
            progress=progress,
            stop=stop,
        )
    stack.unstack(nets)
    for i, net in enumerate(nets):
        for tracker in (stoppers, kept):
            if tracker is not None:
                tracker[i].restore(net)
        net.eval()
        if stoppers is not None:
            modules[i].set_snapshots(snapshot_nets(net, stoppers[i].states[1:]))
    best = [st.best_epoch for st in stoppers] if stoppers is not None else [plan.epochs] * len(seeds)
    for m in modules:
        m.eval()
    return modules, opt, histories, best, crosses or [None] * len(seeds)
