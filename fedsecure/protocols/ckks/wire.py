"""Byte layouts the CKKS roles agree on: sealed key material and envelope signatures.

Theory of operation (byte layouts in ``protocols/ckks/SPEC.md``):

* Key material travels from the key holder h to client c sealed with AES-256-GCM under
  ``HKDF(X25519(h, c), purpose="ckks/key-material", context=session || round)``; the associated
  data binds session, round, sender h and recipient c, so the server (which relays it) can
  neither read it nor replay it to another client, round or session.
* An envelope signature is Ed25519 over ``DOMAIN || session || round || sender || recipient ||
  version || SHA-256(msgpack(body with an empty signature))``: it covers every header field and
  the whole body (message tag included), while hashing keeps signing cost linear in one pass.
"""

from __future__ import annotations

import hashlib
import struct

import msgspec

from fedsecure.errors import IntegrityError
from fedsecure.hazmat import derive_key, sign, verify

KEY_MATERIAL_AD = b"fedsecure/ckks/v1/key-material\x00"
SIGNATURE_DOMAIN = b"fedsecure/ckks/v1/signature\x00"
_ROUND = struct.Struct("<Q")
_HEADER = struct.Struct("<16sQIIH")
_PARTIES = struct.Struct("<II")
_ENCODER = msgspec.msgpack.Encoder()


def round_context(session: bytes, round_number: int) -> bytes:
    return session + _ROUND.pack(round_number)


def material_key(shared_secret: bytes, context: bytes) -> bytes:
    """The AES key sealing key material, from the key holder's X25519 secret with one client."""
    return derive_key(shared_secret, purpose="ckks/key-material", context=context)


def material_associated_data(context: bytes, sender: int, recipient: int) -> bytes:
    return KEY_MATERIAL_AD + context + _PARTIES.pack(sender, recipient)


def signed_bytes(envelope) -> bytes:
    """What the sender of ``envelope`` signs (its body's ``signature`` field left out)."""
    body = msgspec.structs.replace(envelope.body, signature=b"")
    digest = hashlib.sha256(_ENCODER.encode(body)).digest()
    header = _HEADER.pack(envelope.session, envelope.round, envelope.sender, envelope.recipient,
                          envelope.version)
    return SIGNATURE_DOMAIN + header + digest


def sign_envelope(envelope, signing_key: bytes):
    """``envelope`` with its body's ``signature`` filled in."""
    signature = sign(signing_key, signed_bytes(envelope))
    body = msgspec.structs.replace(envelope.body, signature=signature)
    return msgspec.structs.replace(envelope, body=body)


def verify_envelope(envelope, public_key: bytes) -> None:
    """Raise IntegrityError (naming the sender) unless the body carries a valid signature."""
    if not envelope.body.signature:
        raise IntegrityError("unsigned message where a signature is required", envelope.sender)
    try:
        verify(public_key, signed_bytes(envelope), envelope.body.signature)
    except IntegrityError as exc:
        raise IntegrityError(str(exc), envelope.sender) from None
