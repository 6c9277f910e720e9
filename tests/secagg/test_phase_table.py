"""Every (phase x message) pair is either legal or aborts the party (client) / drops the
sender (server).  Sample messages of every type come from an honest round."""

from __future__ import annotations

import msgspec
import pytest

from fedsecure.messages import (
    Abort,
    ConsistencyCheck,
    ConsistencySignature,
    OpenRequest,
    ShareOpenings,
)
from fedsecure.messages.secagg import SECAGG_MESSAGES
from fedsecure.protocols.base import ClientDropped
from tests.harness import Harness
from tests.secagg.helpers import grid_inputs, make_secagg

CLIENT_PHASES = ["advertised", "shared", "receipted", "masked"]
SERVER_PHASES = ["collect_keys", "collect_shares", "collect_receipts", "collect_masked",
                 "collect_unmask"]
LEGAL_FOR_CLIENT = {"advertised": {"KeyRoster"}, "shared": {"ForwardedShares"},
                    "receipted": {"OpenRequest", "MaskingSet"}, "masked": {"UnmaskRequest"}}
LEGAL_FOR_SERVER = {"collect_keys": "AdvertiseKeys", "collect_shares": "EncryptedShares",
                    "collect_receipts": "ShareReceipt", "collect_masked": "MaskedInput",
                    "collect_unmask": "UnmaskShares"}


def honest_samples():
    """One envelope of each message type from an honest 4-client round (client 1's view); the
    complaint phase's messages, which an honest round never sends, and the malicious mode's
    consistency round are made up."""
    aggregator = make_secagg(4, 4, seed=11)
    h = Harness(aggregator, grid_inputs(aggregator, 11))
    samples = {}
    for _ in range(5):
        for envelope in h.to_server:
            samples.setdefault(type(envelope.body).__name__, envelope)
        h.deliver_to_server()
        if h.server.done:
            break
        out = h.close_phase()
        for envelope in out.get(1, []):
            samples.setdefault(type(envelope.body).__name__, envelope)
        h.deliver_to_clients(out)
    samples["Abort"] = msgspec.structs.replace(samples["KeyRoster"], body=Abort("stop"))
    samples["OpenRequest"] = msgspec.structs.replace(samples["KeyRoster"], body=OpenRequest([2]))
    samples["ShareOpenings"] = msgspec.structs.replace(samples["ShareReceipt"],
                                                       body=ShareOpenings([]))
    # the consistency round exists only in malicious mode: never legal in these tables
    samples["ConsistencyCheck"] = msgspec.structs.replace(samples["KeyRoster"],
                                                          body=ConsistencyCheck([1, 2, 3, 4]))
    samples["ConsistencySignature"] = msgspec.structs.replace(
        samples["ShareReceipt"], body=ConsistencySignature(bytes(64)))
    return samples


SAMPLES = honest_samples()
ALL_TYPES = sorted(t.__name__ for t in SECAGG_MESSAGES)


def harness_at_client_phase(phase):
    """A fresh round (same seeds as SAMPLES) advanced until client 1 is in ``phase``."""
    aggregator = make_secagg(4, 4, seed=11)
    h = Harness(aggregator, grid_inputs(aggregator, 11))
    while h.clients[1].phase != phase:
        h.run_phase()
    return h


@pytest.mark.parametrize("message", ALL_TYPES)
@pytest.mark.parametrize("phase", CLIENT_PHASES)
def test_client_phase_message_table(phase, message):
    h = harness_at_client_phase(phase)
    client = h.clients[1]
    envelope = msgspec.structs.replace(SAMPLES[message], sender=0, recipient=1)
    client.receive(envelope)
    if message in LEGAL_FOR_CLIENT[phase]:
        assert client.phase not in ("aborted", phase)
        assert client.messages_to_send(), "a legal message makes the client answer"
    else:
        assert client.phase == "aborted"
        assert client.messages_to_send() == []


@pytest.mark.parametrize("message", ALL_TYPES)
@pytest.mark.parametrize("phase", SERVER_PHASES)
def test_server_phase_message_table(phase, message):
    aggregator = make_secagg(4, 4, seed=11)
    h = Harness(aggregator, grid_inputs(aggregator, 11))
    while h.server.phase != phase:
        h.run_phase()
    h.events(h.server)
    envelope = msgspec.structs.replace(SAMPLES[message], sender=1, recipient=0)
    h.server.receive(envelope)
    dropped = [e.client for e in h.events(h.server) if isinstance(e, ClientDropped)]
    if message == LEGAL_FOR_SERVER[phase]:
        assert dropped == []  # same seeds: the sample is exactly client 1's real message
    else:
        assert dropped == [1]
    assert h.server.phase == phase  # the server itself never aborts for one client
