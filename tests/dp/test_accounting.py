"""The accountant reproduces dp-accounting computed directly, closed forms, and the KLS bound."""

from __future__ import annotations

import math

import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from fedsecure.dp.accounting import (
    RDP_ORDERS,
    PrivacyAccountant,
    PrivacyBudget,
    calibrate_noise_multiplier,
    ddg_tau,
    distributed_discrete_gaussian_rho,
    epsilon_of,
    gaussian_event,
    laplace_event,
)
from fedsecure.errors import ConfigurationError, PrivacyBudgetExceeded


def direct_rdp(event, delta):
    accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    accountant.compose(event)
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("z, rounds, q", [(1.0, 1, 1.0), (6.7, 20, 1.0), (1.1, 1000, 0.01),
                                          (0.8, 300, 0.05)])
def test_gaussian_rounds_match_dp_accounting_directly(z, rounds, q):
    accountant = PrivacyAccountant(delta=1e-5)
    for _ in range(rounds):
        accountant.compose(gaussian_event(z, q))
    inner = dp_event.GaussianDpEvent(z)
    event = inner if q == 1 else dp_event.PoissonSampledDpEvent(q, inner)
    expected = direct_rdp(dp_event.SelfComposedDpEvent(event, rounds), 1e-5)
    assert accountant.epsilon == pytest.approx(expected, rel=1e-9)


def test_pld_accountant_matches_dp_accounting_directly():
    pld = pld_privacy_accountant.PLDAccountant()
    pld.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(2.0), 10))
    ours = epsilon_of([gaussian_event(2.0)] * 10, 1e-6, kind="pld")
    assert ours == pytest.approx(pld.get_epsilon(1e-6), rel=1e-6)  # PLD discretization
    assert ours < epsilon_of([gaussian_event(2.0)] * 10, 1e-6, kind="rdp")  # PLD is tighter


def test_laplace_one_release_is_pure_dp_with_epsilon_one_over_z():
    # Laplace with b = z * Delta_1 is (1/z, 0)-DP; RDP -> (eps, delta) can only be close above it
    eps = epsilon_of([laplace_event(2.0)], 1e-6, kind="pld")
    assert eps == pytest.approx(0.5, abs=1e-3)


def test_gaussian_matches_the_zcdp_closed_form_of_bun_and_steinke():
    # sigma = z Delta is rho = 1/(2 z^2)-zCDP (Bun & Steinke 2016, Prop. 1.6); T rounds T rho;
    # the RDP accountant's conversion is at least as tight as rho + 2 sqrt(rho ln(1/delta)).
    z, rounds, delta = 5.0, 40, 1e-5
    rho = rounds / (2 * z * z)
    ours = epsilon_of([gaussian_event(z)] * rounds, delta)
    assert ours <= rho + 2 * math.sqrt(rho * math.log(1 / delta))
    assert ours == pytest.approx(epsilon_of([dp_event.ZCDpEvent(rho)], delta), rel=1e-9)


def kls_rho_by_hand(l2, l1, s, n, d):
    """KLS 2021 Proposition 14, middle term, written out independently."""
    tau = 10 * sum(math.exp(-2 * math.pi**2 * s * k / (k + 1)) for k in range(1, n))
    return 0.5 * ((l2 / math.sqrt(n * s)) ** 2 + 2 * (l1 / math.sqrt(n * s)) * tau
                  + tau**2 * d)


@pytest.mark.parametrize("s, n", [(0.5, 10), (1.0, 100), (4.0, 3), (1000.0, 50)])
def test_distributed_discrete_gaussian_rho_is_the_kls_bound(s, n):
    l2, d = 30.0, 1024
    l1 = min(l2 * l2, math.sqrt(d) * l2)
    ours = distributed_discrete_gaussian_rho(l2_bound=l2, l1_bound=l1, local_variance=s,
                                             n_survivors=n, dim=d)
    assert ours == pytest.approx(kls_rho_by_hand(l2, l1, s, n, d), rel=1e-12)


def test_with_large_shares_the_distributed_sum_is_accounted_like_a_central_gaussian():
    # tau vanishes for s >> 1, and the bound becomes Gaussian with z = sqrt(n s) / Delta_2
    l2, n, s, d = 500.0, 40, 10_000.0, 2048
    assert ddg_tau(s, n) == 0.0
    rho = distributed_discrete_gaussian_rho(l2_bound=l2, l1_bound=l2 * math.sqrt(d),
                                            local_variance=s, n_survivors=n, dim=d)
    z = math.sqrt(n * s) / l2
    assert epsilon_of([dp_event.ZCDpEvent(rho)], 1e-5) == pytest.approx(
        epsilon_of([gaussian_event(z)], 1e-5), rel=1e-9)


def test_fewer_survivors_means_a_larger_epsilon():
    kwargs = dict(l2_bound=100.0, l1_bound=3200.0, local_variance=500, dim=1024)
    eps = [epsilon_of([dp_event.ZCDpEvent(distributed_discrete_gaussian_rho(
        n_survivors=n, **kwargs))], 1e-5) for n in (10, 20, 40)]
    assert eps[0] > eps[1] > eps[2]


def test_calibration_finds_the_smallest_multiplier_that_fits():
    z = calibrate_noise_multiplier(3.0, 1e-5, rounds=20)
    assert epsilon_of([gaussian_event(z)] * 20, 1e-5) <= 3.0
    assert epsilon_of([gaussian_event(z * 0.99)] * 20, 1e-5) > 3.0


def test_budget_stops_before_the_round_that_would_overspend():
    z = calibrate_noise_multiplier(2.0, 1e-5, rounds=10)
    budget = PrivacyBudget(epsilon=2.0, delta=1e-5)
    for _ in range(10):
        spent = budget.spend(gaussian_event(z))
    assert spent <= 2.0
    with pytest.raises(PrivacyBudgetExceeded, match="budget 2"):
        budget.check(gaussian_event(z))
    assert budget.spent == pytest.approx(spent)  # the refused round spent nothing


def test_bad_parameters_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="delta"):
        PrivacyAccountant(delta=0.0)
    with pytest.raises(ConfigurationError, match="accountant"):
        PrivacyAccountant(delta=1e-5, kind="moments")
    with pytest.raises(ConfigurationError, match="cannot account"):
        epsilon_of([dp_event.ZCDpEvent(0.1)], 1e-5, kind="pld")
    with pytest.raises(ConfigurationError, match="noise_multiplier"):
        gaussian_event(0.0)
