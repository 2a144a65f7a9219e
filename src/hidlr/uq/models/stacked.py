"""Several nets of one architecture trained as one module (vectorized deep ensembles).

The members' parameters are stacked along a leading axis of size ``M`` and their losses are
evaluated in one batched call (``torch.func.vmap`` over ``functional_call``), so an ensemble of
small nets costs about one net's Python overhead per step instead of ``M``. Adam and every other
per-coordinate optimizer then train each member exactly as it would be trained alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap


def _key(name: str) -> str:
    return name.replace(".", "__")


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
    """

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        nets = list(nets)
        if not nets:
            raise ValueError("StackedNets needs at least one net")
        names = [n for n, _ in nets[0].named_parameters()]
        for i, net in enumerate(nets[1:], start=1):
            if [n for n, _ in net.named_parameters()] != names:
                raise ValueError(f"net {i} does not have the same parameters as net 0; members must share one architecture")
        params, buffers = stack_module_state(nets)
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
            raise ValueError(f"expected a leading member axis of {self.members}, got x {tuple(x.shape)}, y {tuple(y.shape)}")
        params = {n: self.stacked(n) for n in self.param_names}
        buffers = {n: getattr(self, _key(n)) for n in self.buffer_names}
        if self.last_losses is not None:
            losses = self._batched(params, buffers, x, y)
        else:  # the first call tells whether the loss can be vectorized at all
            try:
                losses = self._batched(params, buffers, x, y)
            except RuntimeError as err:
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
                raise ValueError(f"group {g.get('name', '?')!r} holds a tensor that is not a parameter of the member net") from None
            out.append({**g, "params": params})
        return out

    @torch.no_grad()
    def unstack(self, nets: Sequence[nn.Module]) -> None:
        """Copy member ``i``'s current values into ``nets[i]`` (parameters and buffers)."""
        if len(nets) != self.members:
            raise ValueError(f"expected {self.members} nets, got {len(nets)}")
        for i, net in enumerate(nets):
            for name in self.param_names:
                net.get_parameter(name).copy_(self.stacked(name)[i])
            for name in self.buffer_names:
                net.get_buffer(name).copy_(getattr(self, _key(name))[i])
