"""Lean in-process simulation: inputs made on demand, one upload at a time in the server's
inbox, finished clients released — and the same round as the plain simulation."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import AggregationSpec, RoundFinished, make_aggregator
from fedsecure.runtime.faults import Delay, Silent
from fedsecure.runtime.simulation import simulate_round
from fedsecure.transport.memory import MemoryNetwork

N, D = 24, 50
FAULTS = [Silent(3, "EncryptedShares"), Silent(7, "MaskedInput"), Silent(11, "UnmaskShares")]


def _input(client_id: int) -> tuple[np.ndarray, int]:
    data = np.random.default_rng(client_id)
    return data.uniform(-1, 1, D), int(data.integers(1, 5))


def _aggregator(protocol: str):
    return make_aggregator(protocol, AggregationSpec(n_clients=N, vector_length=D, max_weight=4))


@pytest.mark.parametrize("protocol", ["secagg", "secaggplus"])
def test_lean_round_equals_the_plain_round(protocol):
    made = []

    def on_demand(client_id):
        made.append(client_id)
        return _input(client_id)

    lean = simulate_round(_aggregator(protocol), on_demand, faults=FAULTS, lean=True)
    plain = simulate_round(_aggregator(protocol), {c: _input(c) for c in range(1, N + 1)},
                           faults=FAULTS)
    assert lean.error is None and plain.error is None, (lean.error, plain.error)
    # each input made once, and only when its client masks: client 3 went silent before
    assert sorted(made) == [c for c in range(1, N + 1) if c != 3]
    assert lean.result.survivors == plain.result.survivors
    assert 3 not in lean.result.survivors and 7 not in lean.result.survivors
    assert 11 in lean.result.survivors  # silent after its input was summed
    expected = sum(w * v for c in lean.result.survivors for v, w in [_input(c)])
    bound = lean.result.total_weight * _aggregator(protocol).quantization_error + 1e-9
    np.testing.assert_allclose(lean.result.weighted_sum, expected, atol=bound)
    assert lean.result.total_weight == plain.result.total_weight
    assert set(lean.stats) == set(plain.stats)  # every party's stats are kept
    assert lean.peak_rss_bytes > 0


@pytest.mark.parametrize("protocol", ["secagg", "secaggplus", "plaintext"])
def test_lean_clients_hold_one_input_at_a_time(monkeypatch, protocol):
    """The clients of a lean round do not hold their vectors all at once: when an input is
    made, every earlier one has been used and released."""
    from fedsecure.protocols.phased import PhasedClient

    held: list[weakref.ref] = []
    most_alive = []
    clipped = PhasedClient._clipped

    def tracking(self, vector, weight):
        gc.collect()
        most_alive.append(sum(ref() is not None for ref in held))
        result = clipped(self, vector, weight)
        held.append(weakref.ref(result[0]))
        return result

    monkeypatch.setattr(PhasedClient, "_clipped", tracking)
    report = simulate_round(_aggregator(protocol), _input, lean=True)
    assert report.error is None, report.error
    assert len(most_alive) == N and max(most_alive) == 0


@pytest.mark.parametrize("lean, most", [(True, 1), (False, N)])
def test_server_inbox_holds_one_message_in_lean_mode(monkeypatch, lean, most):
    seen = []
    collect = MemoryNetwork.collect

    def spy(self, party_id):
        messages = collect(self, party_id)
        if party_id == SERVER_ID:
            seen.append(len(messages))
        return messages

    monkeypatch.setattr(MemoryNetwork, "collect", spy)
    report = simulate_round(_aggregator("secaggplus"), _input, lean=lean)
    assert report.error is None, report.error
    assert max(seen) == most


def test_finished_clients_are_released(monkeypatch):
    aggregator = _aggregator("secaggplus")
    parties, make = [], aggregator.client
    alive_when_server_finishes = []

    def tracked(client_id, **kwargs):
        party = make(client_id, **kwargs)
        parties.append(weakref.ref(party))
        return party

    def on_event(party_id, event):
        if party_id == SERVER_ID and isinstance(event, RoundFinished):
            gc.collect()
            alive_when_server_finishes.append(sum(ref() is not None for ref in parties))

    monkeypatch.setattr(aggregator, "client", tracked)
    # client 5's last message leaves late: the server finishes a sweep after everyone else
    report = simulate_round(aggregator, _input, lean=True, on_event=on_event,
                            faults=[Delay(5, "UnmaskShares", seconds=5)])
    assert report.error is None, report.error
    assert len(parties) == N
    assert alive_when_server_finishes == [1]  # only the late client is still held


def test_input_made_on_demand_is_not_counted_as_the_clients_work(monkeypatch):
    """A lean client makes its input inside a step; that time is the caller's: it goes to
    ``input_cpu_seconds``, not to the client's phases.  The driver's clocks are frozen
    except while a source runs, which advances them by 100 s."""
    import fedsecure.runtime.driver as driver_module

    class FrozenClocks:
        now = 0.0

        def perf_counter(self):
            return self.now

        thread_time = perf_counter

    clocks = FrozenClocks()
    monkeypatch.setattr(driver_module, "time", clocks)

    def slow_source(client_id):
        clocks.now += 100.0
        return _input(client_id)

    report = simulate_round(_aggregator("secagg"), slow_source, lean=True)
    assert report.error is None, report.error
    for party_id, stats in report.stats.items():
        assert stats.total_cpu_seconds == 0.0 and stats.total_seconds == 0.0
        assert stats.input_cpu_seconds == (0.0 if party_id == SERVER_ID else 100.0)
