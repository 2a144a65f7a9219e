"""Uncertainty-aware regression: an MDN and a BNN on a bimodal task with a known true density.

Default fits: each model carves a validation part from the training rows, stops when its
likelihood stops improving and keeps the best epoch; ``epochs`` only caps the training.
"""

import torch

from hidlr.uq import BNN, MDN, metrics
from hidlr.uq.data import get_task


def main(n: int = 2000, epochs: int | None = None) -> dict[str, dict[str, float]]:
    torch.set_num_threads(1)
    task = get_task("bimodal")
    X, y = task.sample(n, seed=0)
    X_test, y_test = task.sample(2000, seed=1)
    scores = {}
    for name, model in {"MDN": MDN(components=3, epochs=epochs), "BNN": BNN(epochs=epochs)}.items():
        model.fit(X, y)
        dist = model.predict_proba(X_test)  # the predictive GaussianMixture per row
        lo, hi = dist.interval(0.9)
        scores[name] = {
            "nll": metrics.nll(dist, y_test),
            "crps": metrics.crps(dist, y_test),
            "coverage90": metrics.coverage(dist, y_test, 0.9),
            "kl_to_truth": metrics.kl_to_truth(dist, y_test, task.log_prob(X_test, y_test)),
            "mean_width90": float((hi - lo).mean()),
            "best_epoch": model.best_epoch_,
        }
        print(name, {k: round(v, 3) for k, v in scores[name].items()})
        print(model.predict_interval(X_test[:3], coverage=[0.5, 0.9]))  # a pandas frame, as in skpro
    return scores


if __name__ == "__main__":
    main()
