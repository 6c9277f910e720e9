"""Each sampler matches its distribution (fixed false-alarm rate, deterministic seeds)."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from fedsecure.dp.sampling import (
    MAX_VARIANCE,
    bernoulli_exp,
    bernoulli_ratio,
    discrete_gaussian,
    gaussian,
    laplace,
    uniform_below,
)
from fedsecure.errors import ConfigurationError
from fedsecure.rng import DeterministicRandom
from tests.dp.stats import (
    FALSE_ALARM,
    binned_counts,
    binomial_fits,
    chi_square_fits,
    variance_fits,
)

N = 200_000


def discrete_gaussian_pmf(s: int) -> dict[int, float]:
    """P(x) proportional to exp(-x^2 / 2s), over |x| <= 40 sqrt(s) (the rest is < e^-800)."""
    r = 40 * math.isqrt(s) + 40
    weights = {x: math.exp(-x * x / (2 * s)) for x in range(-r, r + 1)}
    total = math.fsum(weights.values())
    return {x: w / total for x, w in weights.items()}


@pytest.mark.parametrize("bound", [1, 2, 3, 7, 10, 1000])
def test_uniform_below_is_uniform(bound):
    samples = uniform_below(DeterministicRandom(f"uniform-{bound}"), np.full(N // 4, bound))
    assert samples.min() >= 0 and samples.max() < bound
    if bound > 1:
        observed, expected = binned_counts(samples, {v: 1 / bound for v in range(bound)})
        chi_square_fits(observed, expected)


def test_uniform_below_near_the_top_of_int64():
    bound = (1 << 62) + 1  # rejection rate near 1/2: exercises the redraw loop
    samples = uniform_below(DeterministicRandom("big"), np.full(20_000, bound))
    assert samples.min() >= 0 and samples.max() < bound
    binomial_fits(int(np.count_nonzero(samples < (1 << 61))), samples.size, (1 << 61) / bound)


@pytest.mark.parametrize("num, den", [(0, 1), (1, 3), (2, 3), (1, 1), (7, 2), (5, 1), (13, 4)])
def test_bernoulli_exp_has_probability_exp_minus_num_over_den(num, den):
    draws = bernoulli_exp(DeterministicRandom(f"bexp-{num}-{den}"), np.full(N // 2, num),
                          np.int64(den))
    binomial_fits(int(np.count_nonzero(draws)), draws.size, math.exp(-num / den))


def test_bernoulli_ratio_is_exact_on_a_rational():
    draws = bernoulli_ratio(DeterministicRandom("ratio"), np.full(N, 2), np.full(N, 7))
    binomial_fits(int(np.count_nonzero(draws)), N, float(Fraction(2, 7)))


@pytest.mark.parametrize("variance", [1, 2, 5, 50, 1000, 47913])
def test_discrete_gaussian_matches_its_pmf(variance):
    samples = discrete_gaussian(DeterministicRandom(f"dg-{variance}"), variance, N)
    assert samples.dtype == np.int64
    observed, expected = binned_counts(samples, discrete_gaussian_pmf(variance))
    chi_square_fits(observed, expected)


def test_discrete_gaussian_at_the_largest_variance_has_its_variance():
    samples = discrete_gaussian(DeterministicRandom("dg-max"), MAX_VARIANCE, N)
    variance_fits(samples, MAX_VARIANCE)  # Var N_Z(0, s) = s up to e^-(2 pi^2 s)


def test_sum_of_n_shares_has_the_target_variance():
    n, s, d = 25, 300, 20_000
    rng = DeterministicRandom("shares")
    total = sum(discrete_gaussian(rng, s, d) for _ in range(n))
    variance_fits(total, n * s)
    assert abs(float(np.mean(total))) < 5 * math.sqrt(n * s / d)


@pytest.mark.parametrize("variance", [0, MAX_VARIANCE + 1, 2.5])
def test_discrete_gaussian_refuses_variances_it_cannot_sample_exactly(variance):
    with pytest.raises(ConfigurationError, match="variance"):
        discrete_gaussian(DeterministicRandom(0), variance, 10)


def test_gaussian_matches_normal():
    samples = gaussian(DeterministicRandom("gauss"), 2.5, N + 1)
    assert samples.size == N + 1
    assert stats.kstest(samples / 2.5, "norm").pvalue > FALSE_ALARM


def test_laplace_matches_laplace():
    samples = laplace(DeterministicRandom("laplace"), 0.7, N)
    assert stats.kstest(samples / 0.7, "laplace").pvalue > FALSE_ALARM


def test_samplers_draw_only_from_the_injected_source():
    a = discrete_gaussian(DeterministicRandom("same"), 9, 1000)
    b = discrete_gaussian(DeterministicRandom("same"), 9, 1000)
    c = discrete_gaussian(DeterministicRandom("other"), 9, 1000)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_dp_never_uses_numpy_generators():
    package = Path(__file__).resolve().parents[2] / "fedsecure" / "dp"
    pattern = re.compile(r"RandomState|default_rng|np\.random|numpy\.random")
    offenders = [str(p) for p in package.rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders
