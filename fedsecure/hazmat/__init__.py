"""Cryptographic primitives with no protocol knowledge.

X25519 agreement + HKDF (:mod:`.agreement`), AES-256-GCM (:mod:`.aead`), Ed25519
(:mod:`.signing`), the AES-256-CTR mask PRG (:mod:`.prg`), all on pyca ``cryptography``, and
Shamir secret sharing over GF(2^31 - 1) in numpy, with error-correcting decoding
(:mod:`.shamir`).
"""

from fedsecure.hazmat.aead import OVERHEAD, seal, unseal
from fedsecure.hazmat.agreement import (
    KeyPair,
    agree,
    agree_each,
    agree_many,
    check_public_key,
    derive_key,
    ephemeral_agreements,
    generate_keypair,
    public_key_of,
)
from fedsecure.hazmat.prg import MaskPRG, expand
from fedsecure.hazmat.shamir import (
    CHUNKS,
    SHARE_BYTES,
    decode_secrets,
    lagrange_weights_at_zero,
    reconstruct_secrets,
    share_from_bytes,
    share_secrets,
    share_to_bytes,
    shares_from_bytes_many,
)
from fedsecure.hazmat.signing import generate_signing_key, sign, verify

__all__ = [
    "OVERHEAD", "seal", "unseal",
    "KeyPair", "agree", "agree_each", "agree_many", "check_public_key", "derive_key",
    "ephemeral_agreements", "generate_keypair", "public_key_of",
    "MaskPRG", "expand",
    "CHUNKS", "SHARE_BYTES", "decode_secrets", "lagrange_weights_at_zero", "reconstruct_secrets",
    "share_from_bytes", "share_secrets", "share_to_bytes", "shares_from_bytes_many",
    "generate_signing_key", "sign", "verify",
]
