"""Every (phase x message) pair is legal, or aborts the client / drops the sender (server).

The legal message of a phase is the real one of the same round (CKKS keys are fresh every
round, so a message from another round would fail its content checks); the illegal ones are
samples of every other type from a reference round.
"""

from __future__ import annotations

import msgspec
import pytest

from fedsecure.errors import UnexpectedMessage
from fedsecure.messages import Abort
from fedsecure.messages.ckks import CKKS_MESSAGES
from fedsecure.messages.secagg import AdvertiseKeys
from fedsecure.protocols.base import ClientDropped, LateMessage, RoundAborted
from tests.ckks.helpers import (
    TENSEAL_REASON,
    make_ckks,
    random_inputs,
)
from tests.harness import Harness, events_of

pytest.importorskip("tenseal", reason=TENSEAL_REASON)
pytestmark = pytest.mark.he

N, D = 3, 10
HOLDER, OTHER = 1, 2
CLIENT_LEGAL = {  # (client, phase) -> the one message type it accepts (besides Abort)
    (HOLDER, "advertised"): "CkksKeyRequest",
    (HOLDER, "delivered"): "CkksClientKey",
    (HOLDER, "updated"): "CkksDecryptRequest",
    (OTHER, "advertised"): "CkksClientKey",
}
SERVER_LEGAL = {"collect_keys": "CkksAdvertise", "collect_context": "CkksKeyDelivery",
                "collect_updates": "CkksUpdate", "collect_decryption": "CkksDecryption"}
TYPES = sorted(t.__name__ for t in CKKS_MESSAGES) + ["Abort", "AdvertiseKeys"]


def new_round(seed=31):
    aggregator = make_ckks(N, D, seed=seed)
    return Harness(aggregator, random_inputs(aggregator.spec, seed))


def reference_samples():
    """One envelope of every message type, from an honest round."""
    h = new_round(seed=30)
    samples = {}
    while not h.server.done:
        for envelope in h.to_server:
            samples.setdefault(type(envelope.body).__name__, envelope)
        out = h.run_phase()
        for envelopes in out.values():
            for envelope in envelopes:
                samples.setdefault(type(envelope.body).__name__, envelope)
    for envelope in h.to_server:
        samples.setdefault(type(envelope.body).__name__, envelope)
    any_envelope = samples["CkksAdvertise"]
    samples["Abort"] = msgspec.structs.replace(any_envelope, body=Abort("stop"))
    samples["AdvertiseKeys"] = msgspec.structs.replace(  # another protocol's message
        any_envelope, body=AdvertiseKeys(bytes(range(32)), bytes(range(32))))
    return samples


SAMPLES = reference_samples()


def test_samples_cover_every_type():
    assert set(SAMPLES) == set(TYPES)


def client_at(client_id, phase):
    """A fresh round advanced until ``client_id`` is in ``phase``; also returns the message
    the server would send it next (the legal one)."""
    h = new_round()
    while True:
        h.deliver_to_server()
        out = h.close_phase()
        if h.clients[client_id].phase == phase and client_id in out:
            return h, out[client_id][0]
        h.deliver_to_clients(out)


@pytest.mark.parametrize("message", TYPES)
@pytest.mark.parametrize("client_id, phase", sorted(CLIENT_LEGAL))
def test_client_phase_message_table(client_id, phase, message):
    h, legal = client_at(client_id, phase)
    client = h.clients[client_id]
    client.messages_to_send()
    if message == CLIENT_LEGAL[(client_id, phase)]:
        envelope = legal
    else:
        envelope = msgspec.structs.replace(SAMPLES[message], sender=0, recipient=client_id)
    client.receive(envelope)
    if message == CLIENT_LEGAL[(client_id, phase)]:
        assert client.phase not in ("aborted", phase)
        assert client.messages_to_send(), "a legal message makes the client answer"
    else:
        assert client.phase == "aborted"
        assert client.messages_to_send() == []
        aborted = events_of(client, RoundAborted)
        if message != "Abort":
            assert isinstance(aborted[-1].error, UnexpectedMessage)


@pytest.mark.parametrize("message", TYPES)
@pytest.mark.parametrize("phase", list(SERVER_LEGAL))
def test_server_phase_message_table(phase, message):
    h = new_round()
    h.run_until_server_phase(phase)
    events_of(h.server)
    # The sender the server is waiting for in this phase (key holder for context/decryption).
    sender = OTHER if phase in ("collect_keys", "collect_updates") else HOLDER
    if message == SERVER_LEGAL[phase]:
        envelope = next(e for e in h.to_server if e.sender == sender)
    else:
        envelope = msgspec.structs.replace(SAMPLES[message], sender=sender, recipient=0)
    h.server.receive(envelope)
    events = events_of(h.server)
    if message == SERVER_LEGAL[phase]:
        assert not any(isinstance(e, (ClientDropped, RoundAborted)) for e in events)
        assert sender in h.server._answered
        return
    dropped = [e for e in events if isinstance(e, ClientDropped)]
    assert [(e.client, type(e.error)) for e in dropped] == [(sender, UnexpectedMessage)]
    if sender == HOLDER:  # nobody else can make keys or decrypt
        assert h.server.phase == "aborted"
    else:
        assert h.server.phase == phase


@pytest.mark.parametrize("message", TYPES)
def test_server_ignores_clients_whose_update_is_summed(message):
    """A client whose update is in the encrypted sum cannot be dropped any more: whatever it
    sends next is discarded as a LateMessage and the round goes on."""
    h = new_round()
    h.run_until_server_phase("collect_decryption")
    events_of(h.server)
    h.server.receive(msgspec.structs.replace(SAMPLES[message], sender=OTHER, recipient=0))
    assert [type(e) for e in events_of(h.server)] == [LateMessage]
    h.run_to_end()
    assert h.server.result().survivors == (1, 2, 3)
