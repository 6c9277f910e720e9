"""Driver and simulation behaviour below the protocol: deadlines, stragglers, crashes."""

from __future__ import annotations

import numpy as np
import pytest

from fedsecure.errors import ConfigurationError
from fedsecure.protocols.base import AggregationSpec, ClientDropped, make_aggregator
from fedsecure.runtime.driver import Deadlines
from fedsecure.runtime.faults import Crash, Delay, Silent, parse_fault
from fedsecure.runtime.simulation import simulate_round


def _inputs(n, d):
    return {c: (np.full(d, 0.25), 1) for c in range(1, n + 1)}


@pytest.mark.parametrize("protocol", ["plaintext", "secagg"])
def test_straggler_past_the_deadline_is_dropped(protocol):
    spec = AggregationSpec(n_clients=5, vector_length=3)
    aggregator = make_aggregator(protocol, spec)
    first = "PlainUpdate" if protocol == "plaintext" else "AdvertiseKeys"
    report = simulate_round(aggregator, _inputs(5, 3), faults=[Delay(2, first, seconds=60)],
                            deadlines=Deadlines(default_s=10))
    assert 2 not in report.result.survivors
    assert report.result.total_weight == 4
    dropped = [e for pid, e in report.events if isinstance(e, ClientDropped)]
    assert [(e.client, e.reason) for e in dropped][0][0] == 2
    assert "deadline" in dropped[0].reason


@pytest.mark.parametrize("protocol", ["plaintext", "secagg"])
def test_delay_within_the_deadline_is_waited_for(protocol):
    spec = AggregationSpec(n_clients=4, vector_length=3)
    aggregator = make_aggregator(protocol, spec)
    first = "PlainUpdate" if protocol == "plaintext" else "AdvertiseKeys"
    report = simulate_round(aggregator, _inputs(4, 3), faults=[Delay(3, first, seconds=5)],
                            deadlines=Deadlines(default_s=10))
    assert report.result.survivors == (1, 2, 3, 4)
    assert report.virtual_seconds >= 5


def test_crashed_client_is_dropped_and_its_endpoint_is_dead():
    spec = AggregationSpec(n_clients=5, vector_length=3)
    aggregator = make_aggregator("secagg", spec)
    report = simulate_round(aggregator, _inputs(5, 3), faults=[Crash(4, "MaskedInput")])
    assert report.result.survivors == (1, 2, 3, 5)
    dropped = [e.client for pid, e in report.events if isinstance(e, ClientDropped)]
    assert dropped == [4]
    np.testing.assert_allclose(report.result.mean, 0.25, atol=aggregator.quantization_error)


def test_silent_clients_cost_no_real_waiting():
    spec = AggregationSpec(n_clients=4, vector_length=3)
    aggregator = make_aggregator("plaintext", spec)
    report = simulate_round(aggregator, _inputs(4, 3), faults=[Silent(1, "PlainUpdate")],
                            deadlines=Deadlines(default_s=3600))
    assert report.virtual_seconds == 3600
    assert report.result.survivors == (2, 3, 4)


def test_fault_parsing():
    assert parse_fault("silent", "3:MaskedInput") == Silent(3, "MaskedInput")
    assert parse_fault("crash", "5:UnmaskShares") == Crash(5, "UnmaskShares")
    with pytest.raises(ConfigurationError, match="PARTY:MESSAGE"):
        parse_fault("silent", "three")


def test_bytes_of_a_silenced_message_are_not_counted_as_sent():
    spec = AggregationSpec(n_clients=4, vector_length=50)
    aggregator = make_aggregator("secagg", spec)
    report = simulate_round(aggregator, _inputs(4, 50), faults=[Silent(2, "MaskedInput")])
    assert "MaskedInput" not in report.stats[2].bytes_sent
    assert report.stats[2].bytes_sent["EncryptedShares"] > 0
    assert report.stats[1].bytes_sent["MaskedInput"] > 0
