"""Speed of the uncertainty-aware models: BNN training throughput against bayesian-torch and Pyro,
and the time to score a million predictions with the mixture metrics.

Training: the same architecture for every library (inputs -> 50 ReLU units -> 1, mean-field
Gaussian posterior over every weight and bias with a N(0, 1) prior, Gaussian likelihood with a
learned homoscedastic noise), the same data, minibatches, epochs and Adam rate. Each library's own
way of computing the minibatch loss is used:

* ``hidlr``: :class:`~hidlr.uq.models.BNNNet` (local reparameterisation, KL in closed form / n);
* ``bayesian-torch`` (only where installed: its wheel requires torchvision, which has no CPU build
  on PyPI, so the project's lock leaves it out): two
  ``bayesian_torch.layers.LinearReparameterization`` layers (one weight sample per minibatch,
  closed-form KL / n);
* ``pyro``: ``PyroModule`` with ``PyroSample`` priors, ``AutoNormal`` guide, ``SVI`` with
  ``Trace_ELBO`` and a subsampled data plate (the likelihood scaled by ``n / batch``);
* also ``hidlr BNN.fit (adam)`` and ``hidlr BNN.fit (hidlr)``: the estimator's own loop (input
  checks, z-scoring, seeding; the second adds Hi-DLR's probes) on the same data and schedule.

Methods run round-robin within each repeat (so load on a shared machine hits all of them alike);
samples/s = training points processed per second; medians over repeats; ratios from the medians
of the same run. ``run(out_dir)`` writes ``results.json`` and ``report.md``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hidlr.bench import harness

SEED = 0


def _machine() -> dict[str, Any]:
    m = harness.run_metadata(packages=("pyro-ppl", "bayesian-torch"))
    # the names this benchmark's report reads
    return {**m, "cores": m["cpu_count"], "load_average": m["load_average_at_start"]}


def _versions(m: dict[str, Any]) -> dict[str, str]:
    out = {"python": m["python"], "torch": m["torch"], "numpy": m["numpy"], "hidlr": m["hidlr"] or "not installed"}
    return {**out, **{p: v or "not installed" for p, v in m["packages"].items()}}


def make_data(n: int, d: int, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """A standardized nonlinear regression set: ``X: (n, d)``, ``y: (n,)``, float32."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g) / math.sqrt(d)
    y = torch.sin(X @ w) + 0.5 * (X[:, 0] * X[:, 1 % d]) + 0.1 * torch.randn(n, generator=g)
    return X, (y - y.mean()) / y.std()


def _batches(n: int, batch_size: int, epochs: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        out += [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    return out


# ------------------------------------------------------------------------------- training loops
def train_hidlr(X: torch.Tensor, y: torch.Tensor, batches: list[torch.Tensor], lr: float) -> None:
    from hidlr.uq.models import BNNNet

    net = BNNNet(X.shape[1], dataset_size=X.shape[0], hidden=(50,), prior_sigma=1.0)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for idx in batches:
        opt.zero_grad(set_to_none=True)
        net.loss(X[idx], y[idx]).backward()
        opt.step()


def train_bayesian_torch(X: torch.Tensor, y: torch.Tensor, batches: list[torch.Tensor], lr: float) -> None:
    from bayesian_torch.layers import LinearReparameterization

    n, d = X.shape
    l1 = LinearReparameterization(d, 50, prior_mean=0.0, prior_variance=1.0)
    l2 = LinearReparameterization(50, 1, prior_mean=0.0, prior_variance=1.0)
    noise_rho = torch.nn.Parameter(torch.tensor(0.0))
    params = [*l1.parameters(), *l2.parameters(), noise_rho]
    opt = torch.optim.Adam(params, lr=lr)
    for idx in batches:
        opt.zero_grad(set_to_none=True)
        h, kl1 = l1(X[idx])
        out, kl2 = l2(torch.relu(h))
        scale = torch.nn.functional.softplus(noise_rho) + 1e-3
        nll = -torch.distributions.Normal(out[:, 0], scale).log_prob(y[idx]).mean()
        (nll + (kl1 + kl2) / n).backward()
        opt.step()


def train_pyro(X: torch.Tensor, y: torch.Tensor, batches: list[torch.Tensor], lr: float) -> None:
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.nn import PyroModule, PyroParam, PyroSample

    n, d = X.shape
    pyro.clear_param_store()

    class Net(PyroModule):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = PyroModule[torch.nn.Linear](d, 50)
            self.l1.weight = PyroSample(dist.Normal(0.0, 1.0).expand([50, d]).to_event(2))
            self.l1.bias = PyroSample(dist.Normal(0.0, 1.0).expand([50]).to_event(1))
            self.l2 = PyroModule[torch.nn.Linear](50, 1)
            self.l2.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 50]).to_event(2))
            self.l2.bias = PyroSample(dist.Normal(0.0, 1.0).expand([1]).to_event(1))
            self.sigma = PyroParam(torch.tensor(0.5), constraint=dist.constraints.positive)

        def forward(self, x: torch.Tensor, yb: torch.Tensor, idx: torch.Tensor) -> None:
            mean = self.l2(torch.relu(self.l1(x)))[:, 0]
            with pyro.plate("data", size=n, subsample=idx):
                pyro.sample("obs", dist.Normal(mean, self.sigma), obs=yb)

    model = Net()
    guide = AutoNormal(model, init_scale=0.05)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), Trace_ELBO())
    for idx in batches:
        svi.step(X[idx], y[idx], idx)


def _fit_estimator(optimizer: str) -> Callable[..., None]:
    def train(
        X: torch.Tensor, y: torch.Tensor, batches: list[torch.Tensor], lr: float, *, epochs: int, batch_size: int
    ) -> None:
        from hidlr.uq.models import BNN

        BNN(hidden=(50,)).fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=SEED)

    return train


OURS = "hidlr BNNNet (local reparam.)"
BASELINES = {"bayesian-torch": "bayesian-torch LinearReparameterization", "pyro": "pyro AutoNormal SVI"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


METHODS: dict[str, Callable[..., None]] = {
    OURS: train_hidlr,
    **({BASELINES["bayesian-torch"]: train_bayesian_torch} if _installed("bayesian_torch") else {}),
    BASELINES["pyro"]: train_pyro,
    "hidlr BNN.fit (adam)": _fit_estimator("adam"),
    "hidlr BNN.fit (hidlr)": _fit_estimator("hidlr"),
}


def time_training(
    n: int, d: int, epochs: int, batch_size: int, repeats: int, lr: float = 1e-3, progress: Any = None
) -> dict[str, Any]:
    """Median samples/s per method over ``repeats`` round-robin rounds (after one warm-up batch)."""
    X, y = make_data(n, d)
    batches = _batches(n, batch_size, epochs, SEED)
    warm = batches[:2]
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    for rep in range(repeats):
        for name, fn in METHODS.items():
            kwargs = {"epochs": epochs, "batch_size": batch_size} if name.startswith("hidlr BNN.fit") else {}
            torch.manual_seed(SEED + rep)
            if rep == 0:  # warm-up: imports, allocator, first-call overheads
                (fn(X, y, warm, lr, epochs=1, batch_size=batch_size) if kwargs else fn(X, y, warm, lr))
            t0 = time.perf_counter()
            fn(X, y, batches, lr, **kwargs)
            times[name].append(time.perf_counter() - t0)
            if progress is not None:
                progress()
    processed = n * epochs
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"seconds": ts, "median_seconds": med, "samples_per_s": processed / med}
    return out


# ---------------------------------------------------------------------------------- scoring
def time_scoring(n: int, k: int, repeats: int) -> dict[str, Any]:
    """Seconds to score ``n`` points against a ``k``-component mixture per metric (median)."""
    from hidlr.uq import metrics
    from hidlr.uq.distributions import GaussianMixture

    g = torch.Generator().manual_seed(SEED)
    dist = GaussianMixture(
        torch.randn(n, k, generator=g),
        2 * torch.randn(n, k, generator=g),
        0.2 + torch.rand(n, k, generator=g),
        validate_args=False,
    )
    y = dist.sample((), generator=g)
    jobs: dict[str, Callable[[], float]] = {
        "nll": lambda: metrics.nll(dist, y),
        "crps": lambda: metrics.crps(dist, y),
        "coverage(0.9)": lambda: metrics.coverage(dist, y, 0.9),
        "interval_width(0.9) (quantile root-finding)": lambda: metrics.interval_width(dist, 0.9),
    }
    out: dict[str, Any] = {}
    for name, job in jobs.items():
        ts, value = [], float("nan")
        for _ in range(repeats):
            t0 = time.perf_counter()
            value = job()
            ts.append(time.perf_counter() - t0)
        out[name] = {"seconds": ts, "median_seconds": statistics.median(ts), "value": value}
    total = sum(out[m]["median_seconds"] for m in ("nll", "crps", "coverage(0.9)"))
    out["nll + crps + coverage"] = {"median_seconds": total}
    return out


# ----------------------------------------------------------------------------------- report
def run(
    out_dir: str | Path, repeats: int = 5, quick: bool = False, threads: int | None = 1, progress: bool = False
) -> dict[str, Any]:
    """Run both measurements and write ``results.json`` and ``report.md`` into ``out_dir``.

    ``quick``: a small configuration for a smoke run (seconds). ``threads``: torch intra-op threads
    during the run (``None`` keeps the current setting); all libraries share it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    cfg = (
        dict(n=512, d=8, epochs=2, batch_size=64, repeats=max(1, min(repeats, 2)), score_n=100_000)
        if quick
        else dict(n=2048, d=8, epochs=10, batch_size=64, repeats=repeats, score_n=1_000_000)
    )
    try:
        machine = _machine()
        with harness.progress("training runs", cfg["repeats"] * len(METHODS), enabled=progress) as tick:
            train = time_training(cfg["n"], cfg["d"], cfg["epochs"], cfg["batch_size"], cfg["repeats"], progress=tick)
        score = time_scoring(cfg["score_n"], 5, max(1, min(cfg["repeats"], 3)))
        machine["load_average_end"] = harness.load_average()
    finally:
        torch.set_num_threads(before)
    present = {lib: name for lib, name in BASELINES.items() if name in train}
    ours = train[OURS]["samples_per_s"]
    ratios = {f"hidlr / {lib}": ours / train[name]["samples_per_s"] for lib, name in present.items()}
    # paired: the ratio within each round-robin repeat (same load), then its median
    mine = train[OURS]["seconds"]
    paired = {f"hidlr / {lib}": [b / a for a, b in zip(mine, train[name]["seconds"])] for lib, name in present.items()}
    results = {
        "config": {
            **cfg,
            "seed": SEED,
            "lr": 1e-3,
            "hidden": 50,
            "prior_sigma": 1.0,
            "threads": threads if threads is not None else before,
            "quick": quick,
        },
        "machine": machine,
        "versions": _versions(machine),
        "training": train,
        "ratios": ratios,
        "paired_ratios": {k: {"per_repeat": v, "median": statistics.median(v)} for k, v in paired.items()},
        "scoring": score,
    }
    harness.write_json(out / "results.json", results, indent=2)
    (out / "report.md").write_text(_report(results))
    return results


def _report(r: dict[str, Any]) -> str:
    c, m, v = r["config"], r["machine"], r["versions"]
    lines = [
        "# BNN training throughput and mixture-scoring speed",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores, {m['platform']}); torch threads: {c['threads']}; "
        f"load average at start {m['load_average']}, at end {m.get('load_average_end')} (a shared "
        "machine inflates every time alike; compare the ratios, measured side by side).",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Seed {c['seed']}; {'QUICK smoke configuration; ' if c['quick'] else ''}"
        f"data n={c['n']}, d={c['d']}; {c['epochs']} epochs of batches of {c['batch_size']}; "
        f"Adam lr {c['lr']}; medians over {c['repeats']} round-robin repeats.",
        "",
        "## Training throughput (same architecture: d -> 50 ReLU -> 1, N(0,1) prior, Gaussian likelihood)",
        "",
        "| method | median s | samples/s | all runs (s) |",
        "|---|---:|---:|---|",
    ]
    for name, t in r["training"].items():
        runs = ", ".join(f"{s:.2f}" for s in t["seconds"])
        lines.append(f"| {name} | {t['median_seconds']:.3f} | {t['samples_per_s']:,.0f} | {runs} |")
    lines += ["", "Ratios of samples/s (from the medians above):", ""]
    lines += [
        f"- {k}: **{val:.2f}x** (per repeat: "
        + ", ".join(f"{x:.2f}" for x in r["paired_ratios"][k]["per_repeat"])
        + f"; median {r['paired_ratios'][k]['median']:.2f}x)"
        for k, val in r["ratios"].items()
    ]
    lines += ["", f"## Scoring {c['score_n']:,} points, K = 5 components", "", "| metric | median s |", "|---|---:|"]
    for name, t in r["scoring"].items():
        lines.append(f"| {name} | {t['median_seconds']:.3f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import sys

    res = run(
        sys.argv[1] if len(sys.argv) > 1 else "bench-results/uq_speed", quick="--quick" in sys.argv, progress=True
    )
    print(json.dumps(res["ratios"], indent=2))
