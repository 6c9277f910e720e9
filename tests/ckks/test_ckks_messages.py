"""CKKS message bodies on the wire: round trips and schema limits (no TenSEAL needed)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from fedsecure.errors import MalformedMessage
from fedsecure.messages import CODEC, ArrayPayload, Envelope
from fedsecure.messages.ckks import (
    CKKS_MESSAGES,
    CkksAdvertise,
    CkksClientKey,
    CkksDecryption,
    CkksDecryptRequest,
    CkksKeyDelivery,
    CkksKeyRequest,
    CkksRosterEntry,
    CkksSealedKey,
    CkksUpdate,
)

KEY, FINGERPRINT, BLOB = bytes(range(32)), bytes(range(32, 64)), bytes(range(40))
SAMPLES = [
    CkksAdvertise(KEY),
    CkksAdvertise(KEY, signature=bytes(64)),
    CkksKeyRequest([CkksRosterEntry(1, KEY), CkksRosterEntry(3, KEY)]),
    CkksKeyDelivery(b"public context", [CkksSealedKey(1, BLOB), CkksSealedKey(3, BLOB)]),
    CkksClientKey(KEY, BLOB),
    CkksUpdate(FINGERPRINT, [b"ciphertext 1", b"ciphertext 2"], signature=bytes(64)),
    CkksDecryptRequest(FINGERPRINT, [b"sum"], [1, 3]),
    CkksDecryption(ArrayPayload.pack(np.array([1.5, 2.0]))),
]


def envelope(body) -> Envelope:
    return Envelope(session=bytes(16), round=3, sender=1, recipient=0, body=body)


def test_samples_cover_every_type():
    assert {type(s) for s in SAMPLES} == set(CKKS_MESSAGES)


@pytest.mark.parametrize("body", SAMPLES, ids=lambda b: type(b).__name__)
def test_round_trip(body):
    assert CODEC.decode(CODEC.encode(envelope(body))).body == body


@pytest.mark.parametrize("body", [
    CkksAdvertise(KEY, signature=bytes(65)),  # signatures are at most 64 bytes
    CkksUpdate(FINGERPRINT, []),  # at least one ciphertext
    CkksUpdate(FINGERPRINT, [b""]),  # no empty ciphertext
    CkksUpdate(bytes(31), [b"c"]),  # fingerprints are 32 bytes
    CkksClientKey(KEY, bytes(27)),  # shorter than an AES-GCM nonce and tag
    CkksKeyDelivery(b"", []),  # no empty context
], ids=["long-signature", "no-ciphertexts", "empty-ciphertext", "short-fingerprint",
        "short-sealed-blob", "empty-context"])
def test_out_of_range_fields_are_malformed(body):
    data = msgspec.msgpack.encode(envelope(body))
    with pytest.raises(MalformedMessage):
        CODEC.decode(data)
