"""hazmat.ckks: keys, contexts, chunked encryption, sums, and refusal of hostile bytes."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fedsecure.errors import MalformedMessage
from fedsecure.hazmat.ckks import (
    CiphertextSum,
    CkksParameters,
    PublicContext,
    SecretContext,
    generate_keys,
    load_context,
)
from tests.ckks.helpers import TENSEAL_REASON, TEST_PARAMS

ts = pytest.importorskip("tenseal", reason=TENSEAL_REASON)
pytestmark = pytest.mark.he

OTHER_PARAMS = CkksParameters(4096, (40, 60), 30)


@pytest.fixture(scope="module")
def keys():
    return generate_keys(TEST_PARAMS)


@pytest.fixture(scope="module")
def secret(keys):
    return load_context(keys.secret_context, TEST_PARAMS)


@pytest.fixture(scope="module")
def public(keys):
    return load_context(keys.public_context, TEST_PARAMS)


def test_contexts_and_fingerprints(keys, secret, public):
    assert isinstance(secret, SecretContext) and secret.is_private
    assert type(public) is PublicContext and not public.is_private
    assert secret.fingerprint == public.fingerprint == keys.fingerprint
    assert keys.fingerprint != generate_keys(TEST_PARAMS).fingerprint  # fresh key each time
    assert keys.secret_context.hex() not in repr(keys)


def test_public_context_cannot_decrypt(keys, public):
    chunk = public.encrypt(np.ones(10))[0]
    vector = ts.ckks_vector_from(ts.context_from(keys.public_context), chunk)
    with pytest.raises(ValueError, match="secret"):
        vector.decrypt()


@pytest.mark.parametrize("length", [1, 2047, 2048, 2049, 5000])
def test_chunked_sum_round_trip(public, secret, length):
    data = np.random.default_rng(length)
    xs = [data.uniform(-3, 3, length) for _ in range(3)]
    total = CiphertextSum(public, length)
    for x in xs:
        chunks = public.encrypt(x)
        assert len(chunks) == -(-length // TEST_PARAMS.slots)
        total.add(chunks)
    decrypted = secret.decrypt(total.serialize(), length)
    assert total.count == 3
    assert np.max(np.abs(decrypted - sum(xs))) < 3 * TEST_PARAMS.error_bound


def test_measured_noise_is_within_the_model(public, secret):
    x = np.random.default_rng(7).uniform(-1, 1, 4 * TEST_PARAMS.slots)
    error = secret.decrypt(public.encrypt(x), len(x)) - x
    assert np.std(error) < TEST_PARAMS.noise_std
    assert np.max(np.abs(error)) < TEST_PARAMS.error_bound


def test_context_of_other_parameters_refused(keys):
    with pytest.raises(MalformedMessage, match="does not match"):
        load_context(keys.public_context, OTHER_PARAMS)
    with pytest.raises(MalformedMessage, match="undecodable"):
        load_context(keys.public_context[: len(keys.public_context) // 2], TEST_PARAMS)


def _garbled(chunk: bytes) -> bytes:
    """Overwrite the second half with 0xff bytes: the compressed coefficient stream no
    longer decodes.  (Overwriting only 64 bytes is not enough: about 1 in 20 such ciphertexts
    still parses, and decrypts to garbage — the aggregator's range check covers that case.)"""
    middle = len(chunk) // 2
    return chunk[:middle] + b"\xff" * (len(chunk) - middle)


@pytest.mark.parametrize("mutation", ["truncated", "garbled", "junk", "empty",
                                      "other-length", "other-parameters"])
def test_bad_ciphertexts_refused(public, mutation):
    chunk = public.encrypt(np.linspace(-1, 1, 100))[0]
    if mutation == "truncated":
        bad = chunk[: len(chunk) // 3]
    elif mutation == "garbled":
        bad = _garbled(chunk)
    elif mutation == "junk":
        bad = random.Random(1).randbytes(len(chunk))
    elif mutation == "empty":
        bad = b""  # TenSEAL parses this as a vector of 0 values
    elif mutation == "other-length":
        bad = public.encrypt(np.zeros(99))[0]
    else:
        other = load_context(generate_keys(OTHER_PARAMS).public_context, OTHER_PARAMS)
        bad = other.encrypt(np.linspace(-1, 1, 100))[0]
    with pytest.raises(MalformedMessage):
        public.load_ciphertext(bad, 100, sender=3)


def test_sum_is_all_or_nothing(public, secret):
    total = CiphertextSum(public, 3000)
    total.add(public.encrypt(np.ones(3000)))
    good, second = public.encrypt(np.full(3000, 5.0))
    with pytest.raises(MalformedMessage):
        total.add([good, _garbled(second)], sender=2)
    with pytest.raises(MalformedMessage, match="expected 2"):
        total.add([good], sender=2)
    assert total.count == 1
    assert np.allclose(secret.decrypt(total.serialize(), 3000), 1.0, atol=1e-4)


def test_fuzzed_ciphertexts_raise_only_malformed(public):
    """Random truncations and byte changes: a typed error or a well-formed ciphertext."""
    chunk = public.encrypt(np.linspace(-1, 1, 100))[0]
    mutate = random.Random(5)
    for _ in range(200):
        data = bytearray(chunk)
        if mutate.random() < 0.5:
            data = data[: mutate.randrange(len(data))]
        else:
            for _ in range(mutate.randrange(1, 4)):
                data[mutate.randrange(min(len(data), 256))] = mutate.randrange(256)
        try:
            public.load_ciphertext(bytes(data), 100)
        except MalformedMessage:
            pass
