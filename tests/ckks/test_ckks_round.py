"""End-to-end CKKS rounds through the in-process simulation: the encrypted average equals the
plaintext average within the documented bound; dropouts cost nothing; the aggregator only
ever holds public key material."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from fedsecure.errors import InsufficientParticipants, ProtocolAborted
from fedsecure.hazmat.ckks import generate_keys
from fedsecure.messages.ckks import CkksClientKey, CkksKeyDelivery
from fedsecure.protocols.base import ClientDropped, RoundFinished
from fedsecure.runtime.driver import Deadlines
from fedsecure.runtime.faults import Crash, Delay, Silent
from fedsecure.runtime.simulation import simulate_round
from tests.ckks.helpers import (
    TENSEAL_REASON,
    make_ckks,
    plain_mean,
    random_inputs,
)
from tests.harness import Harness

ts = pytest.importorskip("tenseal", reason=TENSEAL_REASON)
pytestmark = pytest.mark.he


def server_events(report, kind):
    return [e for pid, e in report.events if pid == 0 and isinstance(e, kind)]


@pytest.mark.parametrize("n, d, max_weight, clip, seed", [
    (3, 1, 1, 1.0, 0),
    (4, 2047, 7, 0.5, 1),  # d + 1 = 2048: exactly one full ciphertext
    (5, 2048, 100, 2.0, 2),  # the weight spills into a second ciphertext
    (6, 5000, 1000, 0.01, 3),
])
def test_encrypted_mean_equals_plain_mean(n, d, max_weight, clip, seed):
    aggregator = make_ckks(n, d, max_weight=max_weight, clip=clip, seed=seed)
    inputs = random_inputs(aggregator.spec, seed)
    report = simulate_round(aggregator, inputs, reorder_seed=seed)
    assert report.error is None, report.error
    result = report.result
    assert result.survivors == tuple(range(1, n + 1)) and result.dropped == ()
    expected, weight = plain_mean(aggregator.spec, inputs, result.survivors)
    assert result.total_weight == weight  # decoded exactly (rounded integer)
    assert np.max(np.abs(result.mean - expected)) <= aggregator.quantization_error


@pytest.mark.parametrize("faults, survivors", [
    ((Silent(2, "CkksUpdate"),), (1, 3, 4, 5)),
    ((Silent(3, "CkksAdvertise"), Crash(5, "CkksUpdate")), (1, 2, 4)),
    ((Crash(4, "CkksAdvertise"), Silent(2, "CkksUpdate")), (1, 3, 5)),
])
def test_dropouts_give_the_mean_of_the_rest(faults, survivors):
    aggregator = make_ckks(5, 300, seed=4)
    inputs = random_inputs(aggregator.spec, 4)
    report = simulate_round(aggregator, inputs, faults=faults)
    assert report.error is None, report.error
    assert report.result.survivors == survivors
    assert report.result.dropped == tuple(sorted(set(range(1, 6)) - set(survivors)))
    assert {e.client for e in server_events(report, ClientDropped)} == set(report.result.dropped)
    expected, weight = plain_mean(aggregator.spec, inputs, survivors)
    assert report.result.total_weight == weight
    assert np.max(np.abs(report.result.mean - expected)) <= aggregator.quantization_error


def test_straggler_past_the_deadline_is_dropped():
    aggregator = make_ckks(4, 100, seed=11)
    inputs = random_inputs(aggregator.spec, 11)
    report = simulate_round(aggregator, inputs, faults=(Delay(3, "CkksUpdate", seconds=60),),
                            deadlines=Deadlines(default_s=10))
    assert report.result.survivors == (1, 2, 4)
    dropped = server_events(report, ClientDropped)
    assert [(e.client, e.phase) for e in dropped] == [(3, "collect_updates")]
    expected, _ = plain_mean(aggregator.spec, inputs, (1, 2, 4))
    assert np.max(np.abs(report.result.mean - expected)) <= aggregator.quantization_error


def test_clients_without_input_are_dropped():
    aggregator = make_ckks(5, 40, seed=5)
    inputs = random_inputs(aggregator.spec, 5)
    del inputs[4]
    report = simulate_round(aggregator, inputs)
    assert report.result.survivors == (1, 2, 3, 5)
    expected, _ = plain_mean(aggregator.spec, inputs, (1, 2, 3, 5))
    assert np.max(np.abs(report.result.mean - expected)) <= aggregator.quantization_error


def test_below_min_clients_aborts():
    aggregator = make_ckks(4, 20, min_clients=3)
    faults = (Silent(2, "CkksUpdate"), Silent(3, "CkksUpdate"))
    report = simulate_round(aggregator, random_inputs(aggregator.spec, 6), faults=faults)
    assert isinstance(report.error, InsufficientParticipants)
    assert report.result is None


@pytest.mark.parametrize("fault", [Silent(1, "CkksKeyDelivery"), Silent(1, "CkksDecryption"),
                                   Crash(1, "CkksAdvertise")])
def test_losing_the_key_holder_aborts(fault):
    aggregator = make_ckks(4, 20)
    report = simulate_round(aggregator, random_inputs(aggregator.spec, 7), faults=(fault,))
    assert isinstance(report.error, ProtocolAborted)
    assert "key holder" in str(report.error)


@pytest.mark.parametrize("key_model", ["holder", "shared"])
@pytest.mark.parametrize("key_holder", [1, 3])
def test_key_models_and_holders(key_model, key_holder):
    aggregator = make_ckks(4, 100, key_model=key_model, key_holder=key_holder, seed=8)
    inputs = random_inputs(aggregator.spec, 8)
    report = simulate_round(aggregator, inputs, faults=(Silent(2, "CkksUpdate"),))
    assert report.error is None, report.error
    survivors = tuple(c for c in (1, 2, 3, 4) if c != 2)
    assert report.result.survivors == survivors
    expected, _ = plain_mean(aggregator.spec, inputs, survivors)
    assert np.max(np.abs(report.result.mean - expected)) <= aggregator.quantization_error
    finished = {pid for pid, e in report.events if isinstance(e, RoundFinished)}
    assert finished == {0, key_holder}  # the key holder decrypted; nobody else can be asked


def _contexts_in(blob: bytes):
    """Every way ``blob`` could be read as a TenSEAL context (none if it is not one)."""
    try:
        return [ts.context_from(blob)]
    except Exception:  # noqa: BLE001 - sealed blobs are expected not to parse
        return []


@pytest.mark.parametrize("key_model", ["holder", "shared"])
def test_aggregator_only_ever_holds_a_public_context(key_model):
    aggregator = make_ckks(4, 30, key_model=key_model)
    h = Harness(aggregator, random_inputs(aggregator.spec, 9))
    h.run_until_server_phase("collect_context")
    h.deliver_to_server()  # the key holder's CkksKeyDelivery reaches the server
    out = h.close_phase()
    # What the server received and forwards: the public context and sealed blobs only.
    delivery = h.server.context
    assert delivery is not None and not delivery.is_private
    forwarded = [e.body for msgs in out.values() for e in msgs]
    assert all(isinstance(body, CkksClientKey) for body in forwarded)
    for body in forwarded:
        assert _contexts_in(body.sealed) == []  # opaque to the server
    h.deliver_to_clients(out)
    update = next(e for e in h.to_server if e.sender == 2).body
    h.run_to_end()
    assert h.server.result().survivors == (1, 2, 3, 4)
    # Decrypting with what the server holds fails: it has no secret key.
    vector = ts.ckks_vector_from(h.server.context._context, update.ciphertexts[0])
    with pytest.raises(ValueError, match="secret"):
        vector.decrypt()


def test_server_refuses_a_secret_context():
    aggregator = make_ckks(3, 10)
    h = Harness(aggregator, random_inputs(aggregator.spec, 10))
    h.run_until_server_phase("collect_context")
    # A key holder that leaks the secret context to the aggregator must be refused.
    envelope = h.to_server.pop()
    assert isinstance(envelope.body, CkksKeyDelivery)
    keys = generate_keys(aggregator.parameters)
    leaky = msgspec.structs.replace(envelope.body, public_context=keys.secret_context)
    h.server.receive(msgspec.structs.replace(envelope, body=leaky))
    assert h.server.phase == "aborted"
    assert "secret context" in str(h.server.aborted)
