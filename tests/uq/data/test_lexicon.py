import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from hidlr.uq.data.lexicon import (
    disagreement,
    empirical_distance,
    empirical_pmf,
    interval_log_likelihood,
    load_lexicon,
    parse_line,
    rating_coverage,
    rating_crps,
    rating_nll,
    rating_pmf,
    score_ratings,
    split_lexicon,
)
from hidlr.uq.distributions import GaussianMixture

SLICE = 200


@pytest.fixture(scope="module")
def small():
    return load_lexicon(limit=SLICE)


def test_slice_shapes_and_values(small):
    assert len(small) == SLICE
    assert small.ratings.shape == (SLICE, 10)
    assert small.ratings.dtype == torch.float64
    assert bool(((small.ratings >= -4) & (small.ratings <= 4)).all())
    assert torch.equal(small.ratings, small.ratings.round())
    # the first line of the shipped file, read by hand
    assert small.tokens[0] == "$:"
    assert small.ratings[0].tolist() == [-1, -1, -1, -1, -3, -1, -3, -1, -2, -1]


def test_parse_line_and_bad_lines():
    token, r = parse_line("good\t1.9\t0.9434\t[2, 2, 1, 3, 2, 1, 3, 2, 1, 2]\n")
    assert token == "good" and r == [2, 2, 1, 3, 2, 1, 3, 2, 1, 2]
    with pytest.raises(ValueError, match="cannot read"):
        parse_line("good\t3.0\t0.9\t[2, 2, x]")
    with pytest.raises(ValueError, match="4 tab-separated"):
        parse_line("good 1.9 0.9 [2]")
    with pytest.raises(ValueError, match=r"\[-4, 4\]"):
        parse_line("x\t5.0\t0\t[5]")


def test_load_rejects_bad_limit_and_reads_a_file(tmp_path):
    with pytest.raises(ValueError, match="limit"):
        load_lexicon(limit=0)
    p = tmp_path / "lex.txt"
    p.write_text("a\t1.0\t0\t[1, 1]\nb\t-0.5\t0.5\t[0, -1]\na\t2.0\t0\t[2, 2]\n")
    lex = load_lexicon(p)
    assert lex.tokens == ("a", "b") and lex.ratings.tolist() == [[1, 1], [0, -1]]


def test_split_is_disjoint_fixed_and_complete(small):
    s1, s2 = split_lexicon(small, seed=3), split_lexicon(small, seed=3)
    assert s1.test.tokens == s2.test.tokens
    sets = [set(s1.train.tokens), set(s1.val.tokens), set(s1.test.tokens)]
    assert len(sets[1]) == 20 and len(sets[2]) == 40
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sets[0] | sets[1] | sets[2] == set(small.tokens)
    assert split_lexicon(small, seed=4).test.tokens != s1.test.tokens
    i = small.tokens.index(s1.test.tokens[0])
    assert torch.equal(s1.test.ratings[0], small.ratings[i])
    with pytest.raises(ValueError, match="val"):
        split_lexicon(small, val=0.0)


def _mix():
    # two inputs: a standard normal, and a two-component mixture
    logits = torch.log(torch.tensor([[1.0, 1.0], [0.3, 0.7]], dtype=torch.float64))
    loc = torch.tensor([[0.0, 0.0], [-2.0, 1.5]], dtype=torch.float64)
    scale = torch.tensor([[1.0, 1.0], [0.7, 1.2]], dtype=torch.float64)
    return GaussianMixture(logits, loc, scale)


def _scipy_cdf(i, x):
    if i == 0:
        return stats.norm.cdf(x)
    return 0.3 * stats.norm.cdf(x, -2.0, 0.7) + 0.7 * stats.norm.cdf(x, 1.5, 1.2)


def test_interval_likelihood_against_scipy():
    ratings = torch.tensor([[0.0, 1.0, -4.0], [2.0, -2.0, 4.0]], dtype=torch.float64)
    ll = interval_log_likelihood(_mix(), ratings)
    for i in range(2):
        for j in range(3):
            r = float(ratings[i, j])
            ref = math.log(_scipy_cdf(i, r + 0.5) - _scipy_cdf(i, r - 0.5))
            assert ll[i, j].item() == pytest.approx(ref, rel=1e-12)
    # hand value: N(0,1) mass of [-0.5, 0.5] is erf(0.5 / sqrt 2)
    assert ll[0, 0].item() == pytest.approx(math.log(math.erf(0.5 / math.sqrt(2))), rel=1e-12)
    assert rating_nll(_mix(), ratings) == pytest.approx(-float(ll.mean()))


def test_crps_and_coverage_against_numerical_references():
    ratings = torch.tensor([[0.0, 1.0, 3.0], [2.0, -2.0, 4.0]], dtype=torch.float64)
    ref = []
    for i in range(2):
        for r in ratings[i].tolist():
            f = lambda x, i=i, r=r: (_scipy_cdf(i, x) - (x >= r)) ** 2
            ref.append(integrate.quad(f, -30, r, limit=200)[0] + integrate.quad(f, r, 30, limit=200)[0])
    assert rating_crps(_mix(), ratings) == pytest.approx(np.mean(ref), rel=1e-6)
    # N(0,1) 90% interval is +-1.645: 0 and 1 inside, 3 outside; second input by its PIT
    inside = [0.05 <= _scipy_cdf(i, r) <= 0.95 for i in range(2) for r in ratings[i].tolist()]
    assert rating_coverage(_mix(), ratings, 0.9) == pytest.approx(np.mean(inside))
    assert inside[:3] == [True, True, False]


def test_pmf_sums_to_one_and_distance_by_hand():
    pmf = rating_pmf(_mix())
    assert pmf.shape == (2, 9)
    assert torch.allclose(pmf.sum(1), torch.ones(2, dtype=torch.float64))
    assert pmf[0, 4].item() == pytest.approx(math.erf(0.5 / math.sqrt(2)))  # value 0
    assert pmf[0, 0].item() == pytest.approx(stats.norm.cdf(-3.5))  # -4 takes the lower tail
    ratings = torch.tensor([[0.0] * 10, [4.0] * 5 + [-4.0] * 5])
    emp = empirical_pmf(ratings)
    assert emp[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert emp[1].tolist() == [0.5, 0, 0, 0, 0, 0, 0, 0, 0.5]
    tv0 = 1.0 - pmf[0, 4].item()  # all mass on 0: TV = 1 - p(0)
    tv1 = 0.5 * (abs(pmf[1, 0] - 0.5) + abs(pmf[1, 8] - 0.5) + pmf[1, 1:8].sum()).item()
    assert empirical_distance(_mix(), ratings) == pytest.approx((tv0 + tv1) / 2)
    assert disagreement(ratings).tolist() == [0.0, 4.0]


def test_scores_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"\(n, R\)"):
        rating_nll(_mix(), torch.zeros(3, 10))
    with pytest.raises(TypeError, match="GaussianMixture"):
        rating_crps("not a mixture", torch.zeros(2, 10))
    with pytest.raises(ValueError, match="level"):
        rating_coverage(_mix(), torch.zeros(2, 2), 1.5)
    s = score_ratings(_mix(), torch.zeros(2, 10))
    assert set(s) == {"nll", "crps", "coverage", "tv_empirical"}


def test_the_whole_file_has_unique_tokens_and_ten_ratings():
    lex = load_lexicon()
    assert len(set(lex.tokens)) == len(lex) > 7000
    assert lex.ratings.shape[1] == 10
