"""Property: for random n, d, t and dropouts at every phase, the secure result equals the plain
sum of the survivors' quantized inputs exactly, or the round aborts with
InsufficientParticipants when fewer than t remain."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import InsufficientParticipants
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.secagg.helpers import CLIENT_TAGS, exact_sum, grid_inputs, make_secagg


def expected_outcome(n, t, drop_at):
    """Survivors (clients whose input counts) or None if the round must abort."""
    alive = set(range(1, n + 1))
    for tag in CLIENT_TAGS:
        alive -= {c for c, at in drop_at.items() if at == tag}
        if len(alive) < t:
            return None
        if tag == "MaskedInput":
            survivors = sorted(alive)
    return survivors


@st.composite
def scenarios(draw):
    n = draw(st.integers(3, 60))
    t = draw(st.integers(n // 2 + 1, n))
    d = draw(st.integers(1, 40))
    drop_at = draw(st.dictionaries(st.integers(1, n), st.sampled_from(CLIENT_TAGS),
                                   max_size=n))
    seed = draw(st.integers(0, 2**32))
    return n, t, d, drop_at, seed


@settings(max_examples=25)
@given(scenarios())
def test_result_is_exact_sum_of_survivors_or_aborts(scenario):
    n, t, d, drop_at, seed = scenario
    aggregator = make_secagg(n, d, seed=seed, threshold=t)
    inputs = grid_inputs(aggregator, seed)
    faults = [Silent(c, tag) for c, tag in drop_at.items()]
    report = simulate_round(aggregator, inputs, faults=faults)
    survivors = expected_outcome(n, t, drop_at)
    if survivors is None:
        assert isinstance(report.error, InsufficientParticipants)
        assert report.result is None
        return
    assert report.error is None, report.error
    result = report.result
    assert list(result.survivors) == survivors
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(result.weighted_sum, expected)
    assert result.total_weight == weight


@pytest.mark.parametrize("reorder_seed", [1, 2, 3])
def test_arrival_order_does_not_matter(reorder_seed):
    aggregator = make_secagg(7, 16, seed=reorder_seed)
    inputs = grid_inputs(aggregator, 5)
    report = simulate_round(aggregator, inputs, faults=[Silent(2, "MaskedInput")],
                            reorder_seed=reorder_seed)
    expected, weight = exact_sum(aggregator, inputs, [1, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(report.result.weighted_sum, expected)


def test_off_grid_inputs_within_quantization_error():
    aggregator = make_secagg(10, 500, seed=3, scale_bits=16, max_weight=50)
    data = np.random.default_rng(0)
    inputs = {c: (data.normal(0, 0.5, 500), int(data.integers(1, 51))) for c in range(1, 11)}
    report = simulate_round(aggregator, inputs, faults=[Silent(4, "EncryptedShares")])
    result = report.result
    survivors = result.survivors
    plain = sum(inputs[c][1] * np.clip(inputs[c][0], -1, 1) for c in survivors)
    weight = sum(inputs[c][1] for c in survivors)
    assert np.max(np.abs(result.mean - plain / weight)) <= aggregator.quantization_error
    assert result.total_weight == weight
