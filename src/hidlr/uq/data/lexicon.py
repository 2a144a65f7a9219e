"""The VADER sentiment lexicon as a regression task with measured conditional distributions.

``vaderSentiment`` ships ``vader_lexicon.txt``: about 7,500 words and emoticons, each with the ten
integer ratings (-4 .. +4) that ten human raters gave it. The task: from a token's text, predict the
distribution of a rater's score. Tokens (not ratings) are split into train / validation / test with
a fixed seed, so test tokens are never seen in training, and each test token's ten ratings are
held-out raters' individual scores.

Scores of a predictive :class:`~hidlr.uq.distributions.GaussianMixture` against ratings ``(n, R)``:

- :func:`interval_log_likelihood`: log of the mass of the unit interval ``[r - 1/2, r + 1/2]``
  (the ratings are integers, so a density alone is not a likelihood of them);
- :func:`rating_crps`, :func:`rating_coverage`: CRPS and central-interval coverage over every
  (token, rating) pair;
- :func:`empirical_distance`: total variation between the predicted probabilities of the nine
  rating values (unit intervals, tails folded into -4 and +4) and each token's empirical
  ten-rating distribution.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.metrics import crps_values

RATING_MIN, RATING_MAX = -4, 4
RATING_VALUES = tuple(range(RATING_MIN, RATING_MAX + 1))
_MIN_MASS = 1e-12  # floor on an interval's mass, so one absurd prediction gives a large finite loss


@dataclass(frozen=True)
class Lexicon:
    """Tokens with their raters' scores.

    Attributes:
        tokens: ``n`` token strings.
        ratings: ``(n, R)`` float64 integer ratings in ``[-4, 4]`` (``R = 10`` for VADER).
    """

    tokens: tuple[str, ...]
    ratings: Tensor

    def __post_init__(self) -> None:
        if self.ratings.dim() != 2 or self.ratings.shape[0] != len(self.tokens):
            raise ValueError(
                f"ratings must have shape (n, R) with n = {len(self.tokens)} tokens, got {tuple(self.ratings.shape)}"
            )

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, index: Tensor | list[int]) -> Lexicon:
        """The tokens at ``index`` (a list or 1-D integer tensor), in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return Lexicon(tuple(self.tokens[i] for i in idx.tolist()), self.ratings[idx])


@dataclass(frozen=True)
class LexiconSplit:
    """Disjoint train / validation / test token sets (see :func:`split_lexicon`)."""

    train: Lexicon
    val: Lexicon
    test: Lexicon
    seed: int


def lexicon_path() -> Path:
    """Path of ``vader_lexicon.txt`` inside the installed ``vaderSentiment`` package."""
    import importlib.util

    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the VADER lexicon needs the 'vaderSentiment' package "
            "(pip install vaderSentiment, or pip install -e '.[finetune]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "vader_lexicon.txt"
    if not path.is_file():
        raise FileNotFoundError(f"vaderSentiment is installed but has no vader_lexicon.txt at {path}")
    return path


def parse_line(line: str, lineno: int = 0) -> tuple[str, list[int]]:
    """One lexicon line ``token<TAB>mean<TAB>std<TAB>[r1, ..., rR]`` -> ``(token, ratings)``.

    The ratings are the data; the file's mean and standard deviation are summaries and are not used
    (one line of the shipped file has a mean that disagrees with its ratings).
    """
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 4:
        raise ValueError(f"lexicon line {lineno}: expected 4 tab-separated fields, got {len(parts)}: {line!r}")
    token, _mean, _std, raw = parts
    try:
        ratings = [int(r) for r in ast.literal_eval(raw)]
    except (ValueError, SyntaxError, TypeError) as err:
        raise ValueError(f"lexicon line {lineno}: cannot read the ratings {raw!r}") from err
    if not ratings or any(r < RATING_MIN or r > RATING_MAX for r in ratings):
        raise ValueError(f"lexicon line {lineno}: ratings must be integers in [-4, 4], got {ratings}")
    return token, ratings


def load_lexicon(path: str | Path | None = None, limit: int | None = None) -> Lexicon:
    """Read the lexicon (default: the one inside ``vaderSentiment``); ``limit``: first tokens only.

    A token listed twice (the shipped file repeats 14) keeps its first entry, so that no token can
    sit on both sides of a split.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or a positive int, got {limit!r}")
    path = lexicon_path() if path is None else Path(path)
    tokens: list[str] = []
    rows: list[list[int]] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            token, ratings = parse_line(line, lineno)
            if token in seen:
                continue
            seen.add(token)
            if rows and len(ratings) != len(rows[0]):
                raise ValueError(f"lexicon line {lineno}: {len(ratings)} ratings, earlier lines have {len(rows[0])}")
            tokens.append(token)
            rows.append(ratings)
            if limit is not None and len(tokens) >= limit:
                break
    if not tokens:
        raise ValueError(f"no lexicon entries in {path}")
    return Lexicon(tuple(tokens), torch.tensor(rows, dtype=torch.float64))


def split_lexicon(lexicon: Lexicon, val: float = 0.1, test: float = 0.2, seed: int = 0) -> LexiconSplit:
    """Random disjoint token split (a seeded permutation): fractions ``val`` and ``test`` held out."""
    for name, frac in (("val", val), ("test", test)):
        if not 0.0 < frac < 1.0:
            raise ValueError(f"{name} must be a fraction in (0, 1), got {frac}")
    n = len(lexicon)
    n_val, n_test = round(val * n), round(test * n)
    if n_val < 1 or n_test < 1 or n - n_val - n_test < 1:
        raise ValueError(f"cannot split {n} tokens into non-empty train / val ({val}) / test ({test}) sets")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return LexiconSplit(
        train=lexicon.subset(perm[n_val + n_test :]),
        val=lexicon.subset(perm[:n_val]),
        test=lexicon.subset(perm[n_val : n_val + n_test]),
        seed=seed,
    )


# ------------------------------------------------------------------------------------------ scores
def _check(dist: GaussianMixture, ratings: Tensor) -> Tensor:
    if not isinstance(dist, GaussianMixture):
        raise TypeError(f"dist must be a GaussianMixture, got {type(dist).__name__}")
    r = torch.as_tensor(ratings)
    if r.dim() != 2 or r.shape[0] != dist.batch_shape[0]:
        raise ValueError(f"ratings must have shape (n, R) with n = {dist.batch_shape[0]} inputs, got {tuple(r.shape)}")
    return r.to(dtype=torch.float64, device=dist.loc.device)


def _float64(dist: GaussianMixture) -> GaussianMixture:
    d = dist.detach()
    return GaussianMixture(d.logits.double(), d.loc.double(), d.scale.double(), members=d.members, validate_args=False)


def interval_log_likelihood(dist: GaussianMixture, ratings: Tensor) -> Tensor:
    """``log P(r - 1/2 < Y <= r + 1/2)`` per rating, ``(n, R)`` float64 (floored at ``log 1e-12``)."""
    r = _check(dist, ratings)
    d = _float64(dist)
    with torch.no_grad():
        mass = d.cdf((r + 0.5).T) - d.cdf((r - 0.5).T)  # (R, n)
    return mass.T.clamp_min(_MIN_MASS).log()


def rating_nll(dist: GaussianMixture, ratings: Tensor) -> float:
    """Mean negative interval log-likelihood over all (token, rating) pairs (nats per rating)."""
    return float(-interval_log_likelihood(dist, ratings).mean())


def _per_rating(dist: GaussianMixture, ratings: Tensor) -> tuple[GaussianMixture, Tensor]:
    """The mixture repeated once per rating, and the ratings flattened: ``(n R,)``."""
    r = _check(dist, ratings)
    idx = torch.arange(r.shape[0], device=r.device).repeat_interleave(r.shape[1])
    return _float64(dist)[idx], r.reshape(-1)


def rating_crps(dist: GaussianMixture, ratings: Tensor) -> float:
    """Mean CRPS over all (token, rating) pairs (rating units; lower is better)."""
    d, r = _per_rating(dist, ratings)
    return float(crps_values(d, r).mean())


def rating_coverage(dist: GaussianMixture, ratings: Tensor, level: float = 0.9) -> float:
    """Fraction of individual ratings inside the central ``level`` predictive interval."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d, r = _per_rating(dist, ratings)
    with torch.no_grad():
        u = d.cdf(r)
    return float(((u >= (1 - level) / 2) & (u <= (1 + level) / 2)).double().mean())


def rating_pmf(dist: GaussianMixture) -> Tensor:
    """Predicted probability of each rating value -4 .. 4, ``(n, 9)`` float64: unit-interval masses,
    with everything below -3.5 counted as -4 and everything above 3.5 as +4 (rows sum to 1)."""
    d = _float64(dist)
    n = d.batch_shape[0]
    edges = torch.arange(RATING_MIN + 0.5, RATING_MAX, 1.0, dtype=torch.float64, device=d.loc.device)
    with torch.no_grad():
        cdf = d.cdf(edges[:, None].expand(-1, n)).T  # (n, 8)
    zeros = torch.zeros(n, 1, dtype=cdf.dtype, device=cdf.device)
    ones = torch.ones_like(zeros)
    return torch.diff(torch.cat([zeros, cdf, ones], dim=1), dim=1)


def empirical_pmf(ratings: Tensor) -> Tensor:
    """Each row's empirical distribution over the rating values -4 .. 4, ``(n, 9)`` float64."""
    r = torch.as_tensor(ratings)
    if r.dim() != 2:
        raise ValueError(f"ratings must have shape (n, R), got {tuple(r.shape)}")
    idx = r.round().long() - RATING_MIN
    if bool((idx < 0).any() | (idx >= len(RATING_VALUES)).any()):
        raise ValueError("ratings must lie in [-4, 4]")
    counts = torch.zeros(r.shape[0], len(RATING_VALUES), dtype=torch.float64, device=r.device)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return counts / r.shape[1]


def empirical_distance(dist: GaussianMixture, ratings: Tensor) -> float:
    """Mean total variation distance ``1/2 sum_v |p_pred(v) - p_emp(v)|`` between the predicted
    rating probabilities (:func:`rating_pmf`) and each token's empirical rating distribution."""
    r = _check(dist, ratings)
    return float(0.5 * (rating_pmf(dist) - empirical_pmf(r)).abs().sum(1).mean())


def disagreement(ratings: Tensor) -> Tensor:
    """Per-token standard deviation of the raters' scores (ddof 0), ``(n,)``: how much raters disagree."""
    r = torch.as_tensor(ratings, dtype=torch.float64)
    return r.std(dim=1, unbiased=False)


def score_ratings(dist: GaussianMixture, ratings: Tensor, level: float = 0.9) -> dict[str, float]:
    """All scores at once: ``nll``, ``crps``, ``coverage`` (at ``level``), ``tv_empirical``."""
    out = {
        "nll": rating_nll(dist, ratings),
        "crps": rating_crps(dist, ratings),
        "coverage": rating_coverage(dist, ratings, level),
        "tv_empirical": empirical_distance(dist, ratings),
    }
    if not all(math.isfinite(v) for v in out.values()):
        raise FloatingPointError(f"non-finite score: {out}")
    return out
