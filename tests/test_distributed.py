"""HiDLR under torch.distributed, with two gloo processes on the CPU: every rank probes its own batch,
yet rates and weights stay bitwise identical across ranks and equal a one-process run on the combined
batch; ranks that disagree on which groups have gradients, or on a weight matrix at zero, take the same
probe path and decisions; sharded parameters are refused."""

from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from hidlr import HiDLR
from hidlr.distributed import mean_across_ranks, same_on_every_rank

STEPS, HALF = 12, 16


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)).double()


def _optimizer(model: nn.Sequential) -> HiDLR:
    groups = [
        {"params": list(model[0].parameters()), "lr": 0.02},
        {"params": [model[2].weight], "lr": 0.02},
        {"params": [model[2].bias], "lr": 0.0},
    ]  # frozen: never probed, on any rank
    return HiDLR(torch.optim.Adam(groups), every=2)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, 2 * HALF, 6, generator=gen, dtype=torch.float64)
    return x, x.sum(-1, keepdim=True).sin() + 0.1 * torch.randn(STEPS, 2 * HALF, 1, generator=gen, dtype=torch.float64)


def _train(model: nn.Module, trained: nn.Module, rows: slice) -> HiDLR:
    """``STEPS`` steps on the rows ``rows`` of each batch; ``trained`` is the module that is run for
    the gradient (the DDP wrapper on a rank), the probe runs ``model`` itself."""
    opt = _optimizer(model)
    x, y = _data()
    for t in range(STEPS):
        xb, yb = x[t, rows], y[t, rows]
        opt.zero_grad()
        nn.functional.mse_loss(trained(xb), yb).backward()
        opt.step(probe=lambda xb=xb, yb=yb: nn.functional.mse_loss(model(xb), yb))
    return opt


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        model = _model()
        opt = _train(model, nn.parallel.DistributedDataParallel(model), slice(rank * HALF, (rank + 1) * HALF))
        result = {
            "lrs": opt.lrs,
            "refreshes": len(opt.history),
            "weights": [p.detach().clone() for p in model.parameters()],
        }

        # group 1 has gradients on rank 0 only (no DDP to synchronize them): both ranks must still make
        # the same probe calls (the group is probed on no rank), or the all-reduces would deadlock
        torch.manual_seed(2)
        a, b = nn.Linear(3, 1).double(), nn.Linear(3, 1).double()
        uneven = HiDLR(torch.optim.SGD([{"params": a.parameters()}, {"params": b.parameters()}], lr=0.1), every=1)
        xs = torch.randn(8, 3, dtype=torch.float64) + rank
        for _ in range(3):
            uneven.zero_grad()
            (a(xs).pow(2).mean() + (b(xs).pow(2).mean() if rank == 0 else 0.0)).backward()
            uneven.step(probe=lambda: a(xs).pow(2).mean() + b(xs).pow(2).mean())
        result["uneven_lrs"] = uneven.lrs

        # a weight matrix at zero on rank 0 only: the growth phase it would begin is decided for all ranks
        w = [nn.Parameter(torch.tensor([1.0, -0.5])), nn.Parameter(torch.full((2, 2), 0.0 if rank == 0 else 0.1))]
        concave = lambda: -(w[0] ** 2).sum() - ((w[1] + 0.5) ** 2).sum()
        grower = HiDLR(torch.optim.SGD([{"params": [p]} for p in w], lr=1e-3), max_groups=1, every=1)
        for _ in range(2):
            grower.zero_grad()
            concave().backward()
            grower.step(probe=concave)
        result["zero_factor_lrs"] = grower.lrs

        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        sharded = fully_shard(nn.Linear(4, 4), mesh=init_device_mesh("cpu", (world,)))
        try:
            HiDLR(torch.optim.Adam(sharded.parameters(), lr=1e-3))
            result["fsdp2"] = "accepted"
        except TypeError as err:
            result["fsdp2"] = str(err)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(2, str(tmp / "init"), str(tmp)), nprocs=2, join=True, start_method="spawn")
    return [torch.load(tmp / f"rank{r}.pt") for r in range(2)]


def test_rates_and_weights_are_bitwise_identical_across_ranks(ranks):
    r0, r1 = ranks
    assert r0["refreshes"] == r1["refreshes"] == STEPS // 2
    assert r0["lrs"] == r1["lrs"] and r0["lrs"][2] == 0.0
    assert r0["lrs"][:2] != [0.02, 0.02]  # the rates were re-chosen
    assert all(torch.equal(a, b) for a, b in zip(r0["weights"], r1["weights"]))


def test_ranks_equal_one_process_on_the_combined_batch(ranks):
    model = _model()
    opt = _train(model, model, slice(0, 2 * HALF))
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float64)
    torch.testing.assert_close(as_tensor(ranks[0]["lrs"]), as_tensor(opt.lrs), rtol=1e-9, atol=0)
    for a, b in zip(ranks[0]["weights"], model.parameters()):
        torch.testing.assert_close(a, b.detach(), rtol=1e-9, atol=1e-12)


def test_ranks_that_disagree_on_gradients_take_the_same_probe_path(ranks):
    assert ranks[0]["uneven_lrs"] == ranks[1]["uneven_lrs"]  # finished (no deadlock), same decisions


def test_a_zero_weight_matrix_on_one_rank_only_begins_no_growth_phase_on_any(ranks):
    assert ranks[0]["zero_factor_lrs"] == ranks[1]["zero_factor_lrs"] == [1e-3, 1e-3]


def test_fsdp2_sharded_parameters_are_refused_with_a_clear_error(ranks):
    assert "DTensor (FSDP2 fully_shard" in ranks[0]["fsdp2"] and "DistributedDataParallel" in ranks[0]["fsdp2"]


def test_without_a_process_group_nothing_is_reduced():
    v = torch.tensor(1.5, dtype=torch.float64)
    assert mean_across_ranks(v) is v and same_on_every_rank([True, False]) == [True, False]
