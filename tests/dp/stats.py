"""Statistical checks at a fixed false-alarm rate.  Every sample comes from DeterministicRandom
with a fixed seed, so a test that passes once passes always (no flakes); the rate says how
unlikely a pass would be for a correct sampler under a fresh seed."""

from __future__ import annotations

import numpy as np
from scipy import stats

FALSE_ALARM = 1e-6


def chi_square_fits(observed: np.ndarray, expected: np.ndarray) -> None:
    """Pearson chi-square test of counts against expected counts (bins with >= 5 expected)."""
    assert np.all(expected >= 5), "merge bins so that each expects >= 5"
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    critical = float(stats.chi2.ppf(1 - FALSE_ALARM, df=len(observed) - 1))
    assert statistic < critical, f"chi-square {statistic:.1f} >= {critical:.1f}"


def binomial_fits(successes: int, trials: int, p: float) -> None:
    """Two-sided binomial test of a success count against probability p."""
    pvalue = stats.binomtest(successes, trials, p).pvalue
    assert pvalue > FALSE_ALARM, f"{successes}/{trials} vs p={p}: p-value {pvalue:.2e}"


def variance_fits(samples: np.ndarray, variance: float) -> None:
    """Chi-square test that iid zero-mean normal-ish samples have ``variance``."""
    n = samples.size
    statistic = float(np.sum(samples.astype(np.float64) ** 2) / variance)
    low = stats.chi2.ppf(FALSE_ALARM / 2, df=n)
    high = stats.chi2.ppf(1 - FALSE_ALARM / 2, df=n)
    assert low < statistic < high, f"sum of squares / variance = {statistic:.1f} not in" \
        f" ({low:.1f}, {high:.1f}) for n={n}"


def binned_counts(samples: np.ndarray, pmf: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Observed and expected counts over the support of ``pmf``, tails merged to >= 5."""
    n = samples.size
    values = sorted(pmf)
    edges: list[list[int]] = [[]]
    for v in values:  # left to right; close a bin once it expects >= 5
        edges[-1].append(v)
        if n * sum(pmf[u] for u in edges[-1]) >= 5:
            edges.append([])
    if not edges[-1]:
        edges.pop()
    if len(edges) > 1 and n * sum(pmf[u] for u in edges[-1]) < 5:
        edges[-2].extend(edges.pop())
    uniq, counts = np.unique(samples, return_counts=True)
    count_of = dict(zip(uniq.tolist(), counts.tolist()))
    assert set(count_of) <= set(values), "a sample fell outside the tabulated support"
    observed = np.array([sum(count_of.get(v, 0) for v in b) for b in edges], dtype=float)
    expected = np.array([n * sum(pmf[v] for v in b) for b in edges])
    return observed, expected
