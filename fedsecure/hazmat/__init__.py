"""Cryptographic primitives with no protocol knowledge.

X25519 agreement + HKDF (:mod:`.agreement`), AES-256-GCM (:mod:`.aead`) and Ed25519
(:mod:`.signing`) on pyca ``cryptography``.
"""

from fedsecure.hazmat.aead import OVERHEAD, seal, unseal
from fedsecure.hazmat.agreement import KeyPair, agree, derive_key, generate_keypair, public_key_of
from fedsecure.hazmat.signing import generate_signing_key, sign, verify

__all__ = [
    "OVERHEAD", "seal", "unseal",
    "KeyPair", "agree", "derive_key", "generate_keypair", "public_key_of",
    "generate_signing_key", "sign", "verify",
]
