"""SecAgg+ rounds: the SecAgg parties on a sparse Harary graph.  Under random dropouts at every
phase the result is the exact sum of the survivors' inputs or a typed abort; hostile clients
drop only themselves, as on the complete graph."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError, InsufficientParticipants
from fedsecure.protocols.base import AggregationSpec, ClientDropped, make_aggregator
from fedsecure.protocols.secagg import CompleteGraph, HararyGraph
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.hostile import BEHAVIOURS, HostileSecAggPlus
from tests.secagg.helpers import CLIENT_TAGS, SESSION, exact_sum, grid_inputs


def make_plus(n, d=6, *, seed=0, **options):
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=4, session=SESSION)
    return make_aggregator("secaggplus", spec, scale_bits=8, rng=DeterministicRandom(seed),
                           **options)


def test_a_large_cohort_gets_a_sparse_graph_and_the_finders_threshold():
    aggregator = make_plus(300)
    assert isinstance(aggregator.graph, HararyGraph)
    assert aggregator.graph.degree == aggregator.parameters.degree < 299
    assert aggregator.threshold == aggregator.parameters.threshold
    assert aggregator.parameters.security_bits >= 40
    assert aggregator.parameters.correctness_bits >= 20


def test_too_few_clients_for_a_sparse_graph_fall_back_to_the_complete_graph():
    aggregator = make_plus(8)
    assert aggregator.parameters is None
    assert isinstance(aggregator.graph, CompleteGraph) and aggregator.threshold == 5


def test_bad_fractions_are_refused():
    with pytest.raises(ConfigurationError, match="corrupt_fraction"):
        make_plus(100, corrupt_fraction=1.5)


def test_every_party_derives_the_same_graph():
    first, second = make_plus(200, seed=1), make_plus(200, seed=2)  # same session and round
    assert all(first.graph.neighbours(c) == second.graph.neighbours(c) for c in range(1, 201))


def test_a_round_with_ten_percent_dropouts_is_exact():
    n = 120
    aggregator = make_plus(n, seed=4)
    inputs = grid_inputs(aggregator, 4)
    silent = {c: CLIENT_TAGS[c % len(CLIENT_TAGS)] for c in range(1, n + 1, 10)}
    report = simulate_round(aggregator, inputs, faults=[Silent(c, t) for c, t in silent.items()])
    assert report.error is None, report.error
    survivors = report.result.survivors
    gone_early = {c for c, tag in silent.items() if tag != "UnmaskShares"}
    assert set(survivors) == set(range(1, n + 1)) - gone_early
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert report.result.total_weight == weight
    # each client talked to its neighbourhood only: rosters carry degree + 1 entries, not n
    client_bytes = max(report.stats[c].total_bytes_received for c in range(2, n + 1))
    assert client_bytes < n * 100


@st.composite
def dropout_scenarios(draw):
    n = draw(st.integers(60, 160))
    silent = draw(st.dictionaries(st.integers(1, n), st.sampled_from(CLIENT_TAGS),
                                  max_size=n // 3))
    return n, silent, draw(st.integers(0, 2**32))


@settings(max_examples=12, deadline=None)
@given(dropout_scenarios())
def test_result_is_the_exact_sum_of_its_survivors_or_a_typed_abort(scenario):
    n, silent, seed = scenario
    aggregator = make_plus(n, seed=seed)
    inputs = grid_inputs(aggregator, seed)
    report = simulate_round(aggregator, inputs, faults=[Silent(c, t) for c, t in silent.items()])
    if report.error is not None:
        assert isinstance(report.error, InsufficientParticipants), report.error
        return
    survivors = report.result.survivors
    gone_early = {c for c, tag in silent.items() if tag != "UnmaskShares"}
    assert not set(survivors) & gone_early
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert report.result.total_weight == weight


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
def test_one_hostile_client_drops_only_itself_on_the_sparse_graph(behaviour):
    n = 80
    spec = AggregationSpec(n_clients=n, vector_length=6, max_weight=4, session=SESSION)
    aggregator = HostileSecAggPlus(spec, hostile={7: BEHAVIOURS[behaviour]}, scale_bits=8,
                                   rng=DeterministicRandom(3))
    assert isinstance(aggregator.graph, HararyGraph)
    inputs = grid_inputs(aggregator, 3)
    report = simulate_round(aggregator, inputs)
    assert report.error is None, report.error
    dropped = {e.client for pid, e in report.events if pid == 0 and isinstance(e, ClientDropped)}
    assert dropped <= {7}
    expected, weight = exact_sum(aggregator, inputs, report.result.survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert set(report.result.survivors) >= set(range(1, n + 1)) - {7}
