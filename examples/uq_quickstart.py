"""Uncertainty-aware regression: an MDN and a BNN on a bimodal task with a known true density."""

import torch

from hidlr.uq import BNN, MDN, metrics
from hidlr.uq.data import get_task


def main(n: int = 2000, epochs: int = 60) -> dict[str, dict[str, float]]:
    torch.set_num_threads(1)
    task = get_task("bimodal")
    X, y = task.sample(n, seed=0)
    X_test, y_test = task.sample(2000, seed=1)
    scores = {}
    for name, model in {"MDN": MDN(components=3), "BNN": BNN()}.items():
        dist = model.fit(X, y, epochs=epochs, seed=0).predict(X_test)
        lo, hi = dist.interval(0.9)
        scores[name] = {
            "nll": metrics.nll(dist, y_test),
            "crps": metrics.crps(dist, y_test),
            "coverage90": metrics.coverage(dist, y_test, 0.9),
            "kl_to_truth": metrics.kl_to_truth(dist, y_test, task.log_prob(X_test, y_test)),
            "mean_width90": float((hi - lo).mean()),
        }
        print(name, {k: round(v, 3) for k, v in scores[name].items()})
    return scores


if __name__ == "__main__":
    main()
