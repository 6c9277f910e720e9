"""SecAgg+ parameter finder: the degree k and threshold t of a random Harary graph.

Theory of operation (Bell et al., CCS'20, Section 4 and its appendix: SecAgg+ on the random
Harary graph H(n, k); the concrete bounds are those of Google's federated-compute
``graph_parameter_finder``, re-derived here).  n clients sit on a ring in a uniformly random
order and each is joined to the k/2 nearest on either side (:mod:`.harary`).  At most
``C = floor(gamma * n)`` clients are corrupt (they collude with the server) and at most
``D = floor(delta * n)`` drop out.  Three bad events must be unlikely:

1. *The honest survivors fall apart.*  If removing the ``B = C + D`` bad clients disconnects
   the graph, the server learns the partial sum of a component.  Cutting a Harary ring needs
   two disjoint runs of k/2 consecutive bad clients, i.e. k bad clients at two chosen gaps;
   there are ``n (n - k - 1) / 2`` gap pairs and the k positions are all bad with probability
   ``C(B, k) / C(n, k)``.  By a union bound
   ``P1 <= n (n - k - 1) / 2 * C(B, k) / C(n, k)`` (zero when ``k > B``).
2. *Some neighbourhood holds t corrupt clients*, who with the server could reconstruct an
   honest client's secrets.  A client's k neighbours are a uniform k-subset, so its corrupt
   neighbours follow ``A ~ Hypergeometric(n, C, k)``, and over all clients
   ``P2 <= n * P[A >= t]``.  A *semi-malicious* server may tell each honest holder a
   different story (u survived / u dropped) and so collect shares of *both* of u's secrets:
   the k - A honest neighbours give one share each, the owner u (alive) gives its own share
   of its self-mask seed, and the A corrupt neighbours give both.  It needs t of each, which
   is possible iff ``(t - A - 1) + (t - A) <= k - A``, i.e. ``A >= 2t - k - 1``:
   ``P2 <= n * P[A >= 2t - k - 1]``.  (Google's finder uses ``2t - k``, which leaves out
   the owner's own share; SecAgg's client keeps one and reveals it when it survives.)
3. *Some neighbourhood keeps fewer than t survivors*, so a dropped client's secret cannot be
   recovered and the round fails: with ``S ~ Hypergeometric(n, n - D, k)`` surviving
   neighbours, ``P3 <= n * P[S < t]``.

Security asks ``P1 + P2 <= 2^-sigma`` (each term gets ``2^-(sigma+1)``) and correctness
``P3 < 2^-eta``.  The finder scans even k = 2, 4, ..., n - 2 and returns the first k for which
some t satisfies both, with the smallest such t (at least 2: the cheapest to reconstruct);
:func:`graph_guarantee` evaluates the same bounds for a given (k, t) (malicious SecAgg+ refuses
a configured pair that misses the target against the semi-malicious bound).
The achieved bounds are reported in bits (``-log2`` of the union bounds; ``inf`` when the bad
event is impossible).  As in Google's finder, the hypergeometric population is all n clients.
It reproduces that finder's published degrees and thresholds (e.g. k = 30 / 34 / 38 for
n = 10^3 / 10^4 / 10^6 at 5 % corrupt, 5 % dropouts, semi-honest, sigma = 40, eta = 20) except
where Google raises t to 2 above its correctness quantile (n = 10, 33 % dropouts: it returns
k = 4, t = 2 although P[S < 2] = 3.3 %; this finder returns k = 6).  Each candidate costs O(k)
NumPy work, so n = 10^6 takes milliseconds at these rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedsecure.errors import ConfigurationError

ADVERSARIES = ("semi-honest", "semi-malicious")
MAX_BAD_FRACTION = 0.9
_EPSILON = 1e-9  # a fraction times n within this of an integer is that integer


@dataclass(frozen=True)
class GraphParameters:
    """A degree and threshold for n clients, and the guarantee they reach (in bits)."""

    clients: int
    degree: int
    threshold: int
    corrupt_fraction: float
    dropout_fraction: float
    adversary: str
    security_bits: float
    """``-log2(P1 + P2)``: the chance the server learns more than the sum is below 2^-this."""
    correctness_bits: float
    """``-log2(P3)``: the chance the round cannot recover a dropped client is below 2^-this."""


def find_graph_parameters(clients: int, *, corrupt_fraction: float, dropout_fraction: float,
                          security_bits: float = 40, correctness_bits: float = 20,
                          adversary: str = "semi-honest") -> GraphParameters:
    """The smallest even degree k < n - 1 (and its smallest threshold) meeting both targets.

    Raises ConfigurationError for out-of-range arguments, and when no sparse graph meets
    the targets (then the complete graph of plain SecAgg is the answer).
    """
    n = _positive_int("clients", clients)
    gamma, delta = _fraction("corrupt_fraction", corrupt_fraction), \
        _fraction("dropout_fraction", dropout_fraction)
    if adversary not in ADVERSARIES:
        raise ConfigurationError(f"adversary={adversary!r}: must be one of {ADVERSARIES}")
    bad = gamma + (2 * delta if adversary == "semi-malicious" else delta)
    if bad > MAX_BAD_FRACTION:
        raise ConfigurationError(
            f"corrupt_fraction={gamma}, dropout_fraction={delta}: the {adversary} analysis needs"
            f" corrupt + {'2 * ' if adversary == 'semi-malicious' else ''}dropout <= "
            f"{MAX_BAD_FRACTION} (beyond it the degree approaches n: use the complete graph)")
    sigma = _positive_float("security_bits", security_bits)
    eta = _positive_float("correctness_bits", correctness_bits)
    corrupt = math.floor(gamma * n + _EPSILON)
    dropped = math.floor(delta * n + _EPSILON)
    per_event = 2.0 ** -(sigma + 1)      # P1 and P2 each get half of 2^-sigma
    per_client_leak = per_event / n      # union bound over the n neighbourhoods
    per_client_failure = 2.0 ** -eta / n
    for k in range(2, n - 1, 2):
        disconnected = _disconnected_bound(n, k, corrupt + dropped)
        if disconnected >= per_event:
            continue
        corrupt_tail = _upper_tails(n, corrupt, k)       # P[A >= a], a = 0..k+1
        starved_tail = _lower_tails(n, n - dropped, k)   # P[S < s],  s = 0..k+1
        t = _smallest_threshold(corrupt_tail, per_client_leak, adversary)
        if t > k or starved_tail[t] >= per_client_failure:
            continue
        leak = disconnected + n * corrupt_tail[_breaking_corruptions(t, k, adversary)]
        return GraphParameters(
            clients=n, degree=k, threshold=t, corrupt_fraction=gamma, dropout_fraction=delta,
            adversary=adversary, security_bits=_bits(leak),
            correctness_bits=_bits(n * starved_tail[t]))
    raise ConfigurationError(
        f"clients={n}, corrupt_fraction={gamma}, dropout_fraction={delta}: no sparse Harary graph"
        f" reaches 2^-{sigma} security and 2^-{eta} failure; use the complete graph")


def graph_guarantee(clients: int, degree: int, threshold: int, *, corrupt_fraction: float,
                    dropout_fraction: float, adversary: str = "semi-honest") -> GraphParameters:
    """The guarantee a given (k, t) reaches for n clients, by the same bounds as the finder
    (security_bits 0 when the breaking number of corrupt neighbours is <= 0: always broken)."""
    n = _positive_int("clients", clients)
    gamma, delta = _fraction("corrupt_fraction", corrupt_fraction), \
        _fraction("dropout_fraction", dropout_fraction)
    if adversary not in ADVERSARIES:
        raise ConfigurationError(f"adversary={adversary!r}: must be one of {ADVERSARIES}")
    k, t = _positive_int("degree", degree), _positive_int("threshold", threshold)
    if k % 2 or k > n - 2 or not 2 <= t <= k + 1:
        raise ConfigurationError(f"degree={k}, threshold={t}: need an even k <= n - 2 and"
                                 " 2 <= t <= k + 1")
    corrupt = math.floor(gamma * n + _EPSILON)
    dropped = math.floor(delta * n + _EPSILON)
    breaking = max(_breaking_corruptions(t, k, adversary), 0)
    leak = _disconnected_bound(n, k, corrupt + dropped) \
        + n * _upper_tails(n, corrupt, k)[breaking]
    return GraphParameters(
        clients=n, degree=k, threshold=t, corrupt_fraction=gamma, dropout_fraction=delta,
        adversary=adversary, security_bits=_bits(min(leak, 1.0)),
        correctness_bits=_bits(n * _lower_tails(n, n - dropped, k)[t]))


def _smallest_threshold(corrupt_tail: np.ndarray, limit: float, adversary: str) -> int:
    """Smallest t >= 2 whose breaking number of corrupt neighbours is rarer than ``limit``.

    Semi-honest: P[A >= t] < limit.  Semi-malicious: P[A >= 2t - k - 1] < limit, i.e.
    t = ceil((t_semi_honest + k + 1) / 2).  May exceed k (then no threshold works for this k).
    """
    k = len(corrupt_tail) - 2
    semi_honest = int(np.flatnonzero(corrupt_tail < limit)[0])  # P[A >= k+1] = 0 < limit
    t = semi_honest if adversary == "semi-honest" else -(-(semi_honest + k + 1) // 2)
    return max(t, 2)


def _breaking_corruptions(t: int, k: int, adversary: str) -> int:
    """How many corrupt neighbours break threshold t: t, or 2t - k - 1 (semi-malicious)."""
    return t if adversary == "semi-honest" else 2 * t - k - 1


def _disconnected_bound(n: int, k: int, bad: int) -> float:
    """The union bound P1 on ``bad`` removed clients disconnecting H(n, k)."""
    if k > bad:
        return 0.0
    log_gap_pairs = math.log(n) + math.log(n - k - 1) - math.log(2)
    return math.exp(log_gap_pairs + _log_choose(bad, k) - _log_choose(n, k))


def _log_hypergeometric_pmf(total: int, marked: int, draws: int) -> np.ndarray:
    """log P[X = x], x = 0..draws, X ~ Hypergeometric(total, marked, draws); -inf off support.

    Built from one lgamma anchor and the ratio P[x+1]/P[x] summed cumulatively: O(draws)
    NumPy work, accurate to ~draws ulps.
    """
    low, high = max(0, draws - (total - marked)), min(draws, marked)
    log_pmf = np.full(draws + 1, -np.inf)
    x = np.arange(low, high, dtype=np.float64)
    ratios = np.log((marked - x) * (draws - x) / ((x + 1) * (total - marked - draws + x + 1)))
    anchor = _log_choose(marked, low) + _log_choose(total - marked, draws - low) \
        - _log_choose(total, draws)
    log_pmf[low] = anchor
    log_pmf[low + 1:high + 1] = anchor + np.cumsum(ratios)
    return log_pmf


def _upper_tails(total: int, marked: int, draws: int) -> np.ndarray:
    """P[X >= a] for a = 0..draws+1, summed from the small end."""
    pmf = np.exp(_log_hypergeometric_pmf(total, marked, draws))
    return np.concatenate([np.cumsum(pmf[::-1])[::-1], [0.0]])


def _lower_tails(total: int, marked: int, draws: int) -> np.ndarray:
    """P[X < s] for s = 0..draws+1, summed from the small end."""
    pmf = np.exp(_log_hypergeometric_pmf(total, marked, draws))
    return np.concatenate([[0.0], np.cumsum(pmf)])


def _log_choose(n: int, r: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)


def _bits(p: float) -> float:
    return max(0.0, -math.log2(p)) if p > 0 else math.inf  # p = 1: 0 bits, not -0.0


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name}={value!r}: must be an integer >= 1")
    return value


def _fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigurationError(f"{name}={value!r}: must be a number in [0, 1)")
    return float(value)


def _positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 256:
        raise ConfigurationError(f"{name}={value!r}: must be a number in (0, 256]")
    return float(value)
