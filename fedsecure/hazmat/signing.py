"""Ed25519 signatures (RFC 8032).

Theory of operation: a signing key is a 32-byte seed drawn from the injected ``rng``; its public
key is 32 bytes and a signature 64 bytes.  Ed25519 signing is deterministic, so a fixed seed
gives a reproducible transcript.  ``verify`` returns nothing on success and raises
:class:`~fedsecure.errors.IntegrityError` on every failure (bad signature, wrong message, wrong
or malformed key or signature); there is no boolean result to forget to check.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedsecure.errors import IntegrityError
from fedsecure.hazmat._checks import require_key
from fedsecure.hazmat.agreement import KeyPair
from fedsecure.rng import DEFAULT_RNG, RandomSource

KEY_BYTES = 32
SIGNATURE_BYTES = 64


def _signing_key(private: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(require_key("private", private, KEY_BYTES))


def generate_signing_key(rng: RandomSource = DEFAULT_RNG) -> KeyPair:
    """A fresh Ed25519 key pair: ``private`` is the 32-byte seed, ``public`` the raw key."""
    private = rng.bytes(KEY_BYTES)
    return KeyPair(private=private, public=_signing_key(private).public_key().public_bytes_raw())


def sign(private: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message``."""
    return _signing_key(private).sign(message)


def verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Return if ``signature`` is valid for ``message`` under ``public``; else IntegrityError."""
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise IntegrityError("malformed Ed25519 signature")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError, TypeError):
        raise IntegrityError("Ed25519 signature verification failed") from None
