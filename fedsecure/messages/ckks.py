"""Message bodies of CKKS homomorphic averaging.

See ``protocols/ckks/SPEC.md`` for the order of the phases, the sealed key material and the
signature layout.  Ciphertexts and contexts travel as opaque TenSEAL/SEAL serializations; every
client -> server message ends with ``signature`` (empty unless signing is configured).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from fedsecure.messages.envelope import ArrayPayload, Bytes32, Message, PartyId

MAX_CIPHERTEXT_BYTES = 1 << 25  # one SEAL ciphertext (N=32768, 880 bits: ~7 MB)
MAX_CONTEXT_BYTES = 1 << 26  # a serialized context with its secret key
MAX_CHUNKS = 1 << 20

Signature = Annotated[bytes, msgspec.Meta(max_length=64)]
Ciphertext = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_CIPHERTEXT_BYTES)]
Ciphertexts = Annotated[list[Ciphertext], msgspec.Meta(min_length=1, max_length=MAX_CHUNKS)]
Context = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_CONTEXT_BYTES)]
SealedBlob = Annotated[bytes, msgspec.Meta(min_length=28, max_length=MAX_CONTEXT_BYTES + 1024)]
Parties = Annotated[list[PartyId], msgspec.Meta(max_length=1 << 24)]


class CkksAdvertise(Message, frozen=True):
    """Phase ``advertise``, client -> server: a fresh X25519 public key for the key delivery."""

    encryption_public_key: Bytes32
    signature: Signature = b""


class CkksRosterEntry(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    client: PartyId
    encryption_public_key: Bytes32


class CkksKeyRequest(Message, frozen=True):
    """Phase ``keys``, server -> key holder: the clients that advertised (key holder excluded)."""

    entries: list[CkksRosterEntry]


class CkksSealedKey(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    client: PartyId
    sealed: SealedBlob  # AES-256-GCM of the serialized CkksKeyMaterial, see SPEC.md


class CkksKeyDelivery(Message, frozen=True):
    """Phase ``keys``, key holder -> server: the public context (the aggregator's) and one sealed
    key material per roster entry, in roster order."""

    public_context: Context
    sealed_keys: list[CkksSealedKey]
    signature: Signature = b""


class CkksClientKey(Message, frozen=True):
    """Phase ``keys`` reply, server -> each client: its sealed key material and the key holder's
    X25519 public key to open it with."""

    key_holder_public_key: Bytes32
    sealed: SealedBlob


class CkksKeyMaterial(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The plaintext inside ``CkksClientKey.sealed`` (never on the wire in the clear)."""

    context: Context  # serialized TenSEAL context, secret or public per the key model


class CkksUpdate(Message, frozen=True):
    """Phase ``update``, client -> server: Enc(w * x || w) in ceil((d+1)/(N/2)) ciphertexts."""

    context_fingerprint: Bytes32
    ciphertexts: Ciphertexts
    signature: Signature = b""


class CkksDecryptRequest(Message, frozen=True):
    """Phase ``decrypt``, server -> decryptor: the encrypted sum over ``survivors``."""

    context_fingerprint: Bytes32
    ciphertexts: Ciphertexts
    survivors: Parties


class CkksDecryption(Message, frozen=True):
    """Phase ``decrypt`` reply, decryptor -> server: its decryption share (for one key holder,
    the plaintext sum of w * x followed by the sum of w, as ``<f8``)."""

    share: ArrayPayload
    signature: Signature = b""


CKKS_MESSAGES = (
    CkksAdvertise,
    CkksKeyRequest,
    CkksKeyDelivery,
    CkksClientKey,
    CkksUpdate,
    CkksDecryptRequest,
    CkksDecryption,
)
