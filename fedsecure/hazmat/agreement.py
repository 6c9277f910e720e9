"""X25519 key agreement and HKDF-SHA256 key derivation.

Theory of operation: two parties each hold an X25519 key pair; ``agree`` combines one's private
key with the other's public key into the same 32-byte shared secret (RFC 7748).  That raw secret
is never used directly: ``derive_key`` expands it with HKDF-SHA256 (RFC 5869) under an ``info``
string ``b"fedsecure/v1/" + purpose + b"\\x00" + context`` so that keys for different purposes
(mask seeds, share encryption, ...) or sessions are independent.  A peer public key that is
malformed or of small order (which would force an all-zero secret) is rejected as an
:class:`~fedsecure.errors.IntegrityError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedsecure.errors import ConfigurationError, IntegrityError
from fedsecure.hazmat._checks import require_key
from fedsecure.rng import DEFAULT_RNG, RandomSource

KEY_BYTES = 32
INFO_PREFIX = b"fedsecure/v1/"


@dataclass(frozen=True)
class KeyPair:
    """A raw 32-byte private key and its 32-byte public key (X25519 or Ed25519)."""

    private: bytes
    public: bytes

    def __repr__(self) -> str:  # never print the private key
        return f"KeyPair(public={self.public.hex()})"


def _private_key(private: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(require_key("private", private, KEY_BYTES))


def generate_keypair(rng: RandomSource = DEFAULT_RNG) -> KeyPair:
    """A fresh X25519 key pair whose private key is ``rng.bytes(32)`` (clamped by X25519)."""
    private = rng.bytes(KEY_BYTES)
    return KeyPair(private=private, public=public_key_of(private))


def public_key_of(private: bytes) -> bytes:
    """The raw 32-byte X25519 public key of a raw 32-byte private key."""
    return _private_key(private).public_key().public_bytes_raw()


def agree(private: bytes, peer_public: bytes) -> bytes:
    """The raw 32-byte X25519 shared secret; a bad or low-order peer key raises IntegrityError."""
    key = _private_key(private)
    try:
        return key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except (ValueError, TypeError) as exc:
        raise IntegrityError(f"invalid X25519 peer public key: {exc}") from None


def agree_each(private: bytes, peer_publics: Sequence[bytes]) -> list[bytes | None]:
    """``agree`` with many peers, loading the private key once (loading costs as much as an
    exchange); the entry of a malformed or low-order peer key is None."""
    key = _private_key(private)
    secrets: list[bytes | None] = []
    for peer_public in peer_publics:
        try:
            secrets.append(key.exchange(X25519PublicKey.from_public_bytes(peer_public)))
        except (ValueError, TypeError):
            secrets.append(None)
    return secrets


def agree_many(private: bytes, peer_publics: Sequence[bytes]) -> list[bytes]:
    """``agree_each`` where every peer key must be valid: a bad one raises IntegrityError
    naming its index."""
    secrets = agree_each(private, peer_publics)
    for index, secret in enumerate(secrets):
        if secret is None:
            raise IntegrityError(f"invalid X25519 peer public key #{index}: malformed or of"
                                 " low order")
    return secrets


def ephemeral_agreements(peer_publics: Sequence[bytes], rng: RandomSource = DEFAULT_RNG
                         ) -> list[tuple[KeyPair, bytes | None]]:
    """For each peer key: a fresh X25519 key pair and its agreement with that peer (None if
    the peer key is malformed or of low order).  One key object serves both scalar
    multiplications."""
    out: list[tuple[KeyPair, bytes | None]] = []
    for peer_public in peer_publics:
        private = rng.bytes(KEY_BYTES)
        key = X25519PrivateKey.from_private_bytes(private)
        pair = KeyPair(private=private, public=key.public_key().public_bytes_raw())
        try:
            secret = key.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except (ValueError, TypeError):
            secret = None
        out.append((pair, secret))
    return out


_PROBE_PRIVATE = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def check_public_key(public: bytes) -> None:
    """Raise IntegrityError unless ``public`` is a 32-byte X25519 key of large order (a
    low-order key forces the all-zero secret whatever the private key: any clamped scalar
    exposes it)."""
    try:
        _PROBE_PRIVATE.exchange(X25519PublicKey.from_public_bytes(public))
    except (ValueError, TypeError):
        raise IntegrityError("invalid X25519 public key: malformed or of low order") from None


def derive_key(secret: bytes, *, purpose: str, context: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (no salt) of ``secret`` for one ``purpose`` within one ``context``."""
    if "\x00" in purpose:
        raise ConfigurationError(f"purpose={purpose!r}: must not contain NUL")
    info = INFO_PREFIX + purpose.encode() + b"\x00" + context
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)
