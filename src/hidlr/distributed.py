"""What keeps HiDLR's decisions identical on every rank of a ``torch.distributed`` job.

Under data parallelism (DDP) every rank holds the same weights and, after the gradient all-reduce,
the same gradients, but each rank probes its own batch. HiDLR therefore averages every probe loss
over the ranks (:func:`mean_across_ranks`: the probe loss of the combined batch when the per-rank
losses are means over equal-sized batches) and agrees on which groups are probed
(:func:`same_on_every_rank`), so every rank fits the same numbers, takes the same probe path (the
same number of collective calls: no deadlock) and chooses bitwise the same rates. Without an
initialized process group (or with one rank) these functions do nothing.

Sharded parameters (FSDP2 ``fully_shard`` DTensors, FSDP1 flat parameters) are refused by
:func:`refuse_sharded_parameters`: each rank would measure its own shard's update direction.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist


def _world() -> int:
    """The number of ranks of the default process group (1 when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def _collective_device(value: torch.Tensor) -> torch.device:
    """Where a collective on ``value`` can run: NCCL-only groups need a CUDA tensor."""
    if value.device.type == "cpu" and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return value.device


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a 0-dim float64 ``value`` over all ranks (``value`` itself without a process group).
    Every rank must call it the same number of times."""
    world = _world()
    if world == 1:
        return value
    buf = value.detach().to(_collective_device(value), torch.float64).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return (buf / world).to(value.device)


def same_on_every_rank(active: list[bool]) -> list[bool]:
    """Per-group flags made identical on every rank: a group is probed only when it is active on
    every rank (a group without gradients on some rank keeps its rate this refresh), so every rank
    makes the same number of probe calls."""
    if _world() == 1 or not active:
        return active
    flags = torch.tensor([int(a) for a in active], dtype=torch.int32)
    flags = flags.to(_collective_device(flags))
    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    return [bool(f) for f in flags.tolist()]


def refuse_sharded_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Raise TypeError when ``optimizer`` holds sharded parameters (FSDP2 DTensors, FSDP1 flat
    parameters): HiDLR reads each group's update direction from whole tensors."""
    kinds = []
    if "torch.distributed.tensor" in sys.modules:  # no DTensor can exist before this module is imported
        from torch.distributed.tensor import DTensor

        kinds.append((DTensor, "a DTensor (FSDP2 fully_shard or tensor parallelism)"))
    if "torch.distributed.fsdp" in sys.modules:
        from torch.distributed.fsdp._flat_param import FlatParameter

        kinds.append((FlatParameter, "an FSDP flat parameter"))
    for k, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            for cls, what in kinds:
                if isinstance(p, cls):
                    raise TypeError(
                        f"optimizer: param group {k} holds {what}; HiDLR does not support sharded parameters "
                        "(each rank would measure only its own shard's update). Use DistributedDataParallel, "
                        "which keeps whole parameters on every rank"
                    )
