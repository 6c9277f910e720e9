"""AES-256-GCM authenticated encryption of private payloads (e.g. Shamir shares).

Theory of operation: ``seal`` draws a fresh 96-bit nonce from the injected ``rng`` and returns
``nonce || ciphertext || tag``; the associated data (which callers use to bind session, round,
sender and recipient) is authenticated but not sent.  ``unseal`` recomputes the tag; any change
to the nonce, ciphertext, tag, associated data or key -- or a blob too short to hold a nonce and
a tag -- fails with :class:`~fedsecure.errors.IntegrityError` and reveals nothing else.  Random
96-bit nonces are safe for far more messages than one key ever protects here (keys are derived
per session and peer pair).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedsecure.errors import IntegrityError
from fedsecure.hazmat._checks import require_key
from fedsecure.rng import DEFAULT_RNG, RandomSource

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES


def seal(key: bytes, plaintext: bytes, associated_data: bytes,
         rng: RandomSource = DEFAULT_RNG) -> bytes:
    """Encrypt and authenticate ``plaintext``; returns nonce(12) || ciphertext || tag(16)."""
    aesgcm = AESGCM(require_key("key", key, KEY_BYTES))
    nonce = rng.bytes(NONCE_BYTES)
    return nonce + aesgcm.encrypt(nonce, plaintext, associated_data)


def unseal(key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    """Decrypt a ``seal`` blob; any tampering, wrong key or wrong AD raises IntegrityError."""
    aesgcm = AESGCM(require_key("key", key, KEY_BYTES))
    if len(blob) < OVERHEAD:
        raise IntegrityError(f"sealed blob of {len(blob)} bytes is shorter than {OVERHEAD}")
    try:
        return aesgcm.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise IntegrityError("AES-GCM authentication failed") from None
