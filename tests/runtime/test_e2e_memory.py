"""The shared end-to-end scenarios (tests/e2e_scenarios.py), in one process over the memory
transport; tests/mpi runs the very same list as MPI ranks."""

from __future__ import annotations

import numpy as np
import pytest

from fedsecure.errors import InsufficientParticipants
from fedsecure.protocols.base import make_aggregator
from fedsecure.runtime.driver import Deadlines
from fedsecure.runtime.simulation import simulate_round
from tests.e2e_scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_over_memory_transport(scenario):
    if scenario.skip_reason():
        pytest.skip(scenario.skip_reason())
    aggregator = make_aggregator(scenario.protocol, scenario.spec())
    report = simulate_round(aggregator, scenario.inputs(), faults=scenario.faults,
                            deadlines=Deadlines(default_s=scenario.deadline_s))
    if scenario.aborts:
        assert isinstance(report.error, InsufficientParticipants)
        return
    assert report.error is None, report.error
    assert report.result.survivors == scenario.survivors
    expected, weight = scenario.expected_sum()
    assert report.result.total_weight == weight
    np.testing.assert_allclose(report.result.weighted_sum, expected,
                               atol=weight * aggregator.quantization_error + 1e-9)
