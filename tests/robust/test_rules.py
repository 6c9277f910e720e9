"""Breakdown properties of each robust rule on constructed inputs, plus the shared contract
(shares, conditions, column blocking).  Byzantine inputs are built, not filtered: honest
updates in a ball around a centre, f arbitrary (possibly colluding) ones far away or anywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from fedsecure.errors import ConfigurationError
from fedsecure.robust import RULES, anomaly_scores, make_rule, pairwise_sq_distances
from fedsecure.robust import base as robust_base


@st.composite
def attacked(draw, *, min_n=3, max_n=15, f_of_n=lambda n: (n - 1) // 2, far=False):
    """(updates, honest indices, f): n - f honest updates near a centre, f arbitrary ones."""
    n = draw(st.integers(min_n, max_n))
    f = draw(st.integers(0, f_of_n(n)))
    d = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    centre = rng.normal(size=d)
    honest = centre + rng.uniform(-1, 1, size=(n - f, d))
    scale = draw(st.sampled_from([1e2, 1e4, 1e8]))
    if far:  # colluding or not, at distance >= scale from the honest ball
        direction = rng.normal(size=(f, d))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        if f and draw(st.booleans()):
            direction[:] = direction[0]
        byzantine = centre + scale * direction * rng.uniform(1, 2, size=(f, 1))
    else:
        byzantine = rng.uniform(-scale, scale, size=(f, d))
    order = rng.permutation(n)
    x = np.concatenate([honest, byzantine])[order]
    return x, np.flatnonzero(order < n - f), f


def _within_honest_range(aggregate, x, honest, slack=1e-9):
    lo, hi = x[honest].min(axis=0), x[honest].max(axis=0)
    return bool(np.all(aggregate >= lo - slack) and np.all(aggregate <= hi + slack))


@given(attacked())
def test_median_ignores_fewer_than_half_arbitrary_outliers(case):
    x, honest, _ = case
    assert _within_honest_range(make_rule("median")(x).aggregate, x, honest)


@given(attacked())
def test_trimmed_mean_is_bounded_by_the_honest_range(case):
    x, honest, f = case
    assert _within_honest_range(make_rule("trimmed-mean", f=f)(x).aggregate, x, honest)


@given(attacked(min_n=3, f_of_n=lambda n: (n - 3) // 2, far=True))
def test_krum_selects_an_honest_update_when_n_exceeds_2f_plus_2(case):
    x, honest, f = case
    result = make_rule("krum", f=f)(x)
    (chosen,) = np.flatnonzero(result.shares)
    assert chosen in honest
    assert np.array_equal(result.aggregate, x[chosen])


@given(attacked(min_n=3, f_of_n=lambda n: (n - 3) // 2, far=True))
def test_multi_krum_averages_honest_updates_only(case):
    x, honest, f = case
    result = make_rule("multi-krum", f=f)(x)
    chosen = np.flatnonzero(result.shares)
    assert len(chosen) == len(x) - f and set(chosen) <= set(honest)
    assert np.allclose(result.aggregate, x[chosen].mean(axis=0))


@given(attacked(min_n=3, max_n=19, f_of_n=lambda n: (n - 3) // 4, far=True))
def test_bulyan_stays_in_the_honest_range(case):
    x, honest, f = case
    result = make_rule("bulyan", f=f)(x)
    assert _within_honest_range(result.aggregate, x, honest)
    assert set(np.flatnonzero(result.shares)) <= set(honest)


@given(attacked(max_n=15, f_of_n=lambda n: (n - 1) // 2, far=True))
def test_geometric_median_moves_a_bounded_distance_whatever_the_outliers(case):
    """||z - c|| <= (2(1 - a) / (1 - 2a)) r for a fraction a < 1/2 of outliers (Minsker 2015,
    Lemma 2.1), r the honest radius around c: independent of how far the outliers are."""
    x, honest, f = case
    n = len(x)
    centre = x[honest].mean(axis=0)
    radius = np.linalg.norm(x[honest] - centre, axis=1).max()
    alpha = f / n
    z = make_rule("geometric-median", tol=1e-12, iterations=2000)(x).aggregate
    assert np.linalg.norm(z - centre) <= 2 * (1 - alpha) / (1 - 2 * alpha) * radius * 1.01 + 1e-6


@given(attacked(f_of_n=lambda n: (n - 1) // 2))
def test_norm_bound_limits_each_inputs_pull(case):
    x, honest, f = case
    tau = 0.5
    clean = make_rule("norm-bound", tau=tau)(x[honest]).aggregate
    result = make_rule("norm-bound", tau=tau)(x)
    assert np.linalg.norm(result.aggregate) <= tau * (1 + 1e-9)
    n = len(x)
    # the mean of n clipped vectors vs of the n - f honest ones: at most 2 f tau / n apart
    assert np.linalg.norm(result.aggregate - clean) <= 2 * f * tau / n + 1e-9


@given(attacked(f_of_n=lambda n: (n - 1) // 2, far=True))
def test_centered_clipping_moves_at_most_iterations_times_tau_from_its_centre(case):
    x, _, _ = case
    tau, iterations = 0.3, 3
    centre = make_rule("median")(x).aggregate
    v = make_rule("centered-clipping", tau=tau, iterations=iterations)(x).aggregate
    assert np.linalg.norm(v - centre) <= iterations * tau * (1 + 1e-9)


def test_the_mean_has_no_breakdown_point():
    """The baseline the others are tested against: one outlier moves it anywhere."""
    x = np.zeros((10, 3))
    x[0] = 1e9
    assert make_rule("mean")(x).aggregate[0] == pytest.approx(1e8)
    with pytest.raises(ConfigurationError, match=r"breakdown point\s+0"):
        make_rule("mean", f=1)(x)


@pytest.mark.parametrize("rule, f, smallest", [
    ("krum", 2, 7), ("multi-krum", 2, 7), ("bulyan", 2, 11), ("median", 2, 5),
    ("trimmed-mean", 2, 5), ("geometric-median", 2, 5)])
def test_each_rule_refuses_too_few_inputs_for_its_f(rule, f, smallest):
    rng = np.random.default_rng(0)
    make_rule(rule, f=f)(rng.normal(size=(smallest, 4)))
    with pytest.raises(ConfigurationError, match=f"at least {smallest} inputs"):
        make_rule(rule, f=f)(rng.normal(size=(smallest - 1, 4)))
    assert make_rule(rule).max_f(smallest) == f


@pytest.mark.parametrize("name", sorted(RULES))
def test_shares_are_a_distribution_and_rules_ignore_input_order(name):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(11, 40))
    rule = make_rule(name, f=0 if name == "mean" else 2)
    result = rule(x)
    assert result.shares.shape == (11,) and np.all(result.shares >= 0)
    assert result.shares.sum() == pytest.approx(1.0)
    order = rng.permutation(11)
    shuffled = rule(x[order])
    assert np.allclose(shuffled.aggregate, result.aggregate, atol=1e-8)
    assert np.allclose(shuffled.shares, result.shares[order], atol=1e-8)


@pytest.mark.parametrize("name", ["median", "trimmed-mean", "bulyan"])
def test_column_blocks_do_not_change_coordinate_wise_results(name, monkeypatch):
    x = np.random.default_rng(2).normal(size=(11, 1000))
    whole = make_rule(name, f=2)(x)
    monkeypatch.setattr(robust_base, "COLUMN_CHUNK", 7)
    blocked = make_rule(name, f=2)(x)
    assert np.array_equal(blocked.aggregate, whole.aggregate)
    assert np.allclose(blocked.shares, whole.shares)


def test_pairwise_distances_equal_scipy():
    x = np.random.default_rng(3).normal(size=(20, 300)) * 5 + 2
    assert np.allclose(pairwise_sq_distances(x), cdist(x, x, "sqeuclidean"), rtol=1e-9,
                       atol=1e-8)


def test_rejected_and_downweighted_inputs_are_reported():
    x = np.zeros((10, 5)) + np.random.default_rng(4).normal(scale=0.01, size=(10, 5))
    x[[2, 7]] = 100.0
    assert set(make_rule("multi-krum", f=2)(x).rejected()) == {2, 7}
    assert set(make_rule("trimmed-mean", f=2)(x).rejected()) == {2, 7}
    clipped = make_rule("centered-clipping", tau=0.05)(x)
    assert {2, 7} <= set(clipped.downweighted())


def test_anomaly_scores_flag_outliers_and_not_honest_updates():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 200))
    x[[3, 11]] *= 20
    x[17] = -x[17] * 5
    scores = anomaly_scores(x)
    assert set(np.flatnonzero(scores > 3)) == {3, 11, 17}


def test_bad_options_and_inputs_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="unknown"):
        make_rule("average")
    with pytest.raises(ConfigurationError, match="not accepted"):
        make_rule("median", tau=1.0)
    with pytest.raises(ConfigurationError, match="f=-1"):
        make_rule("krum", f=-1)
    with pytest.raises(ConfigurationError, match="tau"):
        make_rule("norm-bound", tau=0)
    with pytest.raises(ConfigurationError, match="non-finite"):
        make_rule("median")(np.array([[1.0, np.nan], [0.0, 0.0]]))
    with pytest.raises(ConfigurationError, match="shape"):
        make_rule("median")(np.zeros(3))
