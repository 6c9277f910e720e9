"""One bad party may only drop itself: each attack a single hostile client (or a tampering
network) can mount on a SecAgg round ends with the exact sum of the honest survivors, or with a
typed refusal of a total no honest round can produce — never a silently wrong sum."""

from __future__ import annotations

import tracemalloc

import msgspec
import numpy as np
import pytest

from fedsecure.errors import IntegrityError, MalformedMessage, ProtocolAborted
from fedsecure.messages import Abort, ForwardedShares, KeyRoster, RosterEntry
from fedsecure.protocols.base import AggregationSpec, ClientDropped, MessageIgnored, RoundAborted
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Inject
from fedsecure.runtime.simulation import simulate_round
from tests.harness import Harness
from tests.hostile import (
    HostileSecAgg,
    corrupt_unmask_share,
    false_complaints,
    garbage_shares,
    inflated_weight,
    low_order_keys,
    oversized_input,
    writes_to_peers,
)
from tests.secagg.helpers import SESSION, exact_sum, grid_inputs, make_secagg


def hostile_round(n, hostile, *, threshold=None, d=8, seed=0, faults=()):
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=5, session=SESSION)
    aggregator = HostileSecAgg(spec, hostile=hostile, scale_bits=8, threshold=threshold,
                               rng=DeterministicRandom(seed))
    inputs = grid_inputs(aggregator, seed)
    return aggregator, inputs, simulate_round(aggregator, inputs, faults=faults)


def drops(report, party=0):
    return {e.client: e for pid, e in report.events if pid == party and isinstance(e, ClientDropped)}


def assert_exact(aggregator, inputs, report, survivors):
    assert report.error is None, report.error
    assert report.result.survivors == tuple(survivors)
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert report.result.total_weight == weight


@pytest.mark.parametrize("n", [5, 8])
def test_low_order_keys_drop_only_their_sender(n):
    aggregator, inputs, report = hostile_round(n, {3: low_order_keys})
    dropped = drops(report)
    assert set(dropped) == {3}
    assert dropped[3].phase == "collect_keys" and isinstance(dropped[3].error, IntegrityError)
    assert_exact(aggregator, inputs, report, [c for c in range(1, n + 1) if c != 3])


def test_garbage_and_messages_sent_straight_to_peers_are_ignored():
    n = 6
    garbage = Inject(4, before="EncryptedShares", recipients=(1, 2, 3, 5, 6), data=b"\x00junk")
    aggregator, inputs, report = hostile_round(n, {5: writes_to_peers}, faults=[garbage])
    assert drops(report) == {}
    assert_exact(aggregator, inputs, report, range(1, n + 1))
    ignored = {(pid, e.sender) for pid, e in report.events if isinstance(e, MessageIgnored)}
    assert {(c, 4) for c in (1, 2, 3, 5, 6)} <= ignored
    assert {(c, 5) for c in (1, 2, 3, 4, 6)} <= ignored


def test_false_complaints_drop_the_accuser_not_the_accused():
    n = 7
    aggregator, inputs, report = hostile_round(n, {2: false_complaints})
    dropped = drops(report)
    assert set(dropped) == {2}
    assert dropped[2].phase == "collect_openings" and "refuted" in dropped[2].reason
    assert_exact(aggregator, inputs, report, [1, 3, 4, 5, 6, 7])


def test_garbage_shares_drop_their_sender_before_anyone_masks_with_it():
    n = 7
    aggregator, inputs, report = hostile_round(n, {6: garbage_shares})
    dropped = drops(report)
    assert set(dropped) == {6}
    assert dropped[6].phase == "collect_openings"
    assert isinstance(dropped[6].error, IntegrityError)
    assert_exact(aggregator, inputs, report, [1, 2, 3, 4, 5, 7])


@pytest.mark.parametrize("n, threshold", [(7, 4), (5, 4)])
def test_a_corrupted_unmask_share_is_found_and_the_round_finishes(n, threshold):
    # (7, 4): 7 shares of each secret, one wrong, corrected by decoding; (5, 4): only t + 1
    # shares, one wrong: found by trying subsets against the commitment.
    aggregator, inputs, report = hostile_round(n, {3: corrupt_unmask_share}, threshold=threshold)
    dropped = drops(report)
    assert set(dropped) == {3} and dropped[3].phase == "collect_unmask"
    assert_exact(aggregator, inputs, report, range(1, n + 1))  # its input still counts


def test_an_out_of_range_weight_is_refused_not_returned():
    aggregator, inputs, report = hostile_round(6, {2: inflated_weight})
    assert report.result is None
    assert isinstance(report.error, ProtocolAborted)
    assert "total weight" in str(report.error)


def test_an_oversized_message_is_refused_before_decoding():
    aggregator, inputs, report = hostile_round(6, {4: oversized_input})
    dropped = drops(report)
    assert set(dropped) == {4} and isinstance(dropped[4].error, MalformedMessage)
    assert "exceeds" in dropped[4].reason
    assert_exact(aggregator, inputs, report, [1, 2, 3, 5, 6])


def test_peak_memory_is_bounded_whatever_a_client_sends():
    blob = bytes(64 * 2**20)  # 64 MiB of would-be MaskedInput, made before tracing starts
    aggregator = make_secagg(5, 16, seed=9)
    inputs = grid_inputs(aggregator, 9)
    tracemalloc.start()
    try:
        report = simulate_round(aggregator, inputs,
                                faults=[Inject(2, before="MaskedInput", recipients=(0,), data=blob)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 2 in drops(report) and "exceeds" in drops(report)[2].reason
    assert peak < len(blob) // 8, f"peak {peak} bytes: the oversized message was decoded"


# ------------------------------------------------------------------ a tampering network


def _at_forwarded_shares(n=6, seed=3):
    aggregator = make_secagg(n, 8, seed=seed)
    inputs = grid_inputs(aggregator, seed)
    h = Harness(aggregator, inputs)
    return aggregator, inputs, h


def _finish(h):
    while not h.server.done:
        h.run_phase()
    return h.server


def test_a_roster_key_flipped_in_transit_is_detected():
    aggregator, inputs, h = _at_forwarded_shares()
    h.deliver_to_server()
    out = h.close_phase()  # key rosters
    envelope = out[5][0]
    entries = [RosterEntry(e.client, e.encryption_public_key,
                           bytes([e.masking_public_key[0] ^ 1]) + e.masking_public_key[1:])
               if e.client == 2 else e for e in envelope.body.entries]
    out[5][0] = msgspec.structs.replace(envelope, body=KeyRoster(entries))
    h.deliver_to_clients(out)
    server = _finish(h)
    dropped = {e.client: e for e in h.events(server, ClientDropped)}
    assert set(dropped) == {5} and isinstance(dropped[5].error, IntegrityError)
    survivors = [1, 2, 3, 4, 6]
    assert server.result().survivors == tuple(survivors)
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(server.result().weighted_sum, expected)


def test_a_forwarded_share_lost_in_transit_is_detected():
    aggregator, inputs, h = _at_forwarded_shares()
    h.run_phase()  # keys -> rosters
    h.deliver_to_server()
    out = h.close_phase()  # forwarded shares
    envelope = out[3][0]
    out[3][0] = msgspec.structs.replace(
        envelope, body=ForwardedShares([i for i in envelope.body.shares if i.peer != 1]))
    h.deliver_to_clients(out)
    server = _finish(h)
    dropped = {e.client: e for e in h.events(server, ClientDropped)}
    assert set(dropped) == {3}
    expected, _ = exact_sum(aggregator, inputs, [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(server.result().weighted_sum, expected)


# ------------------------------------------------------------------ parties check for themselves


def test_bare_parties_ignore_envelopes_of_another_session_round_or_sender():
    aggregator, inputs, h = _at_forwarded_shares()
    advert = next(e for e in h.to_server if e.sender == 2)
    for forged in (msgspec.structs.replace(advert, session=bytes(16)),
                   msgspec.structs.replace(advert, round=advert.round + 1),
                   msgspec.structs.replace(advert, recipient=3)):
        h.server.receive(forged)
    ignored = h.events(h.server, MessageIgnored)
    assert [e.sender for e in ignored] == [2, 2, 2]
    client = h.clients[1]
    for forged in (msgspec.structs.replace(advert, sender=4, recipient=1, body=Abort("stop")),
                   msgspec.structs.replace(advert, sender=0, recipient=1, session=bytes(16),
                                           body=Abort("stop"))):
        client.receive(forged)
    assert client.phase == "advertised"  # neither a peer nor another session can abort it
    assert len(h.events(client, MessageIgnored)) == 2
    server = _finish(h)
    assert server.result().survivors == (1, 2, 3, 4, 5, 6)
    assert not any(isinstance(e, RoundAborted) for c in h.clients.values()
                   for e in h.events(c))
