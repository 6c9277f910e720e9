"""Conformance vectors for the deterministic CKKS wire layouts.

CKKS keys and ciphertexts come from SEAL's internal CSPRNG, which cannot be seeded, so there
is no full-transcript vector; what another implementation must reproduce byte for byte is
here instead: an envelope signature, the key-material AES key and associated data, and a
context fingerprint.  ``python -m tests.ckks.conformance`` rewrites
``protocols/ckks/vectors/layouts.json``; only do that for a deliberate change of the wire
format.  ``test_ckks_conformance.py`` recomputes every field and requires it to match.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedsecure.hazmat import agree, generate_keypair, generate_signing_key
from fedsecure.hazmat.ckks import context_fingerprint
from fedsecure.messages import CODEC, ArrayPayload, Envelope
from fedsecure.messages.ckks import CkksDecryption
from fedsecure.protocols.ckks import wire
from fedsecure.rng import DeterministicRandom

VECTOR_FILE = Path(__file__).resolve().parents[2] / "protocols" / "ckks" / "vectors" / "layouts.json"
SESSION = bytes(range(16))
ROUND = 7


def build_vectors() -> dict:
    rng = DeterministicRandom("fedsecure-ckks-vector-1")
    signer = generate_signing_key(rng)
    body = CkksDecryption(ArrayPayload.pack(np.array([0.5, -1.25, 3.0])))
    unsigned = Envelope(session=SESSION, round=ROUND, sender=1, recipient=0, body=body)
    signed = wire.sign_envelope(unsigned, signer.private)
    holder, client = generate_keypair(rng), generate_keypair(rng)
    context = wire.round_context(SESSION, ROUND)
    public_context = b"a serialized TenSEAL public context stands here"
    return {
        "session": SESSION.hex(),
        "round": ROUND,
        "signature": {
            "signing_private_key": signer.private.hex(),
            "signing_public_key": signer.public.hex(),
            "signed_bytes": wire.signed_bytes(unsigned).hex(),
            "signed_envelope": CODEC.encode(signed).hex(),
        },
        "key_material": {
            "key_holder": 1,
            "client": 3,
            "key_holder_private_key": holder.private.hex(),
            "key_holder_public_key": holder.public.hex(),
            "client_private_key": client.private.hex(),
            "client_public_key": client.public.hex(),
            "aes_key": wire.material_key(agree(holder.private, client.public), context).hex(),
            "associated_data": wire.material_associated_data(context, 1, 3).hex(),
        },
        "fingerprint": {
            "public_context": public_context.hex(),
            "fingerprint": context_fingerprint(public_context).hex(),
        },
    }


if __name__ == "__main__":
    VECTOR_FILE.parent.mkdir(parents=True, exist_ok=True)
    VECTOR_FILE.write_text(json.dumps(build_vectors(), indent=2) + "\n")
    print(f"wrote {VECTOR_FILE}")
