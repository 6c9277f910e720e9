"""Privacy accounting on Google's ``dp-accounting`` (RDP, and PLD for Gaussian / Laplace).

Theory of operation.  Each DP release is described as a ``dp_accounting`` event:

* Gaussian mechanism with noise multiplier z = sigma / Delta_2: ``GaussianDpEvent(z)``; with
  Poisson sampling of clients at rate q, ``PoissonSampledDpEvent(q, ...)`` (amplification is
  only claimed where the caller says the sampling is really random and secret);
* Laplace mechanism with b = z Delta_1: ``LaplaceDpEvent(z)``;
* distributed discrete Gaussian: the sum of n shares N_Z(0, s) (integer units), L2 / L1
  sensitivities Delta_2 / Delta_1 of the integer vector in dimension d, satisfies
  (alpha, alpha/2 (a^2 + 2 b tau + tau^2 d))-RDP for every alpha with a = Delta_2 / sqrt(n s),
  b = Delta_1 / sqrt(n s), tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 s k / (k + 1))
  (Kairouz, Liu and Steinke, ICML 2021, Theorem 1 / Proposition 14), i.e. rho-zCDP with
  rho = (a^2 + 2 b tau + tau^2 d) / 2: ``ZCDpEvent(rho)``.  n is the number of clients whose
  noise actually entered the sum -- the survivors -- so a round with fewer survivors is
  accounted with less noise.

Rounds compose with the RDP accountant (orders 1.25 .. 256) or, for Gaussian / Laplace events,
the PLD accountant; :class:`PrivacyAccountant` converts to (epsilon, delta).
:class:`PrivacyBudget` refuses, with :class:`~fedsecure.errors.PrivacyBudgetExceeded`, a round
whose event would push epsilon above the budget -- before the round runs.
:func:`calibrate_noise_multiplier` finds the smallest z for which ``rounds`` rounds fit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from fedsecure.config import require
from fedsecure.errors import BackendUnavailable, ConfigurationError, PrivacyBudgetExceeded

try:
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant
except ImportError:
    raise BackendUnavailable("dp-accounting", "dp") from None

ACCOUNTANTS = ("rdp", "pld")
RDP_ORDERS = tuple([1 + x / 20 for x in range(5, 20)] + list(range(2, 64)) + [80, 128, 256])


def gaussian_event(noise_multiplier: float, sampling_probability: float = 1.0):
    """One Gaussian release with sigma = ``noise_multiplier`` x sensitivity."""
    require(noise_multiplier > 0, "noise_multiplier", noise_multiplier, "must be > 0")
    event = dp_event.GaussianDpEvent(noise_multiplier)
    return _sampled(event, sampling_probability)


def laplace_event(noise_multiplier: float, sampling_probability: float = 1.0):
    """One Laplace release with scale b = ``noise_multiplier`` x L1 sensitivity."""
    require(noise_multiplier > 0, "noise_multiplier", noise_multiplier, "must be > 0")
    return _sampled(dp_event.LaplaceDpEvent(noise_multiplier), sampling_probability)


def _sampled(event, q: float):
    require(0 < q <= 1, "sampling_probability", q, "must be in (0, 1]")
    return event if q == 1 else dp_event.PoissonSampledDpEvent(q, event)


def ddg_tau(local_variance: float, n: int) -> float:
    """tau of KLS 2021 Theorem 1 for n shares of variance parameter s (integer units)."""
    return 10 * sum(math.exp(-2 * math.pi**2 * local_variance * k / (k + 1)) for k in range(1, n))


def distributed_discrete_gaussian_rho(*, l2_bound: float, l1_bound: float, local_variance: float,
                                      n_survivors: int, dim: int) -> float:
    """rho of the zCDP bound (KLS 2021, Proposition 14) for the sum of ``n_survivors`` shares."""
    require(n_survivors >= 1, "n_survivors", n_survivors, "must be >= 1")
    scale = math.sqrt(n_survivors * local_variance)
    a, b = l2_bound / scale, l1_bound / scale
    tau = ddg_tau(local_variance, n_survivors)
    return (a * a + 2 * b * tau + tau * tau * dim) / 2


def distributed_discrete_gaussian_event(**kwargs):
    """``ZCDpEvent`` for the distributed discrete Gaussian (keywords as for the rho above)."""
    return dp_event.ZCDpEvent(distributed_discrete_gaussian_rho(**kwargs))


@dataclass
class PrivacyAccountant:
    """The events released so far, and their (epsilon, delta)."""

    delta: float
    kind: str = "rdp"
    events: list = field(default_factory=list)

    def __post_init__(self):
        require(0 < self.delta < 1, "delta", self.delta, "must be in (0, 1)")
        require(self.kind in ACCOUNTANTS, "accountant", self.kind, f"must be one of {ACCOUNTANTS}")

    def compose(self, event, count: int = 1) -> None:
        self.events.append(event if count == 1 else dp_event.SelfComposedDpEvent(event, count))

    @property
    def epsilon(self) -> float:
        return epsilon_of(self.events, self.delta, self.kind)

    def epsilon_if(self, event, count: int = 1) -> float:
        """epsilon after ``count`` more releases of ``event``."""
        more = event if count == 1 else dp_event.SelfComposedDpEvent(event, count)
        return epsilon_of([*self.events, more], self.delta, self.kind)


def epsilon_of(events: list, delta: float, kind: str = "rdp") -> float:
    """epsilon at ``delta`` of the composition of ``events`` (0 for none)."""
    if not events:
        return 0.0
    if kind == "rdp":
        accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    else:
        accountant = pld_privacy_accountant.PLDAccountant()
    counts = Counter(events)  # composition commutes: equal events are composed as one power
    composed = dp_event.ComposedDpEvent(
        [e if c == 1 else dp_event.SelfComposedDpEvent(e, c) for e, c in counts.items()])
    if not accountant.supports(composed):
        raise ConfigurationError(f"accountant={kind!r}: cannot account {composed}; use 'rdp'")
    accountant.compose(composed)
    return float(accountant.get_epsilon(delta))


@dataclass
class PrivacyBudget:
    """An (epsilon, delta) budget: :meth:`spend` refuses a release that would exceed it."""

    epsilon: float
    delta: float
    kind: str = "rdp"
    accountant: PrivacyAccountant = field(init=False)

    def __post_init__(self):
        require(math.isfinite(self.epsilon) and self.epsilon > 0, "epsilon", self.epsilon,
                "must be a finite number > 0")
        self.accountant = PrivacyAccountant(self.delta, self.kind)

    @property
    def spent(self) -> float:
        return self.accountant.epsilon

    def check(self, event) -> float:
        """The epsilon after ``event``; raises PrivacyBudgetExceeded if above the budget."""
        after = self.accountant.epsilon_if(event)
        if after > self.epsilon:
            raise PrivacyBudgetExceeded(
                f"the next release would spend epsilon={after:.4g} > budget {self.epsilon:g}"
                f" at delta={self.delta:g} (spent so far: {self.spent:.4g})")
        return after

    def spend(self, event) -> float:
        """Account ``event`` after checking it fits; returns the epsilon spent so far."""
        self.check(event)
        self.accountant.compose(event)
        return self.spent


def calibrate_noise_multiplier(epsilon: float, delta: float, rounds: int,
                               event_for: Callable[[float], object] = gaussian_event,
                               kind: str = "rdp", tolerance: float = 1e-3) -> float:
    """The smallest noise multiplier z (to ``tolerance`` relative) with which ``rounds``
    releases of ``event_for(z)`` stay within (epsilon, delta)."""
    require(math.isfinite(epsilon) and epsilon > 0, "epsilon", epsilon, "must be > 0")
    require(isinstance(rounds, int) and rounds >= 1, "rounds", rounds, "must be an integer >= 1")

    def fits(z: float) -> bool:
        return epsilon_of([dp_event.SelfComposedDpEvent(event_for(z), rounds)], delta,
                          kind) <= epsilon

    low, high = 1e-3, 1.0
    while not fits(high):
        low, high = high, 2 * high
        require(high < 1e6, "epsilon", epsilon, "is too small to reach with any noise")
    while high - low > tolerance * high:
        mid = (low + high) / 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high
