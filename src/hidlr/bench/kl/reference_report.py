"""Markdown, plot and verdicts for the gap experiment against the NUTS reference
(:mod:`hidlr.bench.kl.gap_reference`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hidlr.bench import harness
from hidlr.bench import reporting as rep

LABELS = {
    "nuts": "NUTS reference (HMC posterior of the BNN)",
    "bnn": "BNN (VI, mean-field, noise head)",
    "bnn_homoscedastic": "BNN (VI, mean-field, NUTS's model)",
    "laplace": "Last-layer Laplace",
    "deep_ensemble": "Deep ensemble (5)",
}


def grows(stat: dict[str, float] | None) -> str:
    """Verdict on an epistemic ratio gap / near (mean ± s.e.): clearly above 1, clearly below, or not."""
    if stat is None:
        return "no epistemic part"
    m, se = stat["mean"], stat["se"]
    if not se == se:  # a single seed: no standard error
        return "grows (one seed)" if m > 1 else "does not grow (one seed)"
    if m - 2 * se > 1:
        return "grows in the gap"
    if m + 2 * se < 1:
        return "shrinks in the gap"
    return "not resolved (1 within 2 s.e.)"


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """Sentences on which methods grow their epistemic variance in the gap, and whether the mean-field
    BNN's failure is the approximation's or the model's, derived from ``result["summary"]``."""
    s = result["summary"]
    ref = s["nuts"]["epi_ratio"]
    lines = [
        "Epistemic variance in the gap / near the data (mean ± s.e. over seeds "
        f"{result['seeds']}; seeds with ratio > 1): "
        + "; ".join(
            f"{LABELS.get(m, m)} {rep.fmt_mean_se(v['epi_ratio'], 2)} ({v['seeds_ratio_above_1']}): "
            f"{grows(v['epi_ratio'])}"
            for m, v in s.items()
        )
        + "."
    ]
    for mf in ("bnn_homoscedastic", "bnn"):
        if mf in s:
            break
    else:
        return lines
    g_ref, g_mf = grows(ref), grows(s[mf]["epi_ratio"])
    chain_ratios = [c for r in result["runs"] for c in r["nuts"]["chain_epi_ratios"]]
    lines.append(
        f"Each NUTS chain on its own (seeds × chains = {len(chain_ratios)}) gives a ratio between "
        f"{min(chain_ratios):.1f} and {max(chain_ratios):.1f}."
    )
    if g_ref == "grows in the gap" and g_mf != "grows in the gap" and min(chain_ratios) <= 1:
        lines.append(
            "The pooled reference grows its epistemic variance in the gap but some chain on its own does "
            "not: the reference is not settled enough to blame the mean-field approximation alone."
        )
    elif g_ref == "grows in the gap" and g_mf != "grows in the gap":
        lines.append(
            f"The NUTS posterior of the BNN grows its epistemic variance in the gap (pooled, and in every "
            f"chain on its own) while the mean-field approximation ({LABELS[mf]}) does not: the failure "
            "is the mean-field approximation's, not the Bayesian model's."
        )
    elif g_ref != "grows in the gap":
        lines.append(
            "The NUTS posterior itself does not clearly grow its epistemic variance in the gap: with this "
            "prior and architecture the failure is the model's, not only the approximation's."
        )
    else:
        lines.append(f"Both the NUTS posterior and {LABELS[mf]} grow their epistemic variance in the gap.")
    approx = [m for m in s if m != "nuts" and s[m].get("kl_gap")]
    if approx:
        lines.append(
            "Epistemic variance relative to the reference's (ratio of the seed means), in the gap / near the "
            "data: "
            + "; ".join(
                f"{LABELS.get(m, m)} {s[m]['epi_gap']['mean'] / s['nuts']['epi_gap']['mean']:.2g} / "
                f"{s[m]['epi_near']['mean'] / s['nuts']['epi_near']['mean']:.2g}"
                for m in approx
            )
            + "."
        )
        if all(s[m].get("train_rmse") for m in s):
            lines.append(
                "Root mean squared error of the predictive mean at the training points (the task's noise sd: "
                f"{result.get('task_noise_sd', float('nan')):.2g}): "
                + "; ".join(f"{LABELS.get(m, m)} {rep.fmt_mean_se(v['train_rmse'], 3)}" for m, v in s.items())
                + "."
            )
        order = sorted(approx, key=lambda m: s[m]["kl_gap"]["mean"])
        lines.append(
            "KL from the reference's predictive (Gaussian moments, nats, mean over the region; lower is "
            "closer), in the gap / near the data: "
            + "; ".join(
                f"{LABELS.get(m, m)} {rep.fmt_mean_se(s[m]['kl_gap'], 2)} / {rep.fmt_mean_se(s[m]['kl_near'], 2)}"
                for m in order
            )
            + "."
        )
    return lines


def _diagnostics_table(result: dict[str, Any]) -> str:
    rows = []
    for r in result["runs"]:
        d = r["nuts"]["diagnostics"]
        cr = r["nuts"]["chain_epi_ratios"]
        rows.append(
            [
                r["seed"],
                f"{d['near']['f_r_hat_max']:.3f}",
                f"{d['gap']['f_r_hat_max']:.3f}",
                f"{d['near']['f_ess_min']:.0f}",
                f"{d['gap']['f_ess_min']:.0f}",
                f"{d['all']['sigma_r_hat']:.3f} / {d['all']['sigma_ess']:.0f}",
                f"{d['all']['weights_r_hat_median']:.2f}",
                d["all"]["divergences"],
                f"{min(cr):.0f} – {max(cr):.0f}",
                rep.format_seconds(r["nuts"]["seconds"]),
            ]
        )
    return rep.markdown_table(
        [
            "seed",
            "max R-hat f near data",
            "max R-hat f in gap",
            "min ESS f near",
            "min ESS f gap",
            "noise sd R-hat / ESS",
            "median R-hat weights",
            "divergences",
            "per-chain epistemic ratio",
            "NUTS time",
        ],
        rows,
    )


def _worst(result: dict[str, Any], key: str, pick: Any, region: str = "gap") -> float:
    return float(pick(r["nuts"]["diagnostics"][region][key] for r in result["runs"]))


def _method_table(result: dict[str, Any]) -> str:
    rows = []
    for m, v in result["summary"].items():
        rows.append(
            [
                LABELS.get(m, m),
                rep.fmt_mean_se(v["epi_gap"], 4),
                rep.fmt_mean_se(v["epi_near"], 4),
                rep.fmt_mean_se(v["epi_ratio"], 2),
                v["seeds_ratio_above_1"],
                rep.fmt_mean_se(v["var_ratio"], 2),
                rep.fmt_mean_se(v.get("train_rmse"), 3),
                rep.fmt_mean_se(v["kl_gap"], 3) if m != "nuts" else "(reference)",
                rep.fmt_mean_se(v["kl_near"], 3) if m != "nuts" else "",
                rep.fmt_mean_se(v["w2_f_gap"], 3) if m != "nuts" else "",
                rep.fmt_mean_se(v["w2_f_near"], 3) if m != "nuts" else "",
            ]
        )
    return rep.markdown_table(
        [
            "method",
            "epistemic var. gap",
            "epistemic var. near",
            "ratio gap / near",
            "seeds ratio > 1",
            "total var. ratio",
            "RMSE at training points",
            "KL from NUTS, gap",
            "KL from NUTS, near",
            "W2 of f, gap",
            "W2 of f, near",
        ],
        rows,
    )


def markdown(result: dict[str, Any], image: str | None) -> str:
    """The report section (Markdown) for a :func:`~hidlr.bench.kl.gap_reference.run` result."""
    st, meta = result["settings"], result["meta"]
    lines = [
        "## Limited data: the gap experiment against a NUTS reference posterior",
        "",
        f"Reference: NUTS (pyro-ppl {meta.get('packages', {}).get('pyro-ppl', '?')}, float64) on the "
        f"posterior of a BNN with one hidden layer of {st['hidden']} {st['activation']} units, "
        f"N(0, {st['prior_sigma']}²) prior on every weight and bias, one noise scale sampled with the "
        f"weights (half-normal prior, scale {st['noise_prior']}), inputs and targets z-scored as the "
        f"estimators do; {st['chains']} chains per seed, each from a prior draw, {st['warmup']} warmup "
        f"and {st['samples']} kept iterations, maximum tree depth {st['max_tree_depth']}, "
        f"{'dense' if st.get('full_mass') else 'diagonal'} mass matrix. Its predictive is the equal mixture "
        "of all kept draws (epistemic variance: variance of the draws' function values).",
        "",
        "Approximations, fitted as in the gap experiment above (one hidden layer of 50 relu units, "
        f"{result['epochs']} epochs of Adam at lr 3e-3, minibatch 16): the mean-field BNN with its noise "
        "head (the KL study's BNN), the mean-field BNN with one noise scale (the reference's model, with "
        "the same prior; its noise is a point estimate), the last-layer Laplace (evidence-tuned prior "
        "precision) and the deep ensemble of five Gaussian nets. The laplace-torch package was not used: "
        "it requires torchvision, which this project does not install.",
        "",
        f"Seeds {result['seeds']} (training samples of {result['n_train']} points each), "
        f"command `{result.get('command') or '?'}`, "
        f"code at commit {meta.get('git_commit') or 'unknown'}, started {meta['started']}, one thread, "
        f"wall clock {rep.format_seconds(result['wall_s'])} on a machine shared with other work.",
        "",
        *[f"- {x}" for x in verdict_lines(result)],
        "",
        _method_table(result),
        "",
        "KL: mean over the region's grid points of KL(N(m_ref, v_ref) ‖ N(m, v)) between Gaussians with "
        "the predictives' means and total variances (user units). W2 of f: mean 2-Wasserstein distance "
        "between N(mean, epistemic variance) of the reference and of the approximation.",
        "",
        "NUTS diagnostics (pyro's split R-hat and effective sample size over chains; f = function values "
        "on the grid's points in the region; weights are not identifiable under unit permutations, so "
        "their R-hat is shown only for completeness):",
        "",
        _diagnostics_table(result),
        "",
        "Common guidance (Vehtari et al. 2021) asks for R-hat below 1.01 and an effective sample size of "
        f"a few hundred; worst values here: R-hat of f {_worst(result, 'f_r_hat_max', max):.3f} (gap) and of "
        f"the noise sd {_worst(result, 'sigma_r_hat', max, 'all'):.3f}, ESS of f "
        f"{_worst(result, 'f_ess_min', min):.0f} (gap). Chains that disagree on the gap's function values "
        "would have found different modes without mixing between them; the pooled reference then weighs "
        "those modes by chain, not by posterior mass. The per-chain column gives each chain's ratio "
        "gap / near on its own, which does not depend on that weighting.",
        "",
    ]
    if result.get("note"):
        lines += [f"Note: {result['note']}", ""]
    if image:
        lines += [f"![{image}]({image})", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> bool:
    """Mean ± 2 epistemic sd over x per method on the first seed, the NUTS band behind each."""
    runs = [r for r in result["runs"] if r.get("curves")]
    if not runs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    c = runs[0]["curves"]
    methods = ["nuts", *result["models"]]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), sharey=True)
    ref_x, ref_m = np.asarray(c["nuts"]["x"]), np.asarray(c["nuts"]["mean"])
    ref_s = np.asarray(c["nuts"]["epistemic_sd"])
    for ax, m in zip(np.atleast_1d(axes), methods):
        x, mu, sd = (np.asarray(c[m][k]) for k in ("x", "mean", "epistemic_sd"))
        if m != "nuts":
            ax.fill_between(ref_x, ref_m - 2 * ref_s, ref_m + 2 * ref_s, color="0.85", label="NUTS ± 2 sd")
        ax.fill_between(x, mu - 2 * sd, mu + 2 * sd, color="C0", alpha=0.35, label="± 2 epistemic sd")
        ax.plot(x, mu, color="C0", lw=1.2, label="mean")
        ax.scatter(c["train_x"], c["train_y"], s=8, color="k", zorder=3, label="training points")
        ax.set_title(LABELS.get(m, m), fontsize=8)
        ax.set_xlabel("x")
    np.atleast_1d(axes)[0].set_ylabel("y")
    np.atleast_1d(axes)[-1].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"gap task, seed {runs[0]['seed']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def load(out: Path) -> dict[str, Any] | None:
    """The stored comparison in ``out`` (``gap_reference.json``), or None."""
    path = out / "gap_reference.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_outputs(result: dict[str, Any], out: Path) -> None:
    """``gap_reference.json``, ``.md`` and ``.png`` into ``out``; then the KL study's report.md is
    rebuilt from its results.json (when present) so that its findings cite this comparison."""
    from hidlr.bench.kl.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    harness.write_json(out / "gap_reference.json", result)
    image = "gap_reference.png" if plot(result, out / "gap_reference.png") else None
    (out / "gap_reference.md").write_text(markdown(result, image))
    kl_results = out / "results.json"
    if kl_results.exists():
        write_report(json.loads(kl_results.read_text()), out)
