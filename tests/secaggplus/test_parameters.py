"""The SecAgg+ parameter finder: Google's published values, and exact-arithmetic checks."""

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError
from fedsecure.protocols.secagg.parameters import find_graph_parameters, graph_guarantee

SH, SM = "semi-honest", "semi-malicious"

# (n, corrupt, dropout, adversary, degree, threshold) from the test table of Google's
# federated-compute fcp/secagg/server/graph_parameter_finder_test.cc (sigma = 40, eta = 20).
# Google checks degree == and threshold <=; this finder reproduces both exactly for the
# semi-honest rows.  Semi-malicious rows differ by design: this finder also counts the share
# a surviving owner reveals of its own seed (2t - k - 1 corrupt neighbours break t, Google
# uses 2t - k), so its threshold is the same or one higher, and the degree the same or higher.
GOOGLE = [
    (100, .45, .45, SH, 92, 46), (1000, .45, .45, SH, 822, 417), (10000, .45, .45, SH, 3494, 1771),
    (10, .33, .33, SH, 8, 4), (100, .33, .33, SH, 68, 34), (1000, .33, .33, SH, 286, 150),
    (10000, .33, .33, SH, 422, 221), (100000, .33, .33, SH, 480, 251),
    (1000000, .33, .33, SH, 518, 270),
    (100, .3, .3, SM, 92, 62), (1000, .3, .3, SM, 872, 584),
    (100, .05, .33, SH, 28, 6), (1000, .05, .33, SH, 72, 24), (10000, .05, .33, SH, 86, 29),
    (100000, .05, .33, SH, 96, 32), (1000000, .05, .33, SH, 102, 34),
    (10, .05, .33, SM, 8, 5), (100, .05, .33, SM, 72, 39), (1000, .05, .33, SM, 398, 223),
    (10000, .05, .33, SM, 746, 420), (100000, .05, .33, SM, 882, 496),
    (1000000, .05, .33, SM, 970, 545),
    (10, .33, .05, SH, 4, 4), (100, .33, .05, SH, 34, 29), (1000, .33, .05, SH, 78, 60),
    (10000, .33, .05, SH, 92, 70), (100000, .33, .05, SH, 102, 77), (1000000, .33, .05, SH, 110, 83),
    (10, .33, .05, SM, 4, 4), (100, .33, .05, SM, 42, 37), (1000, .33, .05, SM, 132, 109),
    (10000, .33, .05, SM, 178, 146), (100000, .33, .05, SM, 196, 160),
    (1000000, .33, .05, SM, 212, 173),
    (10, .05, .05, SH, 2, 2), (100, .05, .05, SH, 12, 6), (1000, .05, .05, SH, 30, 17),
    (10000, .05, .05, SH, 34, 20), (100000, .05, .05, SH, 36, 21), (1000000, .05, .05, SH, 38, 22),
    (10, .05, .05, SM, 2, 2), (100, .05, .05, SM, 16, 11), (1000, .05, .05, SM, 52, 37),
    (10000, .05, .05, SM, 62, 44), (100000, .05, .05, SM, 68, 48), (1000000, .05, .05, SM, 74, 52),
    (10, .33, 0, SH, 4, 4), (100, .33, 0, SH, 26, 25), (1000, .33, 0, SH, 38, 36),
    (1000000, .33, 0, SH, 50, 47), (10, .33, 0, SM, 4, 4), (100, .33, 0, SM, 26, 26),
    (1000000, .33, 0, SM, 50, 49),
    (100, 0, .33, SH, 26, 2), (1000000, 0, .33, SH, 50, 2),
    (10, 0, .33, SM, 8, 5), (1000, 0, .33, SM, 228, 115), (1000000, 0, .33, SM, 410, 206),
    (10, 0, 0, SH, 2, 2), (1000000, 0, 0, SH, 2, 2), (1000000, 0, 0, SM, 2, 2),
]


@pytest.mark.parametrize("n,corrupt,dropout,adversary,degree,threshold",
                         [row for row in GOOGLE if row[3] == SH])
def test_reproduces_googles_published_semi_honest_parameters(n, corrupt, dropout, adversary,
                                                             degree, threshold):
    found = find_graph_parameters(n, corrupt_fraction=corrupt, dropout_fraction=dropout,
                                  adversary=adversary)
    assert (found.degree, found.threshold) == (degree, threshold)
    assert found.security_bits >= 40 and found.correctness_bits > 20


@pytest.mark.parametrize("n,corrupt,dropout,adversary,degree,threshold",
                         [row for row in GOOGLE if row[3] == SM])
def test_semi_malicious_parameters_are_googles_or_stricter(n, corrupt, dropout, adversary,
                                                           degree, threshold):
    found = find_graph_parameters(n, corrupt_fraction=corrupt, dropout_fraction=dropout,
                                  adversary=adversary)
    assert found.degree >= degree
    if found.degree == degree:
        assert found.threshold in (threshold, threshold + 1)
    assert found.security_bits >= 40 and found.correctness_bits > 20


def breakable_by_equivocation(k: int, corrupt: int, t: int) -> bool:
    """Can a server that lies about who dropped collect t shares of both of u's secrets?

    u's share holders: k neighbours (``corrupt`` of them colluding, who give both shares)
    and u itself (alive: it gives its own seed share, never its own key share).  Each honest
    neighbour gives one share, the one its story asks for; try every split.
    """
    honest = k - corrupt
    return any(corrupt + told_alive + 1 >= t and corrupt + (honest - told_alive) >= t
               for told_alive in range(honest + 1))


@pytest.mark.parametrize("k", [2, 4, 6, 10, 16])
def test_equivocation_breaks_threshold_t_exactly_from_2t_minus_k_minus_1_corrupt(k):
    for t in range(2, k + 2):
        for corrupt in range(k + 1):
            assert breakable_by_equivocation(k, corrupt, t) == (corrupt >= 2 * t - k - 1)


def test_the_issue_check_5_percent_corrupt_5_percent_dropouts():
    degrees = [find_graph_parameters(n, corrupt_fraction=0.05, dropout_fraction=0.05).degree
               for n in (10**3, 10**4, 10**6)]
    assert degrees == [30, 34, 38]


@pytest.mark.parametrize("corrupt", [0.0, 0.05])
def test_where_google_clamps_the_threshold_past_its_correctness_bound(corrupt):
    """n = 10, 33 % dropouts: Google returns k = 4, t = 2, yet with 3 dropouts a client's 4
    neighbours keep < 2 survivors with probability C(7,1) C(3,3) / C(10,4) = 1/30, far above
    2^-20 / 10.  The next degree, 6, always keeps >= 3 survivors."""
    assert exact_tail(10, 7, 4, 0, 2) == Fraction(1, 30)
    found = find_graph_parameters(10, corrupt_fraction=corrupt, dropout_fraction=0.33)
    assert (found.degree, found.threshold) == (6, 2) and found.correctness_bits == math.inf


# -- an independent check in exact rational arithmetic ------------------------------------

def exact_tail(total: int, marked: int, draws: int, low: int, high: int) -> Fraction:
    """P[low <= X < high] for X ~ Hypergeometric(total, marked, draws), exactly."""
    hits = sum(math.comb(marked, x) * math.comb(total - marked, draws - x)
               for x in range(max(low, 0), min(high, draws + 1)))
    return Fraction(hits, math.comb(total, draws))


def exact_threshold(n, k, corrupt, dropped, sigma, eta, adversary):
    """The smallest valid threshold for degree k by the analysis, exactly; None if none."""
    per_event = Fraction(1, 2 ** (sigma + 1))
    gap_pairs = Fraction(n * (n - k - 1), 2)
    if k <= corrupt + dropped and \
            gap_pairs * Fraction(math.comb(corrupt + dropped, k), math.comb(n, k)) >= per_event:
        return None
    def breaking(t):  # corrupt neighbours that break threshold t
        return t if adversary == SH else 2 * t - k - 1

    secure = [t for t in range(2, k + 1)
              if n * exact_tail(n, corrupt, k, max(breaking(t), 0), k + 1) < per_event]
    if not secure or n * exact_tail(n, n - dropped, k, 0, secure[0]) >= Fraction(1, 2 ** eta):
        return None
    return secure[0]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(10, 3000), corrupt_pct=st.integers(0, 20), dropout_pct=st.integers(0, 20),
       adversary=st.sampled_from([SH, SM]), sigma=st.sampled_from([20, 40]),
       eta=st.sampled_from([10, 20]))
def test_degree_and_threshold_are_minimal_and_meet_the_bounds_exactly(
        n, corrupt_pct, dropout_pct, adversary, sigma, eta):
    gamma, delta = corrupt_pct / 100, dropout_pct / 100
    corrupt, dropped = n * corrupt_pct // 100, n * dropout_pct // 100
    try:
        found = find_graph_parameters(n, corrupt_fraction=gamma, dropout_fraction=delta,
                                      security_bits=sigma, correctness_bits=eta,
                                      adversary=adversary)
    except ConfigurationError:
        found = None
    smaller = range(2, n - 1 if found is None else found.degree, 2)
    assert all(exact_threshold(n, k, corrupt, dropped, sigma, eta, adversary) is None
               for k in smaller)
    if found is not None:
        assert found.threshold == exact_threshold(n, found.degree, corrupt, dropped, sigma, eta,
                                                  adversary)
        assert found.security_bits >= sigma and found.correctness_bits > eta


def test_reports_the_guarantee_it_reached():
    found = find_graph_parameters(1000, corrupt_fraction=0.05, dropout_fraction=0.05)
    n, k, t = 1000, found.degree, found.threshold
    leak = Fraction(n * (n - k - 1), 2) * Fraction(math.comb(100, k), math.comb(n, k)) \
        + n * exact_tail(n, 50, k, t, k + 1)
    failure = n * exact_tail(n, 950, k, 0, t)
    assert found.security_bits == pytest.approx(-math.log2(leak), rel=1e-9)
    assert found.correctness_bits == pytest.approx(-math.log2(failure), rel=1e-9)
    assert (found.clients, found.corrupt_fraction, found.dropout_fraction, found.adversary) == \
        (1000, 0.05, 0.05, SH)


@pytest.mark.parametrize("kwargs", [
    dict(clients=0), dict(clients=True), dict(clients=10.0),
    dict(corrupt_fraction=-0.1), dict(corrupt_fraction=1.0), dict(dropout_fraction=1.5),
    dict(dropout_fraction="0.1"), dict(adversary="malicious"),
    dict(security_bits=0), dict(correctness_bits=-1), dict(security_bits=1000),
    dict(corrupt_fraction=0.5, dropout_fraction=0.45),
    dict(corrupt_fraction=0.3, dropout_fraction=0.31, adversary=SM),
])
def test_refuses_bad_arguments(kwargs):
    arguments = dict(clients=1000, corrupt_fraction=0.05, dropout_fraction=0.05) | kwargs
    with pytest.raises(ConfigurationError):
        find_graph_parameters(arguments.pop("clients"), **arguments)


def test_refuses_when_no_sparse_graph_is_secure():
    with pytest.raises(ConfigurationError, match="complete graph"):
        find_graph_parameters(5, corrupt_fraction=0.4, dropout_fraction=0.4)


@pytest.mark.parametrize("adversary", ["semi-honest", "semi-malicious"])
@pytest.mark.parametrize("n, gamma, delta", [(1000, 0.05, 0.05), (300, 0.05, 0.1),
                                             (5000, 0.02, 0.2)])
def test_the_guarantee_of_the_finders_choice_is_what_the_finder_reports(n, gamma, delta,
                                                                        adversary):
    found = find_graph_parameters(n, corrupt_fraction=gamma, dropout_fraction=delta,
                                  adversary=adversary)
    assert graph_guarantee(n, found.degree, found.threshold, corrupt_fraction=gamma,
                           dropout_fraction=delta, adversary=adversary) == found
    # one below the finder's threshold misses the security target
    weaker = graph_guarantee(n, found.degree, found.threshold - 1, corrupt_fraction=gamma,
                             dropout_fraction=delta, adversary=adversary)
    assert found.threshold == 2 or weaker.security_bits < 40


def test_a_threshold_a_lying_server_always_breaks_has_no_security():
    # 2t - k - 1 <= 0: the honest holders' single shares already give t of both secrets
    weak = graph_guarantee(100, 16, 8, corrupt_fraction=0.05, dropout_fraction=0.1,
                           adversary="semi-malicious")
    assert weak.security_bits == 0
    assert graph_guarantee(100, 16, 8, corrupt_fraction=0.05, dropout_fraction=0.1).security_bits > 0
    with pytest.raises(ConfigurationError):
        graph_guarantee(100, 15, 8, corrupt_fraction=0.05, dropout_fraction=0.1)


def test_a_certain_bad_event_reports_zero_bits_not_negative_zero():
    """A degree-2 ring with 30 % corrupt and 30 % dropped clients: the bounds reach 1."""
    reached = graph_guarantee(100, 2, 2, corrupt_fraction=0.3, dropout_fraction=0.3)
    for bits in (reached.security_bits, reached.correctness_bits):
        assert bits == 0.0 and math.copysign(1.0, bits) == 1.0
