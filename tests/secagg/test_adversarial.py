"""A tampered or replayed share, a server asking for both shares of a peer, bad inputs,
undecodable or spoofed bytes: each gets a typed error and is handled as that party's dropout."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from fedsecure.errors import (
    IntegrityError,
    InvalidInput,
    MalformedMessage,
    UnsafeRequest,
)
from fedsecure.messages import (
    AddressedCiphertext,
    ForwardedShares,
    MaskedInput,
    UnmaskRequest,
)
from fedsecure.protocols.base import ClientDropped, PeerIgnored, RoundAborted
from fedsecure.runtime.faults import Corrupt
from fedsecure.runtime.simulation import simulate_round
from tests.harness import Harness
from tests.secagg.helpers import exact_sum, grid_inputs, make_secagg


def _tamper_forwarded(out, recipient, mutate):
    envelope = out[recipient][0]
    shares = [mutate(item) for item in envelope.body.shares]
    out[recipient][0] = msgspec.structs.replace(envelope, body=ForwardedShares(shares))


def _finish(h: Harness):
    while not h.server.done:
        h.run_phase()
    return h.server


def _unmask_requests(h: Harness) -> dict:
    h.run_until_server_phase("collect_masked")
    h.deliver_to_server()
    return h.close_phase()


def test_share_tampered_on_its_way_to_the_recipient_drops_the_recipient_not_the_sender():
    aggregator = make_secagg(6, 8, seed=1)
    inputs = grid_inputs(aggregator, 1)
    h = Harness(aggregator, inputs)
    h.run_phase()  # keys -> roster
    h.deliver_to_server()
    out = h.close_phase()  # shares -> forwarded shares

    def flip(item):
        if item.peer != 2:
            return item
        ct = bytearray(item.ciphertext)
        ct[20] ^= 0x80
        return AddressedCiphertext(item.peer, item.ephemeral_public_key, bytes(ct))

    _tamper_forwarded(out, 5, flip)
    h.deliver_to_clients(out)
    ignored = [e for e in h.events(h.clients[5]) if isinstance(e, PeerIgnored)]
    assert [e.peer for e in ignored] == [2]
    assert isinstance(ignored[0].error, IntegrityError)
    server = _finish(h)
    dropped = [e for e in h.events(server) if isinstance(e, ClientDropped)]
    assert [(e.client, type(e.error)) for e in dropped] == [(5, IntegrityError)]
    result = server.result()
    assert result.survivors == (1, 2, 3, 4, 6)
    expected, weight = exact_sum(aggregator, inputs, result.survivors)
    np.testing.assert_array_equal(result.weighted_sum, expected)


def test_replayed_share_under_another_sender_label_fails_authentication():
    aggregator = make_secagg(6, 8, seed=2)
    inputs = grid_inputs(aggregator, 2)
    h = Harness(aggregator, inputs)
    h.run_phase()
    h.deliver_to_server()
    out = h.close_phase()
    by_sender = {item.peer: item.ciphertext for item in out[4][0].body.shares}
    # the server replays 1's ciphertext to client 4 claiming it came from 3
    _tamper_forwarded(out, 4, lambda item: AddressedCiphertext(3, item.ephemeral_public_key,
                                                                by_sender[1])
                      if item.peer == 3 else item)
    h.deliver_to_clients(out)
    assert [e.peer for e in h.events(h.clients[4]) if isinstance(e, PeerIgnored)] == [3]
    server = _finish(h)
    assert server.result().survivors == (1, 2, 3, 5, 6)  # 4's view was altered: 4 is dropped


def test_share_replayed_from_another_session_fails_authentication():
    first = make_secagg(5, 4, seed=3)
    h1 = Harness(first, grid_inputs(first, 3))
    h1.run_phase()
    h1.deliver_to_server()
    old = {item.peer: item.ciphertext for item in h1.close_phase()[2][0].body.shares}
    second = make_secagg(5, 4, seed=3, round_number=1)  # same seeds, next round
    h2 = Harness(second, grid_inputs(second, 3))
    h2.run_phase()
    h2.deliver_to_server()
    out = h2.close_phase()
    _tamper_forwarded(out, 2, lambda item: AddressedCiphertext(
        item.peer, item.ephemeral_public_key, old[item.peer]) if item.peer == 1 else item)
    h2.deliver_to_clients(out)
    assert [e.peer for e in h2.events(h2.clients[2]) if isinstance(e, PeerIgnored)] == [1]


def test_client_refuses_to_reveal_both_shares_of_one_peer():
    aggregator = make_secagg(5, 4, seed=4)
    h = Harness(aggregator, grid_inputs(aggregator, 4))
    out = _unmask_requests(h)
    request = out[1][0]
    greedy = msgspec.structs.replace(
        request, body=UnmaskRequest(survivors=[1, 2, 3, 4, 5], dropped=[3]))
    h.clients[1].receive(greedy)
    assert h.clients[1].phase == "aborted"
    assert h.clients[1].messages_to_send() == []
    aborted = [e for e in h.events(h.clients[1]) if isinstance(e, RoundAborted)]
    assert isinstance(aborted[0].error, UnsafeRequest)


def test_client_refuses_unmasking_below_threshold():
    aggregator = make_secagg(5, 4, seed=4)
    h = Harness(aggregator, grid_inputs(aggregator, 4))
    request = _unmask_requests(h)[1][0]
    h.clients[1].receive(msgspec.structs.replace(
        request, body=UnmaskRequest(survivors=[1, 2], dropped=[3, 4, 5])))
    assert h.clients[1].phase == "aborted"
    assert h.clients[1].messages_to_send() == []


BAD_INPUTS = [
    (np.array([0.1, np.nan, 0.2, 0.3]), 1, "non-finite"),
    (np.array([0.1, np.inf, 0.2, 0.3]), 1, "non-finite"),
    (np.zeros(5), 1, "shape"),
    (np.zeros((2, 2)), 1, "shape"),
    (np.zeros(4, dtype=complex), 1, "dtype"),
    (np.array(["a", "b", "c", "d"]), 1, "dtype"),
    (np.zeros(4, dtype=bool), 1, "dtype"),
    (np.zeros(4), 0, "weight"),
    (np.zeros(4), 6, "weight"),
    (np.zeros(4), 1.5, "weight"),
]


@pytest.mark.parametrize("vector, weight, problem", BAD_INPUTS)
def test_bad_input_is_refused_before_anything_is_sent(vector, weight, problem):
    client = make_secagg(5, 4).client(1)
    with pytest.raises(InvalidInput, match=problem):
        client.set_input(vector, weight)
    assert client.messages_to_send() == []
    assert client.phase == "idle"


def test_masked_input_of_wrong_length_drops_that_client_only():
    aggregator = make_secagg(6, 8, seed=5)
    inputs = grid_inputs(aggregator, 5)
    h = Harness(aggregator, inputs)
    h.run_until_server_phase("collect_masked")
    for i, envelope in enumerate(h.to_server):
        if envelope.sender == 3:
            h.to_server[i] = msgspec.structs.replace(envelope, body=MaskedInput(
                bytes(12), envelope.body.masking_set_digest))
    _finish(h)
    dropped = [e for e in h.events(h.server) if isinstance(e, ClientDropped)]
    assert [(e.client, type(e.error)) for e in dropped] == [(3, MalformedMessage)]
    expected, _ = exact_sum(aggregator, inputs, [1, 2, 4, 5, 6])
    np.testing.assert_array_equal(h.server.result().weighted_sum, expected)


@pytest.mark.parametrize("offset", [0, 3, 25, -1])
def test_corrupted_bytes_on_the_wire_drop_the_sender(offset):
    aggregator = make_secagg(6, 8, seed=6)
    inputs = grid_inputs(aggregator, 6)
    report = simulate_round(aggregator, inputs, faults=[Corrupt(2, "EncryptedShares", offset)])
    assert report.error is None
    assert 2 not in report.result.survivors
    expected, _ = exact_sum(aggregator, inputs, report.result.survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)


def test_spoofed_sender_is_dropped_by_the_driver():
    from fedsecure.messages import encode
    from fedsecure.runtime.driver import PartyDriver
    from fedsecure.transport.memory import MemoryNetwork

    aggregator = make_secagg(4, 4, seed=7)
    server = aggregator.server()
    network = MemoryNetwork()
    events = []
    driver = PartyDriver(server, network.endpoint(0),
                         on_event=lambda party, event: events.append(event))
    driver.step()
    impostor = aggregator.client(2)
    impostor.set_input(np.zeros(4), 1)
    impostor.start()
    (envelope,) = impostor.messages_to_send()
    network.post(3, 0, encode(envelope))  # client 3 sends a message claiming to be client 2
    driver.step()
    dropped = [e for e in events if isinstance(e, ClientDropped)]
    assert [(e.client, type(e.error)) for e in dropped] == [(3, MalformedMessage)]
