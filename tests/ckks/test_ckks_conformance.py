"""The deterministic CKKS layouts (SPEC.md) match ``protocols/ckks/vectors/layouts.json``
byte for byte, and the vector is self-consistent (its signature verifies, its AES key is the
one both ends derive)."""

from __future__ import annotations

import json

from fedsecure.hazmat import agree
from fedsecure.messages import CODEC
from fedsecure.protocols.ckks import wire
from tests.ckks.conformance import VECTOR_FILE, build_vectors

VECTORS = json.loads(VECTOR_FILE.read_text())


def test_layouts_match_the_vector_file():
    assert build_vectors() == VECTORS


def test_signature_vector_verifies():
    v = VECTORS["signature"]
    envelope = CODEC.decode(bytes.fromhex(v["signed_envelope"]))
    assert wire.signed_bytes(envelope).hex() == v["signed_bytes"]
    wire.verify_envelope(envelope, bytes.fromhex(v["signing_public_key"]))


def test_both_ends_derive_the_same_key_material_key():
    v = VECTORS["key_material"]
    context = wire.round_context(bytes.fromhex(VECTORS["session"]), VECTORS["round"])
    client_side = agree(bytes.fromhex(v["client_private_key"]),
                        bytes.fromhex(v["key_holder_public_key"]))
    assert wire.material_key(client_side, context).hex() == v["aes_key"]
