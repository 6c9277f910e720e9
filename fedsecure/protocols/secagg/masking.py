"""Mask derivation shared by the SecAgg client (adds masks) and server (removes them).

Every mask is AES-256-CTR keystream (``hazmat.prg.MaskPRG``) keyed through HKDF by a full
32-byte secret and a context that binds the protocol, session, round and parties, so no two
masks of different rounds, sessions or pairs share a keystream:

* self mask of u:       seed b_u (32 random bytes),        context "self"     | session | round | u
* pairwise mask of u,v: seed X25519(s_sk_u, s_pk_v),        context "pairwise" | session | round | min | max
  client u adds it when u < v and subtracts it when u > v, so the pair cancels in the sum.
* share encryption u->v: key HKDF(X25519(c_sk_u, c_pk_v)),  context "shares"   | session | round | min | max
  with associated data binding session, round, sender and recipient.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from fedsecure.hazmat import agree_many, derive_key
from fedsecure.hazmat.prg import MaskPRG

_U32 = struct.Struct("<I")


def round_context(session: bytes, round_number: int) -> bytes:
    return session + struct.pack("<Q", round_number)


def _pair(u: int, v: int) -> bytes:
    return struct.pack("<II", min(u, v), max(u, v))


def pairwise_sign(own: int, peer: int) -> int:
    """+1 if ``own`` adds the (own, peer) mask, -1 if it subtracts it."""
    return 1 if own < peer else -1


def add_self_mask(vector: np.ndarray, seed: bytes, owner: int, context: bytes, sign: int) -> None:
    MaskPRG(seed, b"self" + context + _U32.pack(owner)).add_into(vector, sign)


def add_pairwise_mask(vector: np.ndarray, seed: bytes, own: int, peer: int, context: bytes,
                      sign: int) -> None:
    """Add ``sign`` times the (own, peer) pairwise mask into ``vector`` (in place, wrapping)."""
    MaskPRG(seed, b"pairwise" + context + _pair(own, peer)).add_into(vector, sign)


def agreed_secrets(private: bytes, peer_publics: dict[int, bytes]) -> dict[int, bytes]:
    """X25519 secrets with each peer (the private key is loaded once for all of them)."""
    peers = sorted(peer_publics)
    return dict(zip(peers, agree_many(private, [peer_publics[p] for p in peers])))


def share_keys(encryption_private: bytes, own: int, peer_publics: dict[int, bytes],
               context: bytes) -> dict[int, bytes]:
    """AES-GCM keys for the shares exchanged with each peer (the same key both ways)."""
    secrets = agreed_secrets(encryption_private, peer_publics)
    return {peer: derive_key(secret, purpose="secagg-share-encryption",
                             context=context + _pair(own, peer))
            for peer, secret in secrets.items()}


def share_associated_data(context: bytes, sender: int, recipient: int) -> bytes:
    return b"fedsecure/secagg/v1/shares" + context + struct.pack("<II", sender, recipient)


def seed_commitment(seed: bytes, owner: int, context: bytes) -> bytes:
    """Binding commitment to a self-mask seed (checked after reconstruction)."""
    return hashlib.sha256(b"fedsecure/secagg/v1/seed-commitment" + context
                          + _U32.pack(owner) + seed).digest()
