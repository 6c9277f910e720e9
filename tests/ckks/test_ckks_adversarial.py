"""Misbehaving clients and servers: bad ciphertexts, foreign contexts, forged or missing
signatures, replayed key material, unsafe decryption requests."""

from __future__ import annotations

import functools

import msgspec
import numpy as np
import pytest

from fedsecure.errors import (
    IntegrityError,
    MalformedMessage,
    ProtocolAborted,
    UnsafeRequest,
)
from fedsecure.hazmat import generate_signing_key
from fedsecure.hazmat.ckks import CkksParameters, generate_keys, load_context
from fedsecure.messages import decode, encode
from fedsecure.messages.ckks import CkksAdvertise, CkksUpdate
from fedsecure.protocols.base import ClientDropped, MessageIgnored, RoundAborted
from fedsecure.protocols.ckks import wire
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Corrupt
from fedsecure.runtime.simulation import simulate_round
from tests.ckks.helpers import (
    TENSEAL_REASON,
    TEST_PARAMS,
    make_ckks,
    plain_mean,
    random_inputs,
)
from tests.harness import Harness, events_of

pytest.importorskip("tenseal", reason=TENSEAL_REASON)
pytestmark = pytest.mark.he

N, D = 4, 2500  # two ciphertexts per update


def signing_setup(n=N):
    rng = DeterministicRandom("ckks-signing")
    keys = {c: generate_signing_key(rng) for c in range(1, n + 1)}
    return ({c: k.public for c, k in keys.items()}, {c: k.private for c, k in keys.items()})


def at_updates(**options):
    """A round whose clients' updates are waiting in ``h.to_server``."""
    aggregator = make_ckks(N, D, seed=21, **options)
    inputs = random_inputs(aggregator.spec, 21)
    h = Harness(aggregator, inputs)
    h.run_until_server_phase("collect_updates")
    return aggregator, inputs, h


def tamper(h, sender, change):
    """Replace ``sender``'s pending message body by ``change(body)`` (re-encoded)."""
    for index, envelope in enumerate(h.to_server):
        if envelope.sender == sender:
            body = change(envelope.body)
            h.to_server[index] = decode(encode(msgspec.structs.replace(envelope, body=body)))
            return
    raise AssertionError(f"no pending message from {sender}")


def finish_and_check(aggregator, inputs, h, bad, error_type):
    """Client ``bad`` is dropped with ``error_type``; the others' mean comes out."""
    h.deliver_to_server()
    dropped = events_of(h.server, ClientDropped)
    assert [(e.client, type(e.error)) for e in dropped] == [(bad, error_type)]
    h.run_to_end()
    result = h.server.result()
    survivors = tuple(c for c in range(1, N + 1) if c != bad)
    assert result.survivors == survivors and result.dropped == (bad,)
    expected, weight = plain_mean(aggregator.spec, inputs, survivors)
    assert result.total_weight == weight
    assert np.max(np.abs(result.mean - expected)) <= aggregator.quantization_error


def _garble(chunk: bytes) -> bytes:
    """Overwrite the second half with 0xff bytes so the ciphertext never parses (64 bytes
    are not enough: about 1 in 20 such ciphertexts still parses)."""
    middle = len(chunk) // 2
    return chunk[:middle] + b"\xff" * (len(chunk) - middle)


@functools.cache
def foreign_public():
    """A context of the same parameters under another key (made once)."""
    return load_context(generate_keys(TEST_PARAMS).public_context, TEST_PARAMS)


def _other_parameters_chunks():
    params = CkksParameters(4096, (40, 60), 30)
    return load_context(generate_keys(params).public_context, params).encrypt(np.zeros(D + 1))


BAD_UPDATES = {
    "truncated": (lambda b: msgspec.structs.replace(
        b, ciphertexts=[b.ciphertexts[0][:1000], b.ciphertexts[1]]), MalformedMessage),
    "garbled": (lambda b: msgspec.structs.replace(
        b, ciphertexts=[b.ciphertexts[0], _garble(b.ciphertexts[1])]), MalformedMessage),
    "junk": (lambda b: msgspec.structs.replace(
        b, ciphertexts=[bytes(range(256)) * 8, b.ciphertexts[1]]), MalformedMessage),
    "too-few-ciphertexts": (lambda b: msgspec.structs.replace(
        b, ciphertexts=b.ciphertexts[:1]), MalformedMessage),
    "swapped-ciphertexts": (lambda b: msgspec.structs.replace(
        b, ciphertexts=b.ciphertexts[::-1]), MalformedMessage),  # lengths 2048 / 453 differ
    "foreign-context": (lambda b: CkksUpdate(
        foreign_public().fingerprint, foreign_public().encrypt(np.zeros(D + 1))),
        IntegrityError),
    "other-parameters": (lambda b: msgspec.structs.replace(
        b, ciphertexts=_other_parameters_chunks()), MalformedMessage),
}


@pytest.mark.parametrize("case", sorted(BAD_UPDATES))
def test_bad_update_drops_the_client(case):
    change, error_type = BAD_UPDATES[case]
    aggregator, inputs, h = at_updates()
    tamper(h, 3, change)
    finish_and_check(aggregator, inputs, h, 3, error_type)


def test_well_formed_garbage_under_our_fingerprint_aborts_instead_of_a_wrong_result():
    """A ciphertext under another key that claims our context cannot be told apart from a
    good one; decrypting the sum then gives values out of range, and the round aborts."""
    _, _, h = at_updates()
    tamper(h, 2, lambda b: msgspec.structs.replace(
        b, ciphertexts=foreign_public().encrypt(np.zeros(D + 1))))
    h.run_to_end()
    assert isinstance(h.server.aborted, ProtocolAborted)
    assert "out of range" in str(h.server.aborted)


def test_repeated_update_is_ignored_not_double_counted():
    aggregator, inputs, h = at_updates()
    h.to_server.append(next(e for e in h.to_server if e.sender == 2))
    h.deliver_to_server()
    assert [type(e) for e in events_of(h.server, MessageIgnored)] == [MessageIgnored]
    h.run_to_end()
    result = h.server.result()
    expected, weight = plain_mean(aggregator.spec, inputs, (1, 2, 3, 4))
    assert result.total_weight == weight
    assert np.max(np.abs(result.mean - expected)) <= aggregator.quantization_error


def test_small_order_advertised_key_is_refused():
    aggregator = make_ckks(N, 20)
    inputs = random_inputs(aggregator.spec, 22)
    h = Harness(aggregator, inputs)
    tamper(h, 4, lambda b: CkksAdvertise(bytes(32)))  # the all-zero point has small order
    h.deliver_to_server()
    dropped = events_of(h.server, ClientDropped)
    assert [(e.client, type(e.error)) for e in dropped] == [(4, IntegrityError)]
    h.run_to_end()
    assert h.server.result().survivors == (1, 2, 3)


# ------------------------------------------------------------------ signatures


@pytest.mark.parametrize("case", ["forged", "unsigned", "other-client-key", "tampered-body"])
def test_bad_signature_drops_the_client(case):
    public, private = signing_setup()
    aggregator, inputs, h = at_updates(signing_public_keys=public, client_signing_keys=private)
    index, envelope = next((i, e) for i, e in enumerate(h.to_server) if e.sender == 3)
    wire.verify_envelope(envelope, public[3])  # the honest message is signed
    body = envelope.body
    if case == "forged":
        envelope = wire.sign_envelope(envelope, generate_signing_key(DeterministicRandom(9)).private)
    elif case == "unsigned":
        envelope = msgspec.structs.replace(
            envelope, body=msgspec.structs.replace(body, signature=b""))
    elif case == "other-client-key":
        envelope = wire.sign_envelope(envelope, private[2])
    else:
        chunk = bytearray(body.ciphertexts[1])
        chunk[len(chunk) // 2] ^= 1  # still a valid ciphertext: only the signature notices
        envelope = msgspec.structs.replace(envelope, body=msgspec.structs.replace(
            body, ciphertexts=[body.ciphertexts[0], bytes(chunk)]))
    h.to_server[index] = envelope
    finish_and_check(aggregator, inputs, h, 3, IntegrityError)


@pytest.mark.parametrize("field, value", [("session", bytes(16)), ("round", 1), ("sender", 2),
                                          ("recipient", 5), ("version", 2)])
def test_signature_binds_every_header_field(field, value):
    public, private = signing_setup()
    aggregator = make_ckks(N, 20, signing_public_keys=public, client_signing_keys=private)
    client = aggregator.client(3)
    client.set_input(np.zeros(20), 1)
    client.start()
    (envelope,) = client.messages_to_send()
    wire.verify_envelope(envelope, public[3])
    with pytest.raises(IntegrityError, match="party 3|party 2"):
        wire.verify_envelope(msgspec.structs.replace(envelope, **{field: value}), public[3])


def test_signed_round_with_corruption_in_transit():
    """A bit flipped inside a ciphertext is caught by the signature (client dropped)..."""
    public, private = signing_setup()
    aggregator = make_ckks(N, D, signing_public_keys=public, client_signing_keys=private)
    inputs = random_inputs(aggregator.spec, 23)
    report = simulate_round(aggregator, inputs, faults=(Corrupt(2, "CkksUpdate", offset=30000),))
    assert report.error is None, report.error
    assert report.result.survivors == (1, 3, 4)
    dropped = [e for pid, e in report.events if pid == 0 and isinstance(e, ClientDropped)]
    assert [(e.client, type(e.error)) for e in dropped] == [(2, IntegrityError)]
    expected, _ = plain_mean(aggregator.spec, inputs, (1, 3, 4))
    assert np.max(np.abs(report.result.mean - expected)) <= aggregator.quantization_error


@pytest.mark.parametrize("offset", [3000, 30000, 60000])
def test_unsigned_round_with_corruption_in_transit_never_gives_a_wrong_result(offset):
    """...without signatures the flip either breaks SEAL's compressed stream (the client is
    dropped) or reaches the sum (the range check aborts): never a silently wrong mean."""
    aggregator = make_ckks(N, D)
    inputs = random_inputs(aggregator.spec, 23)
    report = simulate_round(aggregator, inputs, faults=(Corrupt(2, "CkksUpdate", offset=offset),))
    if report.error is not None:
        assert isinstance(report.error, ProtocolAborted) and "out of range" in str(report.error)
        return
    dropped = [e for pid, e in report.events if pid == 0 and isinstance(e, ClientDropped)]
    assert [(e.client, type(e.error)) for e in dropped] == [(2, MalformedMessage)]
    expected, _ = plain_mean(aggregator.spec, inputs, (1, 3, 4))
    assert np.max(np.abs(report.result.mean - expected)) <= aggregator.quantization_error


def test_forged_key_holder_message_aborts():
    public, private = signing_setup()
    aggregator = make_ckks(N, 20, signing_public_keys=public, client_signing_keys=private)
    h = Harness(aggregator, random_inputs(aggregator.spec, 24))
    h.run_until_server_phase("collect_context")
    h.to_server[0] = wire.sign_envelope(h.to_server[0], private[2])
    h.deliver_to_server()
    assert h.server.phase == "aborted"
    assert isinstance(h.server.aborted, ProtocolAborted)


# ------------------------------------------------------------------ a misbehaving server


def test_key_material_replayed_to_another_client_fails_authentication():
    aggregator = make_ckks(N, 20)
    h = Harness(aggregator, random_inputs(aggregator.spec, 25))
    h.run_until_server_phase("collect_context")
    h.deliver_to_server()
    out = h.close_phase()
    out[3] = [msgspec.structs.replace(out[2][0], recipient=3)]  # client 2's material to 3
    h.deliver_to_clients(out)
    aborted = events_of(h.clients[3], RoundAborted)
    assert h.clients[3].phase == "aborted" and isinstance(aborted[-1].error, IntegrityError)
    assert h.clients[2].done and h.clients[2].phase == "done"


@pytest.mark.parametrize("change, error_type", [
    (lambda b: msgspec.structs.replace(b, survivors=b.survivors[:1]), UnsafeRequest),
    (lambda b: msgspec.structs.replace(b, context_fingerprint=bytes(32)), IntegrityError),
    (lambda b: msgspec.structs.replace(b, survivors=[1, 1, 2]), MalformedMessage),
    (lambda b: msgspec.structs.replace(b, ciphertexts=b.ciphertexts[:1]), MalformedMessage),
])
def test_key_holder_refuses_unsafe_decryption_requests(change, error_type):
    aggregator = make_ckks(N, D)
    h = Harness(aggregator, random_inputs(aggregator.spec, 26))
    h.run_until_server_phase("collect_updates")
    h.deliver_to_server()
    out = h.close_phase()
    (envelope,) = out[1]
    out[1] = [msgspec.structs.replace(envelope, body=change(envelope.body))]
    h.deliver_to_clients(out)
    holder = h.clients[1]
    assert holder.phase == "aborted" and holder.messages_to_send() == []
    assert isinstance(events_of(holder, RoundAborted)[-1].error, error_type)


def test_key_holder_answers_one_decryption_request_only():
    aggregator = make_ckks(N, 20)
    h = Harness(aggregator, random_inputs(aggregator.spec, 27))
    h.run_until_server_phase("collect_updates")
    h.deliver_to_server()
    out = h.close_phase()
    h.deliver_to_clients(out)
    assert len(h.to_server) == 1  # the decryption
    h.deliver_to_clients(out)  # the same request again
    assert h.to_server[1:] == [] and h.clients[1].done
