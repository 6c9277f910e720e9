"""Key models (who gets which context, who decrypts) and key rotation between rounds."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from fedsecure.errors import IntegrityError, MalformedMessage
from fedsecure.hazmat.ckks import SecretContext, generate_keys
from fedsecure.protocols.base import AggregationSpec, ClientDropped, make_aggregator
from fedsecure.protocols.ckks.keys import KeyHolderOnly, SharedSecretKey
from fedsecure.rng import DeterministicRandom
from tests.ckks.helpers import (
    SESSION,
    TENSEAL_REASON,
    TEST_PARAMS,
    plain_mean,
    random_inputs,
)
from tests.harness import Harness, events_of

pytest.importorskip("tenseal", reason=TENSEAL_REASON)
pytestmark = pytest.mark.he


@pytest.fixture(scope="module")
def keys():
    return generate_keys(TEST_PARAMS)


def test_holder_model_gives_the_secret_key_to_the_key_holder_only(keys):
    model = KeyHolderOnly()
    assert model.material_for(keys, 2, 2) == keys.secret_context
    assert model.material_for(keys, 1, 2) == keys.public_context
    assert isinstance(model.open_material(keys.secret_context, TEST_PARAMS, 2, 2), SecretContext)
    assert not model.open_material(keys.public_context, TEST_PARAMS, 1, 2).is_private
    with pytest.raises(MalformedMessage, match="public"):
        model.open_material(keys.secret_context, TEST_PARAMS, 1, 2)
    with pytest.raises(MalformedMessage, match="secret"):
        model.open_material(keys.public_context, TEST_PARAMS, 2, 2)
    assert model.decryptors(2, [1, 2, 3]) == (2,)
    assert model.may_decrypt(2, 2) and not model.may_decrypt(1, 2)


def test_shared_model_gives_everyone_the_secret_key(keys):
    model = SharedSecretKey()
    assert all(model.material_for(keys, c, 1) == keys.secret_context for c in (1, 2, 3))
    assert isinstance(model.open_material(keys.secret_context, TEST_PARAMS, 3, 1), SecretContext)
    with pytest.raises(MalformedMessage, match="secret"):
        model.open_material(keys.public_context, TEST_PARAMS, 3, 1)
    assert model.decryptors(1, [1, 2, 3]) == (1,)


def test_combine_wants_exactly_the_named_shares():
    with pytest.raises(MalformedMessage, match="expected 1"):
        KeyHolderOnly().combine({1: np.zeros(3), 2: np.zeros(3)})


class RecordingModel(KeyHolderOnly):
    """A custom model plugged in by instance: the roles must go through its hooks."""

    name = "recording"

    def __init__(self):
        self.calls = []

    def make_keys(self, params):
        self.calls.append("make_keys")
        return super().make_keys(params)

    def decrypt_share(self, context, ciphertexts, length):
        self.calls.append("decrypt_share")
        return super().decrypt_share(context, ciphertexts, length)

    def combine(self, shares):
        self.calls.append(("combine", tuple(shares)))
        return super().combine(shares)


def make_round(round_number: int, **options):
    spec = AggregationSpec(n_clients=4, vector_length=30, max_weight=3, session=SESSION,
                           round=round_number)
    return make_aggregator("ckks", spec, parameters=TEST_PARAMS, rng=DeterministicRandom(40),
                           **options)


def test_roles_go_through_the_key_model():
    model = RecordingModel()
    aggregator = make_round(0, key_model=model, key_holder=4)
    inputs = random_inputs(aggregator.spec, 41)
    result = Harness(aggregator, inputs).run_to_end().result()
    assert model.calls == ["make_keys", "decrypt_share", ("combine", (4,))]
    expected, _ = plain_mean(aggregator.spec, inputs, (1, 2, 3, 4))
    assert np.max(np.abs(result.mean - expected)) <= aggregator.quantization_error


def test_every_round_uses_a_fresh_key_and_old_updates_are_refused():
    """Rotation: each round's key holder makes a new context; an update replayed from an
    earlier round names the old context and is refused."""
    old = Harness(make_round(0), random_inputs(make_round(0).spec, 42))
    old.run_until_server_phase("collect_updates")
    stale = next(e for e in old.to_server if e.sender == 2)
    aggregator = make_round(1)
    inputs = random_inputs(aggregator.spec, 43)
    h = Harness(aggregator, inputs)
    h.run_until_server_phase("collect_updates")
    fresh = next(e for e in h.to_server if e.sender == 2)
    assert fresh.body.context_fingerprint != stale.body.context_fingerprint
    index = h.to_server.index(fresh)
    h.to_server[index] = msgspec.structs.replace(fresh, body=stale.body)
    h.deliver_to_server()
    dropped = events_of(h.server, ClientDropped)
    assert [(e.client, type(e.error)) for e in dropped] == [(2, IntegrityError)]
    assert h.run_to_end().result().survivors == (1, 3, 4)
